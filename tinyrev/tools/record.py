"""The measurement record: `python -m tinyrev.tools.record` renders every results table of the
README and the lessons from the result files committed in lessons/record/.

Covers: the record's tables, each a function of its files (`TABLES`); the markers that hold
them in a document, a line `<!-- record: NAME -->` and a line `<!-- end record -->` with the
rendered table between; rewriting them (the default), listing the tables that differ
(`--check`, which the fast suite runs, so a hand-edited number fails a test) and drawing the
figures that come from the record (`--figures`, needs matplotlib).
Leaves out: making the files (train.py and `eval.py --json` write them; each table's command,
machine and date are said once beside it in the document) and the prose around the tables.
A table changes by re-running its command and rendering again, never by hand.
"""

import json
import re
from collections import defaultdict
from pathlib import Path

from .. import cli
from ..editing.experiment import plot_trace
from ..length.experiment import plot_curve as plot_length
from ..reversal.evaluate import labelled, mean_std, plot_curve, plot_reverse, rows

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "lessons" / "record"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "lessons").glob("*.md"))]
MARKED = re.compile(r"(<!-- record: ([\w-]+) -->\n)(.*?)(<!-- end record -->)", re.DOTALL)
REVERSE = ("N2D-reverse", "D2N-reverse")
CORE = ("vanilla", "lambda", "lambda_no_limit", "window")  # lesson 04's main path; the other
# training-free methods have a section and a table of their own


def only(r: dict, names) -> dict:
    """A length result restricted to the modes in `names`."""
    keep = lambda d: {m: x for m, x in d.items() if m in names}
    out = {**r, "passkey": {k: v for k, v in r["passkey"].items()
                            if k in ("lengths", "depths") or k in names}}
    for key in ("nll", "curve", "first_token_attention", "passkey_by_depth", "passkey_digits"):
        out[key] = keep(r[key])
    return out


def load(name: str) -> list:
    return json.loads((RECORD / name).read_text())


def markdown(header: list, body: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in body]) + "\n"


def results_table(results: list, key: str, scale: float) -> str:
    """One row per objective and way of asking, a column per test, mean ± std over seeds."""
    tests = list(results[0][key])
    body = [[label, *(mean_std([scale * r[t] for r in runs if r.get(t) is not None])
                      for t in tests), len(runs)]
            for label, runs in rows(results, key).items()]
    return markdown(["objective", *tests, "seeds"], body)


def every_seed(results: list) -> str:
    """Reverse accuracy of each seed, N2D-reverse / D2N-reverse: every seed run, not the best."""
    by_seed = defaultdict(dict)
    for label, r, accuracy in labelled(results):
        by_seed[label][r["seed"]] = " / ".join(f"{100 * accuracy[t]:.0f}" for t in REVERSE)
    seeds = sorted({r["seed"] for r in results})
    body = [[label, *(runs.get(s, "—") for s in seeds)] for label, runs in by_seed.items()]
    return markdown(["objective", *(f"seed {s}" for s in seeds)], body)


def berglund(results: list) -> str:
    """One seed per objective: greedy accuracy (in brackets, the answer anywhere in the
    completion) and the reverse margins; a BICO run's causal decode on a row of its own."""
    tests = list(results[0]["accuracy"])
    pct = lambda x: f"{100 * x:.1f}"
    body = []
    for r in results:
        contains = lambda t: f" ({pct(r['accuracy_contains'][t])})" if t in REVERSE else ""
        margin = lambda t: "—" if r["logprob_margin"][t] is None else \
            f"{r['logprob_margin'][t]:.1f}"
        body.append([r["objective"], *(pct(r["accuracy"][t]) + contains(t) for t in tests),
                     *(margin(t) for t in REVERSE)])
        if "accuracy_causal" in r:
            body.append([f"{r['objective']}, causal",
                         *(pct(r["accuracy_causal"][t]) for t in tests), "", ""])
    return markdown(["objective", *tests, "margin N2D-rev.", "margin D2N-rev."], body)


def curve(results: list) -> str:
    """Reverse accuracy, asked each objective's own way, at every checkpoint of each run."""
    steps = sorted({p["step"] for r in results for p in r["curve"]})
    body = []
    for r in results:
        points = {p["step"]: p["accuracy"] for p in r["curve"]}
        body.append([f"{r['objective']}, seed {r['seed']}",
                     *(" / ".join(f"{100 * points[s][t]:.0f}" for t in REVERSE)
                       if s in points else "—" for s in steps)])
    return markdown(["run", *(f"step {s}" for s in steps)], body)


