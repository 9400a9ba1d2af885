"""Evaluate trained runs: `python eval.py runs/ntp-s0 runs/bico-s0`, `python eval.py --task length RUN`.

Reversal task (the default): loads each run directory's checkpoint, scores it on the reversal
tests (greedy accuracy and log-prob margin, the query form chosen by the run's objective) and
prints one table, runs of the same objective averaged over seeds (mean ± std). With --prompt TEXT
it prints each run's greedy completion of TEXT instead.
Length task: reads long texts with one run's weights under vanilla, Λ, Λ without the distance
limit, and a window without globals; prints NLL by position bucket and passkey accuracy.
"""

import importlib.util
import json
from pathlib import Path

from tinyrev import cli
from tinyrev.evaluate import complete, table
from tinyrev.experiment import load_run, score
from tinyrev.length import (DEPTHS, N_GLOBAL, evaluate_length, format_length, load_length_run,
                            plot_curve)
from tinyrev.trainer import TrainConfig, pick_device


def main():
    p = cli.Parser(prog="eval.py", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by train.py")
    p.add_argument("--task", choices=("reversal", "length"), default="reversal",
                   help="the task the runs were trained on (default: reversal)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--prompt", metavar="TEXT", help="print each run's greedy completion of TEXT")
    length = p.add_argument_group("length task")
    length.add_argument("--n-global", type=int, default=N_GLOBAL,
                        help=f"Λ: first tokens every query keeps (default: {N_GLOBAL})")
    length.add_argument("--n-local", type=int, help="Λ: the window (default: the training length)")
    length.add_argument("--texts", type=cli.positive_int, default=32,
                        help="texts of 16L tokens for the NLL (default: 32)")
    length.add_argument("--passkey-lengths", type=int, nargs="+", metavar="N",
                        help="total prompt lengths (default: L/2, L, 2L, ... 16L)")
    length.add_argument("--depths", type=float, nargs="+", default=list(DEPTHS), metavar="D",
                        help="where the key hides, 0 = start .. 1 = end (default: 0 .25 .5 .75 1)")
    length.add_argument("--plot", metavar="PNG", help="draw the NLL curve (needs matplotlib)")
    args = p.parse_args()
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        p.error("--plot needs matplotlib, an optional extra: pip install matplotlib")
    device = pick_device(args.device)
    if args.task == "length":
        if len(args.runs) > 1:
            raise ValueError(f"--task length evaluates one run at a time; got {len(args.runs)}")
        model, train_len, text_cfg = load_length_run(args.runs[0], device)
        r = evaluate_length(model, train_len, text_cfg, n_global=args.n_global,
                            n_local=args.n_local, n_texts=args.texts,
                            passkey_lengths=args.passkey_lengths, depths=args.depths)
        print(format_length({**r, "run": args.runs[0]}))
        if args.json:
            Path(args.json).write_text(json.dumps({**r, "run": args.runs[0]}, indent=2) + "\n")
        if args.plot:
            plot_curve(r, args.plot)
        return
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
