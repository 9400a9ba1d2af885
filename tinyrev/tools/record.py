"""The measurement record: `python -m tinyrev.tools.record` renders every results table of the
README and lesson 03 from the result files committed in lessons/record/.

Covers: the record's tables, each a function of its file (`TABLES`); the markers that hold
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
from ..reversal.evaluate import labelled, mean_std, plot_curve, plot_reverse, rows

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "lessons" / "record"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "lessons").glob("*.md"))]
MARKED = re.compile(r"(<!-- record: ([\w-]+) -->\n)(.*?)(<!-- end record -->)", re.DOTALL)
REVERSE = ("N2D-reverse", "D2N-reverse")


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


TABLES = {  # NAME: (record file, how its table is drawn)
    "reversal-accuracy": ("reversal.json", lambda r: results_table(r, "accuracy", 100)),
    "reversal-margin": ("reversal.json", lambda r: results_table(r, "logprob_margin", 1)),
    "reversal-seeds": ("reversal.json", every_seed),
    "berglund": ("berglund.json", berglund),
    "curve": ("curve.json", curve),
}


def render(text: str) -> str:
    """`text` with every marked table rendered again from the record."""
    def fill(m):
        if m[2] not in TABLES:
            raise ValueError(f"unknown record table {m[2]!r}; known: {', '.join(TABLES)}")
        file, draw = TABLES[m[2]]
        return m[1] + draw(load(file)) + m[4]
    return MARKED.sub(fill, text)


def stale(documents=DOCUMENTS) -> list:
    """The documents whose tables differ from what the record gives."""
    return [d for d in documents if render(d.read_text()) != d.read_text()]


def figures(out=ROOT / "lessons" / "figures"):
    plot_reverse(load("reversal.json"), out / "03_reverse.png")
    plot_curve(load("curve.json"), out / "03_curve.png")


def main():
    p = cli.Parser(prog="python -m tinyrev.tools.record", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only list the documents whose tables "
                   "differ from the record; exit 1 if any")
    p.add_argument("--figures", action="store_true", help="also draw lesson 03's figures from "
                   "the record (needs matplotlib)")
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