def length_nll(r: dict) -> str:
    """NLL per position bucket under every mode, and in brackets its ratio to [L/2, L), the last
    bucket inside the training length."""
    body = [[m, *(f"{x:.3f} ({x / row[1]:.3f})" for x in row)] for m, row in r["nll"].items()]
    return markdown(["mode", *r["buckets"]], body)


def length_seeds(*runs: dict) -> str:
    """Per seed: each mode's worst ratio past L, its first-token attention per layer, and the
    passkey (mean over depths) at 4 L and 16 L, the numbers the lesson's claims rest on."""
    body = []
    for r in runs:
        lengths, L = r["passkey"]["lengths"], r["train_len"]
        for m, row in r["nll"].items():
            keys = [f"{100 * r['passkey'][m][lengths.index(n)]:.0f}" if m in r["passkey"] else "—"
                    for n in (4 * L, 16 * L)]
            body.append([f"{m}, seed {r['seed']}", f"{max(row[2:]) / row[1]:.3f}",
                         " ".join(f"{a:.3f}" for a in r["first_token_attention"][m]), *keys])
    return markdown(["mode, seed", "worst ratio past L", "attention on the first tokens, "
                     "layers 0-3", "passkey at 4 L (%)", "passkey at 16 L (%)"], body)


def n_global(*runs: dict) -> str:
    """Λ's ratio to [L/2, L) in the buckets past L, one row per number of global tokens kept,
    and the window (none kept) for comparison."""
    def ratios(row):
        return [f"{x / row[1]:.3f}" for x in row[2:]]
    body = [[f"Λ, n_global {r['n_global']}", *ratios(r["nll"]["lambda"])]
            for r in sorted(runs, key=lambda r: r["n_global"])]
    body.append(["window (n_global 0)", *ratios(runs[0]["nll"]["window"])])
    return markdown(["mode", *runs[0]["buckets"][2:]], body)


def length_methods(*runs: dict) -> str:
    """Every mode, each cell "seed 0 / seed 1": NLL ratios to *vanilla's* [L/2, L) (a fixed
    scaling changes the reading inside L too, which a ratio to its own bucket would hide), and
    the passkey exact match (mean over depths) from L to 16 L."""
    def cells(value):
        return " / ".join(value(r) for r in runs)

    def ratio(m, pick):
        return lambda r: f"{pick(r['nll'][m][1:]) / r['nll']['vanilla'][1]:.3f}"

    def key(m, times):
        def at(r):
            p, n = r["passkey"], times * r["train_len"]
            return f"{100 * p[m][p['lengths'].index(n)]:.0f}" if m in p else "—"
        return at
    times = (1, 2, 4, 8, 16)
    body = [[m, cells(ratio(m, lambda row: row[0])), cells(ratio(m, lambda row: max(row[1:]))),
             cells(ratio(m, lambda row: row[-1])), *(cells(key(m, t)) for t in times)]
            for m in runs[0]["nll"]]
    return markdown(["mode", "[L/2, L)", "worst past L", "[8L, 16L)",
                     *(f"{t} L" if t > 1 else "passkey at L (%)" for t in times)], body)


def passkey(r: dict) -> str:
    """Passkey exact match (%) by depth (rows) and prompt length (columns)."""
    depths = r["passkey"]["depths"]
    body = [[f"{m}, depth {d:g}", *(f"{100 * row[i]:.0f}" for row in grid)]
            for m, grid in r["passkey_by_depth"].items() for i, d in enumerate(depths)]
    return markdown(["mode, depth", *map(str, r["passkey"]["lengths"])], body)


def bench(r: dict) -> str:
    """Decoding tokens/s in each stretch of the length, full cache against Λ's and StreamingLLM's
    bounded ones, and memory."""
    d = r["decode"]
    full, lam, stream = d["full"], d["lambda"], d["streaming_llm"]
    # the stretches bench.py times: [1, 1024), then each doubling (not imported from bench.py,
    # which the tests run as a module in this process)
    starts = [1] + full["length"][:-1]
    body = [[f"[{a}, {n})", f"{f:.0f}", f"{g:.0f}", f"{g / f:.2f}x", f"{s:.0f}",
             f"{fb / 2 ** 20:.2f}", f"{gb / 2 ** 20:.2f}", f"{sb / 2 ** 20:.2f}"]
            for a, n, f, g, s, fb, gb, sb in zip(starts, full["length"], full["tokens_per_s"],
                                                 lam["tokens_per_s"], stream["tokens_per_s"],
                                                 full["cache_bytes"], lam["cache_bytes"],
                                                 stream["cache_bytes"])]
    return markdown(["tokens", "full tok/s", "Λ tok/s", "speed-up", "StreamingLLM tok/s",
                     "full cache MB", "Λ cache MB", "StreamingLLM MB"], body)


