"""Lesson 06's experiment: trace where a reversal run recalls its facts, edit some, measure.

Covers: the facts (the people of a run on generated facts who were trained name first only) and
their prompts: training-style (the run's own training sentences cut before the description),
held-out paraphrases (the N2D test) and reversed (the N2D-reverse test, description first); a new
description per person made of words the model knows (this person's adjective and role, another
person's place); the trace table averaged over facts; the edits by each method (`EDITORS`: ROME
and fine-tuning one fact at a time from the trained weights, ROME one after another and MEMIT all
at once) and what they change: efficacy, paraphrase, specificity and reverse, for the new fact
and the old.
Leaves out: tracing and the editing methods themselves (trace.py, rome.py, memit.py,
finetune.py); facts read from files (who is who is known only for generated facts); runs of
objectives that ask by infilling or by prefix.
"""

from dataclasses import dataclass

import torch

from ..model import generate
from ..tokenizer import is_punctuation, split_words
from . import memit, rome, trace
from .finetune import finetune

EDITS = 20  # facts edited by default
EDIT_PROMPTS = 5  # training-style prompts a key is averaged over and a value is fitted on
SHARED = 1  # every description opens with "the": the words after it say who
MEASURE_PROMPTS = 10  # training-style prompts an edit's efficacy is measured on
COLUMNS = ("before the name", "name, first token", "name, last token", "after the name",
           "last token")


@dataclass
class Fact:
    name: list              # ids of the person's name
    old: list               # ids of the description the run was trained on
    new: list               # ids of the description an edit writes
    prompts: list           # training-style prompts: [BOS] opener name link
    paraphrases: list       # held-out prompts of the same direction
    reverse: list           # description-first prompts asking for the name (the old description)
    tail: list              # what ends a training sentence after its description ("." [EOS])


def find(seq: list, part: list) -> int:
    """Index of the first occurrence of `part` in `seq`, or -1 (as str.find)."""
    return next((i for i in range(len(seq) - len(part) + 1) if seq[i:i + len(part)] == part), -1)


def facts_of(data) -> list:
    """Every person trained name first only (Berglund's p2d subset), with a new description."""
    if not data.people:
        raise ValueError("lesson 06 needs a run on generated facts: only they say who is who "
                         "(a run trained with --facts DIR cannot be edited here)")
    encode, people = data.tokenizer.encode, data.people["p2d"]
    taken = {d for group in data.people.values() for _, d in group}
    out = []
    for i, (name, desc) in enumerate(people):
        start = desc.rsplit(" ", 1)[0]  # "the ADJECTIVE ROLE of", then the place
        places = [d.rsplit(" ", 1)[1] for _, d in people[i + 1:] + people[:i]]
        new = next(f"{start} {p}" for p in places if f"{start} {p}" not in taken)
        n, d = encode(name), encode(desc)
        own = [e for e in data.train if e.ids[e.prompt_len:e.prompt_len + len(d)].tolist() == d
               and find(e.ids[:e.prompt_len].tolist(), n) >= 0]
        out.append(Fact(n, d, encode(new), [e.ids[:e.prompt_len].tolist() for e in own],
                        [it.prompt for it in data.tests["N2D"] if it.target == d],
                        [it.prompt for it in data.tests["N2D-reverse"] if it.target == n],
                        own[0].ids[own[0].prompt_len + len(d):].tolist()))
    return out


@torch.no_grad()
def greedy(model, objective, prompts: list, n_tokens: int) -> list:
    """The first `n_tokens` greedy tokens after each prompt, prompts of one length batched."""
    out, device = [None] * len(prompts), model.embed.weight.device
    for group in rome.by_length(prompts).values():
        q = objective.query(torch.tensor([prompts[i] for i in group], device=device))
        decoded = generate(model, q.idx, n_tokens, pos=q.pos, span_pos=q.span_pos,
                           pattern=q.pattern)
        for row, i in zip(decoded.tolist(), group):
            out[i] = row
    return out


def share(decoded: list, target: list) -> float:
    """The share of greedy answers that start with the whole `target`."""
    return sum(d[:len(target)] == target for d in decoded) / len(decoded)


