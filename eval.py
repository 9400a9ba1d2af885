"""Evaluate trained runs side by side: `python eval.py runs/ntp-s0 runs/bico-s0 [--json out.json]`.

Loads each run directory's checkpoint, scores it on the reversal tests (greedy accuracy and
log-prob margin, the query form chosen by the run's objective) and prints one table, runs of the
same objective averaged over seeds (mean ± std).
"""

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from tinyrev import cli  # noqa: E402
from tinyrev.evaluate import table  # noqa: E402
from tinyrev.experiment import load_run, score  # noqa: E402
from tinyrev.trainer import TrainConfig, pick_device  # noqa: E402


def main():
    p = cli.Parser(prog="eval.py", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by train.py")
    p.add_argument("--json", metavar="PATH", help="also write the results as a JSON list")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    args = p.parse_args()
    device = pick_device(args.device)
    results = []
    for run in args.runs:
        model, data, ckpt = load_run(run, device)
        r = score(model, data, ckpt["meta"]["objective"], TrainConfig(**ckpt["train_config"]), device)
        results.append({**r, "run": str(run)})
    print(table(results))
    print()
    print(table(results, "logprob_margin"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main, "eval.py")
