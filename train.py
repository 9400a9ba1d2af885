"""Train and evaluate reversal-curse runs: `python train.py --objective bico`.

One run writes DIR/ckpt.pt and DIR/results.json (DIR = --out, default runs/OBJECTIVE-sSEED) and
prints its table. Several objectives or seeds (`--objective all --seed 0 1 2`) train one after
another into --out/OBJECTIVE-sSEED and end with the mean ± std table. The facts are generated,
or read from a folder in Berglund et al.'s format (`--facts DIR`); `--write-facts DIR` writes the
generated ones in that format, to read or edit.
"""

import json
from dataclasses import replace
from pathlib import Path

from tinyrev import cli, factsio
from tinyrev.evaluate import table
from tinyrev.experiment import train_reversal
from tinyrev.facts import FactsConfig, generate_records
from tinyrev.objectives import OBJECTIVES
from tinyrev.trainer import TrainConfig, load_checkpoint


def parse():
    p = cli.Parser(prog="train.py", description=__doc__.splitlines()[0])
    p.add_argument("--objective", nargs="+", choices=OBJECTIVES + ("all",),
                   help="training objective(s); 'all' is every one (default: ntp)")
    p.add_argument("--seed", nargs="+", type=int, help="training seed(s) (default: 0)")
    p.add_argument("--steps", type=cli.positive_int, help=f"optimizer steps (default: {TrainConfig.steps})")
    p.add_argument("--batch-size", type=cli.positive_int, help=f"default: {TrainConfig.batch_size}")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default: {TrainConfig.lr})")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--out", help="run directory; with several runs, their parent (default: runs)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    source.add_argument("--facts", metavar="DIR", help="train and test on the facts in DIR, in "
                        "Berglund et al.'s experiment-1 format (default: generated facts)")
    source.add_argument("--write-facts", metavar="DIR", help="write the generated facts to DIR "
                        "in that format, then stop")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args()


def resume(args):
    ckpt = load_checkpoint(args.resume)
    meta, saved = ckpt["meta"], TrainConfig(**ckpt["train_config"])
    given = {"objective": args.objective and args.objective[0], "seed": args.seed and args.seed[0],
             "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr}
    stored = {"objective": meta.get("objective"), "seed": saved.seed, "steps": saved.steps,
              "batch_size": saved.batch_size, "lr": saved.lr}
    for name, value in given.items():
        if value is not None and value != stored[name]:
            raise ValueError(f"--{name.replace('_', '-')} {value} differs from the checkpoint in "
                             f"{args.resume} ({stored[name]}); drop the flag to resume that run")
    print(f"resuming {args.resume} at step {ckpt['step']} of {saved.steps}")
    return train_reversal(meta["objective"], args.resume, train_cfg=saved,
                          facts_cfg=FactsConfig(**meta.get("facts", {})),
                          facts_files=meta.get("facts_files"), device=args.device,
                          resume=ckpt, progress=not args.quiet)


def main():
    args = parse()
    if args.write_facts:
        factsio.write(generate_records(), args.write_facts)
        print(f"wrote the generated facts to {args.write_facts}; train on them with "
              f"python train.py --facts {args.write_facts}")
        return
    if args.resume:
        results = [resume(args)]
    else:
        objectives = list(OBJECTIVES) if "all" in (args.objective or []) else (args.objective or ["ntp"])
        seeds = args.seed or [0]
        many = len(objectives) * len(seeds) > 1
        given = {"steps": args.steps, "lr": args.lr, "batch_size": args.batch_size}
        base = TrainConfig(**{k: v for k, v in given.items() if v is not None})
        facts_files = factsio.read(args.facts) if args.facts else None
        results = []
        for objective in objectives:
            for seed in seeds:
                name = f"{objective}-s{seed}"
                out = Path(args.out or "runs") / name if many or not args.out else Path(args.out)
                print(f"== {name} -> {out}")
                r = train_reversal(objective, out, train_cfg=replace(base, seed=seed),
                                   facts_files=facts_files, device=args.device,
                                   progress=not args.quiet)
                print(f"   {r['seconds']:.0f} s, " + ", ".join(
                    f"{t} {100 * a:.0f}%" for t, a in r["accuracy"].items()))
                results.append(r)
    print()
    print(table(results))
    print()
    print(table(results, "logprob_margin"))
    if len(results) > 1 and args.out:
        Path(args.out, "table.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main, "train.py")
