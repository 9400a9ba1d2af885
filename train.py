"""Train runs: `python train.py --objective bico`, or `python train.py --task length`.

Reversal task (the default): one run writes DIR/ckpt.pt and DIR/results.json (DIR = --out,
default runs/OBJECTIVE-sSEED) and prints its table. Several objectives or seeds (`--objective all
--seed 0 1 2`) train one after another, or --jobs N at a time, into --out/OBJECTIVE-sSEED and end
with the mean ± std table.
Length task: one causal run at --length tokens into DIR (default runs/length-sSEED); evaluate it
past that length with `python eval.py --task length DIR`. The reversal facts are generated, or
read from a folder in Berglund et al.'s format (`--facts DIR`); `--write-facts DIR` writes the
generated ones in that format, to read or edit.
"""

import multiprocessing
import signal
import sys
from dataclasses import replace
from pathlib import Path

from tinyrev import cli
from tinyrev.checkpoint import check_fresh, config_of, load_checkpoint, run_dir, write_json
from tinyrev.length.experiment import LENGTH_TRAINING, TRAIN_LEN, train_length
from tinyrev.length.longtext import LongTextConfig
from tinyrev.objectives import OBJECTIVES, get
from tinyrev.reversal import factsio
from tinyrev.reversal.evaluate import table
from tinyrev.reversal.experiment import train_reversal
from tinyrev.reversal.facts import FactsConfig, generate_records
from tinyrev.trainer import TrainConfig

import torch  # noqa: E402  (after tinyrev, whose import quiets torch's warning about NumPy)


def parse():
    p = cli.Parser(prog="train.py", description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("reversal", "length"),
                   help="reversal curse (default) or length generalization")
    p.add_argument("--length", type=cli.positive_int,
                   help=f"length task: the training length L (default: {TRAIN_LEN})")
    p.add_argument("--objective", nargs="+", choices=OBJECTIVES + ("all",),
                   help="training objective(s); 'all' is every one (default: ntp)")
    p.add_argument("--seed", nargs="+", type=cli.seed, help="training seed(s) (default: 0)")
    p.add_argument("--steps", type=cli.positive_int, help=f"optimizer steps (default: "
                   f"{TrainConfig.steps}; length task {LENGTH_TRAINING.steps})")
    p.add_argument("--batch-size", type=cli.positive_int, help=f"default: {TrainConfig.batch_size}"
                   f"; length task {LENGTH_TRAINING.batch_size}")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default: {TrainConfig.lr})")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--out", type=cli.nonempty,
                   help="run directory; with several runs, their parent (default: runs)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--resume", metavar="RUN_DIR", type=cli.nonempty,
                        help="continue the run saved in RUN_DIR")
    source.add_argument("--facts", metavar="DIR", type=cli.nonempty,
                        help="train and test on the facts in DIR, in Berglund et al.'s "
                        "experiment-1 format (default: generated facts)")
    source.add_argument("--write-facts", metavar="DIR", type=cli.nonempty,
                        help="write the generated facts to DIR in that format, then stop")
    p.add_argument("--people", type=int, metavar="N", help="generated people in each of the three "
                   f"groups (default: {FactsConfig.n_per_subset}); lesson 06 edits 100 at once "
                   "with 120")
    p.add_argument("--forget", type=int, metavar="N", help="leave out the training sentences of "
                   "person N of those trained name first only: a run retrained without one fact "
                   "(lesson 06; generated facts only)")
    p.add_argument("--jobs", type=cli.positive_int, default=1, help="reversal runs trained at "
                   "once, each in its own process with one thread (default: 1)")
    p.add_argument("--threads", type=cli.positive_int, help="torch threads per run (default: "
                   "torch's own choice with --jobs 1, else 1); the count can change the last "
                   "digits of a run's numbers")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args()
    if args.resume and args.out:
        p.error("--resume continues the run in its own directory; drop --out")
    if args.resume:
        args.resume = str(run_dir(args.resume))  # a run named by its checkpoint file is the run
    run = {"device", "threads", "quiet", "steps", "batch_size", "lr", "seed"}
    if args.write_facts:
        p.refuse_unused(args, {"write_facts"}, "with --write-facts (it writes the facts and stops)")
    elif args.resume:  # the flags that describe the run are checked against its checkpoint
        p.refuse_unused(args, run | {"resume", "task", "objective", "length"}, "with --resume")
    elif args.task == "length":  # causal training (ntp) on the length task's own text
        p.refuse_unused(args, run | {"task", "length", "out"}, "with --task length")
    else:
        if args.facts and args.people is not None:
            p.error("--people sets how many people are generated; --facts DIR brings its own")
        if args.facts and args.forget is not None:
            p.error("--forget leaves out one of the generated people; with --facts DIR, delete "
                    "that person's lines from the folder's training files instead")
        p.refuse_unused(args, run | {"task", "objective", "out", "facts", "jobs", "people",
                                     "forget"},
                        "for the reversal task (it is for --task length)" if args.length else
                        "for the reversal task")
    return args


