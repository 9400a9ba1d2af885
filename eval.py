"""Evaluate trained runs side by side: `python eval.py runs/ntp-s0 runs/bico-s0 [--json out.json]`.

Loads each run directory's checkpoint, scores it on the reversal tests (greedy accuracy and
log-prob margin, the query form chosen by the run's objective) and prints one table, runs of the
same objective averaged over seeds (mean ± std). With --prompt TEXT it prints each run's greedy
completion of TEXT instead.
Dynamics task (`--task dynamics`, lesson 05): trains the bilinear model and small decoders on a
symbolic task and prints the weight asymmetry; given RUN_DIRs, reads it off those runs too.
"""

import importlib.util
import json
from pathlib import Path

from tinyrev import cli, dynamics
from tinyrev.evaluate import complete, table
from tinyrev.experiment import load_run, score
from tinyrev.symbolic import SymbolicConfig
from tinyrev.trainer import TrainConfig, pick_device


def main():
    p = cli.Parser(prog="eval.py", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="directories written by train.py")
    p.add_argument("--task", choices=("reversal", "dynamics"), default="reversal",
                   help="what to evaluate (default: reversal)")
    p.add_argument("--json", metavar="PATH", help="also write the results as a JSON list")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--prompt", metavar="TEXT", help="print each run's greedy completion of TEXT")
    sym = p.add_argument_group("dynamics task")
    sym.add_argument("--pairs", type=cli.positive_int, default=SymbolicConfig.n_pairs,
                     help=f"entity pairs (default: {SymbolicConfig.n_pairs})")
    sym.add_argument("--both-share", type=float, default=SymbolicConfig.both_share,
                     help=f"share of pairs trained both ways (default: {SymbolicConfig.both_share})")
    sym.add_argument("--dim", type=cli.positive_int, default=512,
                     help="bilinear embedding size (default: 512)")
    sym.add_argument("--seed", type=int, default=0, help="task split and initialization (default: 0)")
    sym.add_argument("--plot", metavar="PNG", help="also draw the heat maps (needs matplotlib)")
    args = p.parse_args()
    device = pick_device(args.device)
    if args.task == "dynamics":
        return evaluate_dynamics(args, device)
    if not args.runs:
        raise ValueError(f"--task {args.task} needs at least one RUN_DIR, a directory written by "
                         "train.py (only --task dynamics runs without one)")
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


def evaluate_dynamics(args, device):
    cfg = SymbolicConfig(args.pairs, args.both_share, args.seed)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib, which is not installed (pip install matplotlib); "
                         "the text heat maps show the same")
    runs = [(run, *load_run(run, device)) for run in args.runs]  # bad RUN_DIRs fail before training
    r = dynamics.run(cfg, dim=args.dim, device=device)
    r["runs"] = [{"run": str(run), "objective": ckpt["meta"]["objective"],
                  **dynamics.answer_asymmetry(model, data, ckpt["meta"]["objective"], device)}
                 for run, model, data, ckpt in runs]
    print(dynamics.report(r))
    if args.plot:
        dynamics.plot_heatmaps(r["blocks"], args.plot)
    if args.json:
        saved = {k: v for k, v in r.items() if k != "blocks"}
        Path(args.json).write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main, "eval.py")
