"""Evaluate trained runs: `python eval.py runs/ntp-s0 runs/bico-s0`, or `--task length RUN`.

Reversal task (the default): loads each run directory's checkpoint, scores it on the reversal
tests (accuracy and log-prob margin; asked the way the run's objective trained unless --form
says otherwise; decoded greedily unless --beam and the penalties say otherwise) and prints one
table, runs of the same objective averaged over seeds (mean ± std). With --prompt TEXT it prints
each run's completion of TEXT instead.
Length task (lesson 04): reads long texts with one run's weights under vanilla, Λ, Λ without the
distance limit, a window without globals and ReRoPE; prints NLL by position bucket, the attention
on the first tokens, and passkey accuracy.
Dynamics task (lesson 05): trains the bilinear model and small decoders on a symbolic task and
prints the weight asymmetry; given reversal RUN_DIRs, reads it off those runs too.
Editing task (lesson 06): traces where one reversal run recalls its facts, rewrites some with a
rank-one edit and prints what each edit changes, the reversed question included.
"""

import importlib.util
from pathlib import Path

from tinyrev import cli, objectives
from tinyrev.checkpoint import config_of, run_dir, write_json
from tinyrev.decoding import Decoding
from tinyrev.dynamics import experiment as dynamics
from tinyrev.dynamics.symbolic import SymbolicConfig
from tinyrev.editing import experiment as editing
from tinyrev.length.experiment import (DEPTHS, N_GLOBAL, N_KEYS, N_TEXTS, evaluate_length,
                                       format_length, load_length_run, plot_curve)
from tinyrev.reversal.evaluate import (DIRECTIONS, answer_asymmetry, complete, known_answer,
                                      plot_reverse, table)
from tinyrev.reversal.experiment import load_run, score
from tinyrev.trainer import TrainConfig, pick_device


LENGTH_FLAGS = {"n_global", "n_local", "texts", "keys", "passkey_lengths", "depths", "modes",
                "scale", "group", "window"}