def dynamics_history(r: dict) -> str:
    """The bilinear model's mean training loss and reverse loss over the steps."""
    steps, train, reverse = zip(*r["history"])
    return markdown(["step", *map(str, steps)],
                    [["train loss", *(f"{x:.3f}" for x in train)],
                     ["reverse loss", *(f"{x:.3f}" for x in reverse)]])


def dynamics_models(r: dict) -> str:
    """The three models on the test pairs: losses, reverse accuracy and the weight asymmetry."""
    names = {"bilinear": f"bilinear, d = {r['config']['dim']}", "one_layer": "tinyrev, 1 layer",
             "decoder": "tinyrev, 4 layers"}
    body = [[name, f"{m['train_loss']:.3f}", f"{m['reverse_loss']:.2f}",
             f"{100 * m['reverse_acc']:.1f}", f"{m['w_forward']:.2f}", f"{m['w_reverse']:.2f}",
             f"{m['w_reverse'] / m['w_forward']:.3f}"]
            for key, name in names.items() for m in [r[key]]]
    return markdown(["model", "train loss", "reverse loss", "reverse acc (%)", "w_forward",
                     "w_reverse", "reverse / forward"], body)


def dynamics_chain(r: dict) -> str:
    """The chain A ⇝ C, asked directly and with B generated first, against a guess."""
    c = r["chain"]
    return markdown(["one-layer decoder, chains tested", "A ⇝ C directly (%)",
                     "with B generated first (%)", "chance (%)"],
                    [[r["config"]["n_test"], f"{100 * c['direct_acc']:.1f}",
                      f"{100 * c['with_step_acc']:.1f}", f"{100 * c['chance']:.1f}"]])


def dynamics_runs(r: dict) -> str:
    """Lesson 03's runs read left to right: effective log-prob, mean ± std over seeds."""
    by = defaultdict(list)
    for run in r["runs"]:
        by[run["objective"]].append(run)
    body = [[o, mean_std([x["w_forward"] for x in runs]), mean_std([x["w_reverse"] for x in runs]),
             mean_std([x["w_reverse"] / x["w_forward"] for x in runs], digits=3), len(runs)]
            for o, runs in by.items()]
    return markdown(["objective", "w_forward", "w_reverse", "reverse / forward", "seeds"], body)


def trace(r: dict) -> str:
    """Causal trace: the share of p(answer) that restoring one clean state recovers."""
    share = lambda v: f"{v:.2f}".replace("-0.00", "0.00")  # noise around zero is zero
    body = [[f"{component}, layer {k}", *map(share, row)]
            for component, rows in r["trace"].items() for k, row in enumerate(rows)]
    return markdown(["restore", *r["columns"]], body)


def edits(*runs: dict) -> str:
    """What ROME's edits, one at a time, change, per run: the new fact, the old one, and the new
    one asked of the unedited model (%)."""
    sides = (("new", "new"), ("old", "old"), ("new_unedited", "new, asked of the unedited model"))
    measures = list(runs[0]["new_unedited"])
    got = lambda r, side: r["new_unedited"] if side == "new_unedited" else r["methods"]["rome"][side]
    # nothing was edited in the control, so there is no specificity to speak of
    shown = lambda side, m: (side, m) != ("new_unedited", "specificity")
    body = [[f"{r['objective']} (layer {r['layer']}, {r['n_edits']} edits)", label,
             *(f"{100 * got(r, side)[m]:.0f}" if shown(side, m) else "—" for m in measures)]
            for r in runs for side, label in sides]
    return markdown(["run", "fact", *measures], body)