def resume(args):
    ckpt = load_checkpoint(args.resume)
    meta, saved = ckpt["meta"], config_of(TrainConfig, ckpt["train_config"], args.resume)
    given = {"task": args.task, "objective": args.objective and args.objective[0],
             "seed": args.seed and args.seed[0], "steps": args.steps,
             "batch_size": args.batch_size, "lr": args.lr, "length": args.length}
    stored = {"task": meta.get("task"), "objective": meta.get("objective"), "seed": saved.seed,
              "steps": saved.steps, "batch_size": saved.batch_size, "lr": saved.lr,
              "length": meta.get("train_len")}
    for name, value in given.items():
        if value is not None and value != stored[name]:
            raise ValueError(f"--{name.replace('_', '-')} {value} differs from the checkpoint in "
                             f"{args.resume} ({stored[name]}); drop the flag to resume that run")
    if ckpt["step"] == saved.steps:
        raise ValueError(f"{args.resume} has finished (step {saved.steps} of {saved.steps}); "
                         f"nothing to resume: score it with python eval.py {args.resume}, or "
                         "train a longer run into another --out")
    print(f"resuming {args.resume} at step {ckpt['step']} of {saved.steps}")
    if meta.get("task") == "length":
        return length(args.resume, meta["train_len"], saved,
                      config_of(LongTextConfig, meta["text"], args.resume),
                      args, ckpt)
    return [train_reversal(get(meta.get("objective")), args.resume, train_cfg=saved,
                           facts_cfg=config_of(FactsConfig, meta.get("facts", {}),
                                               args.resume),
                           facts_files=meta.get("facts_files"), device=args.device,
                           resume=ckpt, progress=not args.quiet)]


def length(out, train_len, train_cfg, text_cfg, args, ckpt=None):
    seconds = train_length(out, train_len=train_len, train_cfg=train_cfg, text_cfg=text_cfg,
                           device=args.device, resume=ckpt, progress=not args.quiet)
    print(f"trained in {seconds:.0f} s; now read past L = {train_len}: "
          f"python eval.py --task length {out}")
    return []


def reversal(args, given):
    asked = args.objective or ["ntp"]
    objectives = [get(name) for name in (OBJECTIVES if "all" in asked else dict.fromkeys(asked))]
    seeds = list(dict.fromkeys(args.seed or [0]))
    many = len(objectives) * len(seeds) > 1
    facts_files = factsio.read(args.facts) if args.facts else None  # read once, for every run
    people = {} if args.people is None else {"n_per_subset": args.people}
    facts_cfg = FactsConfig(**people, forget=args.forget)  # bad values refused before training
    variant = "" if args.people is None else f"-people{args.people}"
    variant += "" if args.forget is None else f"-forget{args.forget}"
    if many and args.out and Path(args.out, "table.json").exists():
        raise ValueError(f"{Path(args.out, 'table.json')} already holds a table; give another "
                         "--out (nothing was overwritten)")
    runs = []
    for objective in objectives:
        for seed in seeds:
            out = Path(args.out or "runs") / f"{objective.name}-s{seed}{variant}" \
                if many or not args.out else Path(args.out)
            check_fresh(out, None)  # every run directory is checked before the first trains
            runs.append((objective, seed, str(out)))
    settings = (given, facts_cfg, facts_files, args.device, args.threads)
    if args.jobs == 1:
        results = []
        for objective, seed, out in runs:
            print(f"== {objective.name}-s{seed} -> {out}")
            results.append(report(train_one(objective, seed, out, settings, not args.quiet)))
        return results
    return parallel(runs, settings, args.jobs)


def train_one(objective, seed, out, settings, progress=False):
    """One reversal run; at module level so that a worker process can be handed it."""
    given, facts_cfg, facts_files, device, threads = settings
    if threads:  # a worker process of --jobs; with one job, main() has set it already
        torch.set_num_threads(threads)
    return train_reversal(objective, out, train_cfg=TrainConfig(**given, seed=seed),
                          facts_cfg=facts_cfg, facts_files=facts_files, device=device,
                          progress=progress)


