"""One training sentence as each objective lays it out: `python -m tinyrev.tools.batches [NAME...]`.

Covers: for one generated sentence, a table per objective, a column per input token: the token,
its RoPE position, ABI's span offset, the target its output is scored on (· where none is) and
whether other tokens may attend to it (· for a key hidden from every query). Seeded, so it prints
the same every time; for BICO, the first seed whose coin picks a denoising step.
Leaves out: the objectives themselves (tinyrev/objectives.py), the masks (tools/masks.py) and
batching many sentences (padding only adds columns of [PAD]).
"""

import itertools

import torch

from .. import cli
from ..objectives import IGNORE, OBJECTIVES, get
from ..reversal.facts import generate


def layout(name: str, example, itos: list[str]) -> str:
    """The table of `example` under objective `name`, as text; `itos` names each token id."""
    for seed in itertools.count():
        batch = get(name)([example], torch.Generator().manual_seed(seed))
        if not name.startswith("bico") or batch.pattern.name == "bico":
            break
    T = batch.idx.shape[1]
    rows = {"input": [itos[t] for t in batch.idx[0].tolist()],
            "position": batch.pos.expand(1, T)[0].tolist(),
            "span offset": None if batch.span_pos is None else batch.span_pos[0].tolist(),
            "target": ["·" if t == IGNORE else itos[t] for t in batch.targets[0].tolist()],
            "visible key": None if batch.key_mask is None else
            ["■" if k else "·" for k in batch.key_mask[0].tolist()]}
    rows = {label: [str(x) for x in row] for label, row in rows.items() if row is not None}
    width = [max(len(row[t]) for row in rows.values()) for t in range(T)]
    lines = [f"{name} (attention pattern {batch.pattern.name!r}, seed {seed})"]
    lines += [label.ljust(12) + " ".join(x.rjust(w) for x, w in zip(row, width))
              for label, row in rows.items()]
    return "\n".join(lines)


def main():
    p = cli.Parser(prog="python -m tinyrev.tools.batches", description=__doc__.splitlines()[0])
    p.add_argument("objectives", nargs="*", metavar="NAME",
                   help=f"objectives to show (default: all of {', '.join(OBJECTIVES)})")
    names = p.parse_args().objectives or OBJECTIVES
    for name in names:
        get(name)  # an unknown name is refused, with the list, before anything is printed
    data = generate()
    example = next(e for e in data.train if e.entities)  # one with a name and a description
    print("one training sentence; columns are input tokens, output i is scored on target i\n")
    for name in names:
        print(layout(name, example, data.tokenizer.itos), end="\n\n")


if __name__ == "__main__":
    cli.run(main, "python -m tinyrev.tools.batches")