def edit_methods(*runs: dict) -> str:
    """Every editing method on each objective's runs, each cell "seed 0 / seed 1" (%): the new
    fact's four measures, then the old fact forwards and backwards. `runs` come in seed pairs
    (or alone: one run, one value a cell)."""
    pairs = [runs[i:i + 2] for i in range(0, len(runs), 2)]
    body = []
    for pair in pairs:
        run = f"{pair[0]['objective']} (layer {' / '.join(str(r['layer']) for r in pair)})"
        for method in pair[0]["methods"]:
            def cell(side, m):
                return " / ".join(f"{100 * r['methods'][method][side][m]:.0f}" for r in pair)
            body.append([run, method, *(cell("new", m) for m in pair[0]["new_unedited"]),
                         cell("old", "efficacy"), cell("old", "reverse")])
        unedited = [" / ".join(f"{100 * r['new_unedited'][m]:.0f}" for r in pair)
                    for m in ("efficacy", "paraphrase")]
        reverse = " / ".join(f"{100 * r['new_unedited']['reverse']:.0f}" for r in pair)
        body.append([run, "none (the unedited model)", *unedited, "—", reverse, "—", "—"])
    return markdown(["run", "method", "efficacy", "paraphrase", "specificity", "reverse",
                     "old fact kept", "old fact, reverse"], body)


TABLES = {  # NAME: (the record files it is drawn from, how)
    "reversal-accuracy": (("reversal.json",), lambda r: results_table(r, "accuracy", 100)),
    "reversal-margin": (("reversal.json",), lambda r: results_table(r, "logprob_margin", 1)),
    "reversal-seeds": (("reversal.json",), every_seed),
    "berglund": (("berglund.json",), berglund),
    "curve": (("curve.json",), curve),
    "length-nll": (("length-s0.json",), lambda r: length_nll(only(r, CORE))),
    "length-seeds": (("length-s0.json", "length-s1.json"),
                     lambda *runs: length_seeds(*(only(r, CORE) for r in runs))),
    "passkey": (("length-s0.json",), lambda r: passkey(only(r, CORE))),
    "length-methods": (("length-s0.json", "length-s1.json"), length_methods),
    "n-global": (("length-s0-global1.json", "length-s0-global2.json", "length-s0.json"), n_global),
    "bench": (("bench.json",), bench),
    "dynamics-history": (("dynamics.json",), dynamics_history),
    "dynamics-models": (("dynamics.json",), dynamics_models),
    "dynamics-chain": (("dynamics.json",), dynamics_chain),
    "dynamics-runs": (("dynamics.json",), dynamics_runs),
    "trace-ntp": (("editing-ntp.json",), trace),
    "trace-bico-entity": (("editing-bico-entity.json",), trace),
    "edits": (("editing-ntp.json", "editing-bico-entity.json"), edits),
    "edit-methods": (("editing-ntp.json", "editing-ntp-s1.json", "editing-bico-entity.json",
                      "editing-bico-entity-s1.json"), edit_methods),
    "edit-methods-100": (("editing-ntp-people120.json",), edit_methods),
}


def render(text: str) -> str:
    """`text` with every marked table rendered again from the record."""
    def fill(m):
        if m[2] not in TABLES:
            raise ValueError(f"unknown record table {m[2]!r}; known: {', '.join(TABLES)}")
        files, draw = TABLES[m[2]]
        return m[1] + draw(*map(load, files)) + m[4]
    return MARKED.sub(fill, text)


def stale(documents=DOCUMENTS) -> list:
    """The documents whose tables differ from what the record gives."""
    return [d for d in documents if render(d.read_text()) != d.read_text()]


def figures(out=ROOT / "lessons" / "figures"):
    """The lessons' figures that are drawn from the record alone."""
    plot_reverse(load("reversal.json"), out / "03_reverse.png")
    plot_curve(load("curve.json"), out / "03_curve.png")
    plot_length(only(load("length-s0.json"), CORE), out / "04_length.png")
    methods = load("length-s0.json")
    plot_length(only(methods, set(methods["nll"]) - set(CORE[2:])), out / "04_methods.png",
                passkey=False)
    plot_trace(load("editing-ntp.json"), out / "06_trace.png")


def main():
    p = cli.Parser(prog="python -m tinyrev.tools.record", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only list the documents whose tables "
                   "differ from the record; exit 1 if any")
    p.add_argument("--figures", action="store_true", help="also draw the lessons' figures that "
                   "come from the record alone (needs matplotlib)")
    args = p.parse_args()
    if args.check:
        differ = stale()
        for d in differ:
            print(f"{d.relative_to(ROOT)}: a table differs from lessons/record/; render with "
                  "python -m tinyrev.tools.record")
        raise SystemExit(1 if differ else 0)
    for d in DOCUMENTS:
        new = render(d.read_text())
        if new != d.read_text():
            d.write_text(new)
            print(f"rendered {d.relative_to(ROOT)}")
    if args.figures:
        figures()


if __name__ == "__main__":
    cli.run(main, "python -m tinyrev.tools.record")