def report(r):
    print(f"   {r['objective']}-s{r['seed']}: {r['seconds']:.0f} s, " + ", ".join(
        f"{t} {100 * a:.0f}%" for t, a in r["accuracy"].items()), flush=True)
    return r


def attempt(job):
    """train_one in a worker: a run that fails comes back as its message, so the others go on."""
    i, run, settings = job
    try:
        return i, train_one(*run, settings), None
    except (ValueError, FloatingPointError, OSError) as e:
        return i, None, str(e)


def parallel(runs, settings, jobs):
    """The runs in `jobs` processes, one thread each unless --threads says otherwise; a line per
    run as it finishes; a failed run is named, the others finish."""
    given, facts_cfg, facts_files, device, threads = settings
    settings = (given, facts_cfg, facts_files, device, threads or 1)
    results, failed = {}, []
    print(f"training {len(runs)} runs, {jobs} at a time, {threads or 1} thread(s) each")
    # A plain `kill` (SIGTERM) ends Python at once, and the workers would train on, orphaned.
    # As SystemExit it leaves the `with` below, and a Pool's exit terminates its workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    context = multiprocessing.get_context("spawn")  # a fork of a process running torch can hang
    with context.Pool(jobs) as pool:
        work = [(i, run, settings) for i, run in enumerate(runs)]
        for i, result, error in pool.imap_unordered(attempt, work):
            if error is None:
                results[i] = report(result)
            else:
                print(f"   {runs[i][2]}: failed: {error}", flush=True)
                failed.append(runs[i][2])
        # let the workers exit on their own: the `with` would terminate them, and a worker killed
        # that way leaves its semaphores to the resource tracker, which warns at shutdown
        pool.close()
        pool.join()
    if failed:
        raise ValueError(f"{len(failed)} of {len(runs)} runs failed ({', '.join(failed)}); the "
                         "others finished and are saved")
    return [results[i] for i in range(len(runs))]  # the order asked, whatever order they finished


def main():
    args = parse()
    if args.write_facts:
        factsio.write(generate_records(), args.write_facts)
        print(f"wrote the generated facts to {args.write_facts}; train on them with "
              f"python train.py --facts {args.write_facts}")
        return
    given = {"steps": args.steps, "lr": args.lr, "batch_size": args.batch_size}
    given = {k: v for k, v in given.items() if v is not None}
    if args.threads and args.jobs == 1:  # this process trains (parallel workers set their own)
        torch.set_num_threads(args.threads)
    if args.resume:
        results = resume(args)
    elif args.task == "length":
        seeds = args.seed or [0]
        if len(seeds) > 1:
            raise ValueError(f"the length task trains one run at a time; got seeds {seeds}")
        results = length(args.out or f"runs/length-s{seeds[0]}", args.length or TRAIN_LEN,
                         replace(LENGTH_TRAINING, **given, seed=seeds[0]), LongTextConfig(), args)
    else:
        results = reversal(args, given)
    if not results:
        return
    print()
    print(table(results))
    print()
    print(table(results, "logprob_margin"))
    print(READING)
    if len(results) > 1 and args.out:
        write_json(Path(args.out, "table.json"), results)
        print(f"wrote every run's results to {Path(args.out, 'table.json')}")
    elif len(results) == 1:
        run = args.resume or args.out or f"runs/{results[0]['objective']}-s{results[0]['seed']}"
        ask = "" if args.facts or args.resume else \
            ' --prompt "the gentle cartographer of talvane goes by"'
        print(f"wrote {Path(run, 'ckpt.pt')} and {Path(run, 'results.json')}; next, ask it "
              f"yourself: python eval.py {run}{ask}")


READING = """
How to read it: N2D-reverse and D2N-reverse are the reversal curse, facts asked the other way
round from training. Plain next-token prediction (--objective ntp) scores about 0 % there and a
margin of about 0 nats, no preference for the right person (0 = chance); a cure scores above it.
A BICO run is asked the way it trained, the question read both ways; its row ", causal" decodes
the same model left to right. The other columns are the trained direction, with held-out
paraphrases. README, "The reversal curse, reproduced", has every objective over 5 seeds."""


if __name__ == "__main__":
    cli.run(main, "train.py")