def trace_table(model, objective, facts: list, seed: int = 0) -> torch.Tensor:
    """(n_layers, 3 components, 5 columns): the share of p(answer) restoring one state recovers,
    (mean restored − mean corrupted) / (mean clean − mean corrupted) over the facts, each traced
    on its first training-style prompt. Every description opens with "the", so what is traced is
    the next word, the first that says who: p(adjective | prompt + "the"). Columns: COLUMNS."""
    gen = torch.Generator().manual_seed(seed)
    clean, corrupted, restored = 0.0, 0.0, 0.0
    for f in facts:
        q = f.prompts[0] + f.old[:SHARED]
        s = find(q, f.name)
        name = list(range(s, s + len(f.name)))
        t = trace.trace(model, objective, q, f.old[SHARED:SHARED + 1], name, gen)
        r, e = t["restored"], s + len(f.name)
        columns = [r[..., :s].mean(-1), r[..., s], r[..., e - 1],
                   r[..., e:-1].mean(-1), r[..., -1]]  # a link word always follows the name
        clean, corrupted = clean + t["clean"], corrupted + t["corrupted"]
        restored = restored + torch.stack(columns, -1)
    return (restored - corrupted) / (clean - corrupted)


def edit_layer(table: torch.Tensor) -> int:
    """Where the trace says the fact is recalled: the first layer whose feed-forward output at
    the last token recovers at least half of p(answer) (the layer that recovers most, if none
    does)."""
    ffn = table[:, trace.COMPONENTS.index("ffn"), COLUMNS.index("last token")]
    return int((ffn >= 0.5).nonzero()[0, 0]) if (ffn >= 0.5).any() else int(ffn.argmax())


def common_prompts(f: Fact) -> list:
    """Up to EDIT_PROMPTS of f's training-style prompts, all of its commonest length, so that
    fitting a value or fine-tuning is one batch a step."""
    lengths = [len(p) for p in f.prompts]
    common = max(set(lengths), key=lengths.count)
    return [p for p in f.prompts if len(p) == common][:EDIT_PROMPTS]


def request(f: Fact) -> rome.Request:
    """The edit of f as ROME and MEMIT ask it. The key is the last token before the first word
    that changes ("of", before the place); the answer is the new description from there."""
    same = next((j for j, (a, b) in enumerate(zip(f.old, f.new)) if a != b),
                min(len(f.old), len(f.new)))
    prompts = [p + f.new[:same] for p in common_prompts(f)]
    return rome.Request(prompts, [len(p) - 1 for p in prompts], f.new[same:])


def tuned(layer_only: bool):
    """Fine-tuning on the new fact's sentences (its prompts, the new description, the training
    sentence's end), every weight free or only w2 at the edited layer."""
    def edit(model, objective, facts, layer, layers, Cs):
        params = [model.blocks[layer].ffn.w2.weight] if layer_only else list(model.parameters())
        finetune(model, [p + f.new + f.tail for f in facts for p in common_prompts(f)], params)
    return edit


def rome_each(model, objective, facts, layer, layers, Cs):
    """ROME's edits one after another, each on the weights as the previous one left them."""
    for f in facts:
        rome.edit(model, objective, layer, Cs[layer], request(f))


def memit_together(model, objective, facts, layer, layers, Cs):
    memit.edit_many(model, objective, layers, Cs, [request(f) for f in facts])


EDITORS = {  # name: (edits written together: one, or all; how)
    "rome": ("one", rome_each),
    "finetune": ("one", tuned(layer_only=False)),
    "finetune-layer": ("one", tuned(layer_only=True)),
    "rome-sequential": ("all", rome_each),
    "memit": ("all", memit_together),
}