def parse():
    p = cli.Parser(prog="eval.py", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="directories written by train.py")
    p.add_argument("--task", choices=("reversal", "length", "dynamics", "editing"),
                   default="reversal",
                   help="what to evaluate (default: reversal)")
    p.add_argument("--json", metavar="PATH", type=cli.output_file,
                   help="also write the results as JSON")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best one present)")
    p.add_argument("--prompt", metavar="TEXT", help="print each run's completion of TEXT")
    p.add_argument("--form", choices=objectives.FORMS, help="reversal: ask every run this way "
                   "instead of its objective's own (causal for ntp, bidirectional for bico, ...)")
    dec = p.add_argument_group("decoding (reversal task; default: greedy)")
    dec.add_argument("--beam", type=cli.positive_int, default=1,
                     help="beam search with this many hypotheses per question")
    dec.add_argument("--length-penalty", type=float, default=1.0, help="beam: rank the kept "
                     "answers by log-prob / length ** this (default: 1, the mean per token)")
    dec.add_argument("--repetition-penalty", type=float, default=1.0,
                     help="divide a repeated token's logit by this, > 0 (default: 1, none)")
    dec.add_argument("--no-repeat-ngram", type=int, metavar="N",
                     help="never repeat an n-gram of this size")
    p.add_argument("--plot", metavar="PNG", help="reversal: reverse accuracy by objective; length: "
                   "the NLL curve; dynamics, editing: the heat maps (needs matplotlib, an optional "
                   "extra)")
    length = p.add_argument_group("length task")  # their dests: LENGTH_FLAGS
    length.add_argument("--n-global", type=int, default=N_GLOBAL,
                        help=f"Λ: first tokens every query keeps (default: {N_GLOBAL})")
    length.add_argument("--n-local", type=int, help="Λ: the window (default: the training length)")
    length.add_argument("--texts", type=cli.positive_int, default=N_TEXTS,
                        help=f"texts of 16L tokens for the NLL (default: {N_TEXTS})")
    length.add_argument("--keys", type=cli.positive_int, default=N_KEYS,
                        help=f"passkey prompts per length and depth (default: {N_KEYS})")
    length.add_argument("--passkey-lengths", type=int, nargs="+", metavar="N",
                        help="total prompt lengths (default: L/2, L, 2L, ... 16L)")
    length.add_argument("--depths", type=float, nargs="+", default=list(DEPTHS), metavar="D",
                        help="where the key hides, 0 = start .. 1 = end (default: 0 .25 .5 .75 1)")
    length.add_argument("--modes", nargs="+", metavar="NAME",
                        help="evaluate only these modes (default: every one; names in lesson 04)")
    length.add_argument("--scale", type=float, help="position interpolation and NTK: the fixed "
                        "scale s (default: the text's length over L, 16)")
    length.add_argument("--group", type=int, help="Self-Extend: the group size G (default: its "
                        "paper's rule for reading 16 L)")
    length.add_argument("--window", type=int, help="Self-Extend: the neighbour window W, exact "
                        "distances inside it (default: L / 2)")
    sym = p.add_argument_group("dynamics task")
    sym.add_argument("--pairs", type=cli.positive_int, default=SymbolicConfig.n_pairs,
                     help=f"entity pairs (default: {SymbolicConfig.n_pairs})")
    sym.add_argument("--both-share", type=float, default=SymbolicConfig.both_share,
                     help="share of pairs trained both ways "
                          f"(default: {SymbolicConfig.both_share})")
    sym.add_argument("--dim", type=cli.positive_int, default=512,
                     help="bilinear embedding size (default: 512)")
    sym.add_argument("--seed", type=cli.seed, default=0,
                     help="task split and initialization (default: 0)")
    edit = p.add_argument_group("editing task")
    edit.add_argument("--edits", type=cli.positive_int, help="facts edited (by rome and the "
                      "fine-tunings one at a time from the trained weights, by rome-sequential "
                      f"and memit together; default: {editing.EDITS}, or every fact if fewer)")
    edit.add_argument("--layer", type=int,
                      help="the layer whose w2 is edited (default: where the trace points)")
    edit.add_argument("--fact", type=int, help="edit only this fact: 0, 1, ... for the people "
                      "trained name first only")
    edit.add_argument("--new", metavar="TEXT", help="with --fact: its new description, in words "
                      "the run was trained on (default: one made of such words)")
    edit.add_argument("--method", nargs="+", default=["rome"], metavar="NAME",
                      help=f"how to edit: {', '.join(editing.EDITORS)}, or all (default: rome)")
    edit.add_argument("--layers", type=int, nargs=2, metavar=("FIRST", "LAST"),
                      help="MEMIT: the layers it spreads the edits over (default: every layer)")
    args = p.parse_args()
    decoding = {"form", "beam", "length_penalty", "repetition_penalty", "no_repeat_ngram"}
    reads = {"reversal": {"json", "plot", *decoding}, "length": {"json", "plot", *LENGTH_FLAGS},
             "dynamics": {"json", "plot", "pairs", "both_share", "dim", "seed"},
             "editing": {"json", "plot", "edits", "layer", "fact", "new", "method",
                         "layers"}}[args.task]
    mode = f"with --task {args.task}"
    if args.task == "reversal" and args.prompt is not None:  # prints a completion, saves nothing
        reads, mode = {"prompt", *decoding}, "with --prompt"
    p.refuse_unused(args, reads | {"runs", "task", "device"}, mode)
    if args.length_penalty != 1.0 and args.beam == 1:
        p.error("--length-penalty ranks the answers a beam search keeps; give --beam K (K > 1)")
    if not 0 < args.repetition_penalty < float("inf"):
        p.error(f"--repetition-penalty must be a finite number > 0 (1 = none); got "
                f"{args.repetition_penalty}")
    if args.no_repeat_ngram is not None and args.no_repeat_ngram < 1:
        p.error(f"--no-repeat-ngram must be an n-gram size >= 1; got {args.no_repeat_ngram}")
    args.decoding = Decoding(beam=args.beam, length_penalty=args.length_penalty,
                             repetition_penalty=args.repetition_penalty,
                             no_repeat_ngram=args.no_repeat_ngram)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        p.error("--plot needs matplotlib, an optional extra: pip install matplotlib")
    return args


