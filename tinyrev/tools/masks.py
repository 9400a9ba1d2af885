"""The five attention masks as text grids: `python -m tinyrev.tools.masks`.

Covers: `show_mask`, a (T, T) mask drawn one row per query, and the five patterns at T = 8.
Leaves out: the masks themselves (tinyrev/attention.py, `build_mask`) and BICO's rotations, which
no mask shows: its mask lets every query see every key, and what makes it BICO is the reverse
rotation of the scores above the diagonal (lesson 02).
"""

import torch

from ..attention import build_mask

EXAMPLES = [("causal", {}), ("prefix", {"prefix_len": 3}), ("abi", {"part_a_len": 5}),
            ("bico", {}), ("lambda", {"n_global": 1, "n_local": 3})]


def show_mask(mask: torch.Tensor) -> str:
    """A (T, T) mask as text: one row per query, '■' where it may attend, '·' where not."""
    return "\n".join("".join("■" if x else "·" for x in row) for row in mask.tolist())


if __name__ == "__main__":
    print("rows: queries 0..7, columns: keys 0..7; ■ = the query may attend the key\n")
    for pattern, opts in EXAMPLES:
        print(f"{pattern} {opts}\n{show_mask(build_mask(pattern, 8, **opts))}\n")
