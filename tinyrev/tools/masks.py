"""The five attention masks as text grids: `python -m tinyrev.tools.masks`.

Covers: `show_mask`, a (T, T) mask drawn one row per query, the five patterns at T = 8, and one
BICO row written out (`bico_row`): BICO's mask lets every query see every key, so the grid alone
hides what makes it BICO, the placeholders removed from the keys and the two rotations.
Leaves out: the masks themselves (tinyrev/attention.py, `build_mask`, `attention`).
"""

import torch

from ..attention import build_mask

EXAMPLES = [("causal", {}), ("prefix", {"prefix_len": 3}), ("abi", {"part_a_len": 5}),
            ("bico", {}), ("lambda", {"n_global": 1, "n_local": 3})]


def show_mask(mask: torch.Tensor) -> str:
    """A (T, T) mask as text: one row per query, '■' where it may attend, '·' where not."""
    return "\n".join("".join("■" if x else "·" for x in row) for row in mask.tolist())


def bico_row(T: int = 8, query: int = 4, placeholder: int = 2) -> str:
    """Query `query`'s row under BICO with a placeholder at `placeholder`: which keys it sees, the
    signed offset j - i of each, and the distance RoPE scores it at (forward rotation up to the
    diagonal, reverse rotation after it, so a key d places ahead scores like one d places behind)."""
    cells = lambda f, hide=True: "".join(("·" if hide and j == placeholder else f(j)).rjust(4)
                                         for j in range(T))
    return "\n".join([
        f"bico, query {query}, a placeholder at {placeholder} (removed from the keys):",
        "key j".ljust(16) + cells(str, hide=False),
        "visible".ljust(16) + cells(lambda j: "■"),
        "offset j - i".ljust(16) + cells(lambda j: f"{j - query:+d}" if j != query else "0"),
        "RoPE distance".ljust(16) + cells(lambda j: str(abs(j - query))),
        "rotation".ljust(16) + cells(lambda j: "fwd" if j <= query else "rev")])


if __name__ == "__main__":
    from .. import cli
    cli.Parser(prog="python -m tinyrev.tools.masks", description=__doc__.splitlines()[0]) \
        .parse_args()  # no flags: a mistyped one is refused, not ignored
    print("rows: queries 0..7, columns: keys 0..7; ■ = the query may attend the key\n")
    for pattern, opts in EXAMPLES:
        print(f"{pattern} {opts}\n{show_mask(build_mask(pattern, 8, **opts))}\n")
    print(bico_row())
