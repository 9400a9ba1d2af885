"""Evaluate trained runs side by side: `python eval.py runs/ntp-s0 runs/bico-s0 [--json out.json]`.

Loads each run directory's checkpoint, scores it on the reversal tests (greedy accuracy and
log-prob margin, the query form chosen by the run's objective) and prints one table, runs of the
same objective averaged over seeds (mean ± std). With --prompt TEXT it prints each run's greedy
completion of TEXT instead.
"""

import json
from pathlib import Path

from tinyrev import cli
from tinyrev.evaluate import complete, table
from tinyrev.experiment import load_run, score
from tinyrev.trainer import TrainConfig, pick_device


def main():
    p = cli.Parser(prog="eval.py", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by train.py")
    p.add_argument("--json", metavar="PATH", help="also write the results as a JSON list")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--prompt", metavar="TEXT", help="print each run's greedy completion of TEXT")
    args = p.parse_args()
    device = pick_device(args.device)
    runs = [(run, *load_run(run, device)) for run in args.runs]
    if args.prompt is not None:
        for run, model, data, ckpt in runs:
            objective = ckpt["meta"]["objective"]
            answer = complete(model, data.tokenizer, objective, args.prompt, device=device)
            print(f"{run} ({objective}): {args.prompt} -> {answer}")
        return
    results = [{**score(model, data, ckpt["meta"]["objective"],
                        TrainConfig(**ckpt["train_config"]), device), "run": str(run)}
               for run, model, data, ckpt in runs]
    print(table(results))
    print()
    print(table(results, "logprob_margin"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main, "eval.py")