def measure_edits(model, objective, data, facts: list, n_edits: int, layer: int,
                  methods=("rome",), layers=None) -> dict:
    """Edit the first `n_edits` facts by each method, measure, put the trained weights back.

    A method that writes one edit at a time starts each from the trained weights; the others
    write all n_edits together. {"methods": {name: {"new": {efficacy, paraphrase, specificity,
    reverse}, "old": {the same}}}, "new_unedited": {the same for the new description, asked of
    the unedited model: the control that says what an edit itself did}}, fractions averaged over
    the edits. Specificity: the share of the facts not edited whose first training-style prompt
    is answered as before, right or wrong (1 for the unedited model). ROME and fine-tuning of
    one layer edit `layer`; MEMIT spreads over `layers` (default: `layer` alone; `run` gives
    every layer).
    """
    layers = layers or [layer]
    Cs = {l: rome.second_moment(model, l, [e.ids.tolist() for e in data.train])
          for l in sorted({layer, *layers})}
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    firsts = [f.prompts[0] for f in facts]
    n = max(len(f.old) for f in facts)
    before = greedy(model, objective, firsts, n)
    control = dict.fromkeys(("efficacy", "paraphrase", "specificity", "reverse"), 0.0)
    for f in facts[:n_edits]:
        score(control, model, objective, f, f.new, 1.0)
    out = {"methods": {}, "new_unedited": {k: v / n_edits for k, v in control.items()}}
    for method in methods:
        together, edit = EDITORS[method]
        groups = [[i] for i in range(n_edits)] if together == "one" else [list(range(n_edits))]
        sums = {side: dict.fromkeys(control, 0.0) for side in ("new", "old")}
        for group in groups:
            edit(model, objective, [facts[i] for i in group], layer, layers, Cs)
            after = greedy(model, objective, firsts, n)
            others = [j for j in range(len(facts)) if j not in group]
            kept = sum(after[j] == before[j] for j in others) / len(others)
            for i in group:
                for side, desc in (("new", facts[i].new), ("old", facts[i].old)):
                    score(sums[side], model, objective, facts[i], desc, kept)
            model.load_state_dict(trained)
        out["methods"][method] = {side: {k: v / n_edits for k, v in got.items()}
                                  for side, got in sums.items()}
    return out


def score(got: dict, model, objective, f: Fact, desc: list, specificity: float):
    """Add to `got` how often description `desc` is given for f's name (its training-style prompts,
    then its paraphrases) and how often `desc` asked backwards gives the name."""
    n = len(desc)
    got["efficacy"] += share(greedy(model, objective, f.prompts[:MEASURE_PROMPTS], n), desc)
    got["paraphrase"] += share(greedy(model, objective, f.paraphrases, n), desc)
    got["specificity"] += specificity
    reverse = [replaced(p, f.old, desc) for p in f.reverse]
    got["reverse"] += share(greedy(model, objective, reverse, len(f.name)), f.name)


def replaced(seq: list, old: list, new: list) -> list:
    i = find(seq, old)
    if i < 0:
        raise ValueError(f"{old} does not occur in {seq}")
    return seq[:i] + new + seq[i + len(old):]