def main():
    args = parse()
    device = pick_device(args.device)
    if args.task == "dynamics":
        return evaluate_dynamics(args, device)
    if not args.runs:
        raise ValueError(f"--task {args.task} needs at least one RUN_DIR, a directory written by "
                         "train.py (only --task dynamics runs without one)")
    resolved = [run_dir(run).resolve() for run in args.runs]  # a run by its folder or its file
    twice = [run for run, path in zip(args.runs, resolved) if resolved.count(path) > 1]
    if twice:
        raise ValueError(f"{twice[0]} is given twice; runs of one objective are averaged as seeds, "
                         "so each run may be named once")
    if args.task == "length":
        return evaluate_long_texts(args, device)
    if args.task == "editing":
        return evaluate_editing(args, device)
    return evaluate_reversal(args, device)


def write_result(args, result):
    if args.json:
        write_json(args.json, result)


def evaluate_long_texts(args, device):
    if len(args.runs) > 1:
        raise ValueError(f"--task length evaluates one run at a time; got {len(args.runs)}")
    model, train_len, text_cfg, seed = load_length_run(args.runs[0], device)
    r = evaluate_length(model, train_len, text_cfg, n_global=args.n_global, n_local=args.n_local,
                        n_texts=args.texts, passkey_lengths=args.passkey_lengths,
                        depths=args.depths, n_keys=args.keys, names=args.modes,
                        scale=args.scale, group=args.group, window=args.window)
    r["run"], r["seed"] = args.runs[0], seed
    print(format_length(r))
    write_result(args, r)
    if args.plot:
        plot_curve(r, args.plot)


def evaluate_editing(args, device):
    if len(args.runs) > 1:
        raise ValueError(f"--task editing edits one run at a time; got {len(args.runs)}")
    model, data, ckpt = load_run(args.runs[0], device)
    methods = list(editing.EDITORS) if args.method == ["all"] else args.method
    r = editing.run(model, data, left_to_right(ckpt), n_edits=args.edits, layer=args.layer,
                    fact=args.fact, new=args.new, methods=methods, layers=args.layers)
    r["run"] = args.runs[0]
    print(editing.report(r))
    write_result(args, r)
    if args.plot:
        editing.plot_trace(r, args.plot)


def asked(ckpt, form):
    """The run's objective, asked in `form` if one is given, else its own way."""
    objective = objectives.get(ckpt["meta"]["objective"])
    return objective if form is None else objective.asked(form)


def left_to_right(ckpt):
    """Lessons 05 and 06 read a causal decoder's logits (the effective log-prob, ROME's key at the
    subject's last token): a BICO run is read there the way Lv et al. ask it, left to right."""
    objective = asked(ckpt, None)
    return objective.asked("causal") if objective.form == "bidirectional" else objective


def evaluate_reversal(args, device):
    runs = [(run, *load_run(run, device)) for run in args.runs]
    if args.prompt is not None:
        for run, model, data, ckpt in runs:
            objective = asked(ckpt, args.form)
            answer = complete(model, data.tokenizer, objective, args.prompt, device=device,
                              decoding=args.decoding)
            print(f"{run} ({objective.name}, {objective.form}): {args.prompt} -> {answer}")
        known = known_answer(runs[0][2], args.prompt)
        if known:
            print(f"right answer: {known[1]} (a {known[0]} test question, {DIRECTIONS[known[0]]})")
        return
    results = [{**score(model, data, asked(ckpt, args.form),
                        config_of(TrainConfig, ckpt["train_config"], run), device,
                        args.decoding),
                "run": str(run)}
               for run, model, data, ckpt in runs]
    print(table(results))
    print()
    print(table(results, "logprob_margin"))
    write_result(args, results)
    if args.plot:
        plot_reverse(results, args.plot)


def evaluate_dynamics(args, device):
    cfg = SymbolicConfig(args.pairs, args.both_share, args.seed)
    runs = [(run, *load_run(run, device)) for run in args.runs]  # bad RUN_DIRs fail before training
    r = dynamics.run(cfg, dim=args.dim, device=device)
    r["runs"] = []
    for run, model, data, ckpt in runs:
        objective = left_to_right(ckpt)
        r["runs"].append({"run": str(run), "objective": objective.name,
                          **answer_asymmetry(model, data, objective, device)})
    print(dynamics.report(r))
    if args.plot:
        dynamics.plot(r, args.plot)
    write_result(args, {k: v for k, v in r.items() if k != "blocks"})


if __name__ == "__main__":
    cli.run(main, "eval.py")