def run(model, data, objective, *, n_edits: int | None = None, layer: int | None = None,
        fact: int | None = None, new: str | None = None, methods=("rome",),
        layers: tuple | None = None) -> dict:
    """Trace the facts, then edit `n_edits` of them (default: EDITS, or every fact if fewer; or
    only fact `fact`, to `new` if given) by each of `methods` at `layer` (default: where the
    trace points), MEMIT over `layers` (first, last) (default: every layer). Returns what
    `--json` writes."""
    unknown = [m for m in methods if m not in EDITORS]
    if unknown:
        raise ValueError(f"--method {unknown[0]!r} is not an editing method; choose from "
                         f"{', '.join(EDITORS)}, or all")
    last = len(model.blocks) - 1
    first_last = (0, last) if layers is None else tuple(layers)
    if not 0 <= first_last[0] <= first_last[1] <= last:
        raise ValueError(f"--layers {first_last[0]} {first_last[1]} is not a range of this "
                         f"model's layers: give FIRST <= LAST, both in 0 to {last}")
    if objective.form != "causal":
        raise ValueError(f"lesson 06 edits runs asked left to right (ntp and reverse; bico and "
                         f"bico-entity asked causally); {objective.name!r} is asked "
                         f"{objective.form}")
    if layer is not None and not 0 <= layer < len(model.blocks):
        raise ValueError(f"--layer {layer} is outside the model; it has layers 0 to "
                         f"{len(model.blocks) - 1}")
    facts = facts_of(data)
    if fact is not None:
        if not 0 <= fact < len(facts):
            raise ValueError(f"--fact {fact} is out of range: this run has facts 0 to "
                             f"{len(facts) - 1} (the people trained name first only)")
        if new is not None:
            unknown = [w for w in split_words(new) if w not in data.tokenizer.words]
            if unknown or not new.strip():
                raise ValueError(f"--new {new!r}: {unknown or 'no word'} is not in the run's "
                                 f"vocabulary; write it in words it was trained on, as in "
                                 f"{data.tokenizer.decode(facts[fact].old)!r}")
            if all(is_punctuation(w) for w in split_words(new)):
                raise ValueError(f"--new {new!r} holds no word; a description is words, as in "
                                 f"{data.tokenizer.decode(facts[fact].old)!r}")
            old_ids, facts[fact].new = facts[fact].old, data.tokenizer.encode(new)
            if facts[fact].new == old_ids[:len(facts[fact].new)]:
                raise ValueError(f"--new {new!r} is the description the run already knows, or "
                                 f"its start ({data.tokenizer.decode(old_ids)!r}); an edit "
                                 "changes at least one of its words")
        facts.insert(0, facts.pop(fact))  # edits take the first facts
        n_edits = 1
    elif new is not None:
        raise ValueError("--new rewrites one fact: give its index with --fact")
    n_edits = min(EDITS, len(facts)) if n_edits is None else n_edits
    if not 1 <= n_edits <= len(facts):
        raise ValueError(f"--edits {n_edits}: this run has {len(facts)} facts to edit")
    together = [m for m in methods if EDITORS[m][0] == "all"]
    if together and n_edits == len(facts):
        raise ValueError(f"--edits {n_edits} edits every fact at once with {together[0]}, which "
                         f"leaves none to measure specificity on; give --edits below "
                         f"{len(facts)}")
    table = trace_table(model, objective, facts)
    layer = edit_layer(table) if layer is None else layer
    best_layer, component, column = (int(i) for i in torch.unravel_index(table.argmax(),
                                                                         table.shape))
    best = [best_layer, COLUMNS[column], trace.COMPONENTS[component]]
    return {"task": "editing", "objective": objective.name, "columns": list(COLUMNS),
            "trace": {c: table[:, k].tolist() for k, c in enumerate(trace.COMPONENTS)},
            "trace_best_recovery": table.max().item(), "trace_best": best, "layer": layer,
            "memit_layers": list(range(first_last[0], first_last[1] + 1)),
            "n_edits": n_edits, "edited": [data.tokenizer.decode(f.name) + ": " +
                                           data.tokenizer.decode(f.old) + " -> " +
                                           data.tokenizer.decode(f.new) for f in facts[:n_edits]],
            **measure_edits(model, objective, data, facts, n_edits, layer, methods,
                            list(range(first_last[0], first_last[1] + 1)))}


def report(r: dict) -> str:
    lines = [f"causal trace ({r['objective']}): share of p(first word after 'the' | prompt) that "
             "restoring one clean state recovers, name corrupted, mean over the facts",
             " " * 20 + "".join(c.rjust(18) for c in r["columns"])]
    for name, rows in r["trace"].items():
        lines += [f"{name} layer {k}".ljust(20) + "".join(f"{v:18.2f}" for v in row)
                  for k, row in enumerate(rows)]
    layer, column, component = r["trace_best"]
    lines += [f"best: {r['trace_best_recovery']:.2f}, restoring the {component} at layer {layer}, "
              f"{column}", "",
              f"{r['n_edits']} edit(s) at layer {r['layer']} (MEMIT: layers "
              f"{', '.join(map(str, r['memit_layers']))}); e.g. {r['edited'][0]}",
              " " * 30 + "".join(k.rjust(14) for k in r["new_unedited"])]
    rows = [(f"{m}, {side} fact", got[side]) for m, got in r["methods"].items()
            for side in ("new", "old")] + [("new fact, unedited model", r["new_unedited"])]
    for label, got in rows:
        lines.append(label.ljust(30) + "".join(f"{100 * v:13.0f}%" for v in got.values()))
    return "\n".join(lines)


def plot_trace(r: dict, path):
    """The trace as three heat maps (residual, attention, feed-forward). Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    for ax, (name, rows) in zip(axes, r["trace"].items()):
        image = ax.imshow(rows, cmap="Purples", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(r["columns"])), r["columns"], rotation=30, ha="right")
        ax.set(title=f"restore the {name}", xlabel="token")
        for k, row in enumerate(rows):
            for j, v in enumerate(row):
                ax.text(j, k, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if v > 0.6 else "black")
    axes[0].set(ylabel="layer", yticks=range(len(r["trace"]["residual"])))
    fig.colorbar(image, ax=axes, shrink=0.8, label="share of p(answer) recovered")
    fig.suptitle(f"Causal trace of a {r['objective']} run: where the facts are recalled", y=1.04)
    fig.savefig(path, dpi=110, bbox_inches="tight")
