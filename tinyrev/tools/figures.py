"""The lessons' pictures of the mechanisms: `python -m tinyrev.tools.figures [DIR]`.

Covers: three PNG files written to DIR (default lessons/figures), each drawn from the code it
shows: RoPE's attention score against the offset, forward and reverse (lesson 01, from
`apply_rope`); the offset a score sees under plain bidirectional RoPE and under BICO (lesson 02,
read back out of `attention` itself: `offsets_seen`);
Λ's mask and the distance RoPE sees under it (lesson 04, from `lambda_mask`). The figures are
seeded, so the command redraws the committed files.
Leaves out: figures of trained runs (`eval.py --plot` draws those), the text grids that work in
a terminal (tinyrev/tools/masks.py), and matplotlib itself, an optional extra
(`pip install -e ".[plot]"`).
"""

from pathlib import Path

import torch

from .. import cli
from ..attention import Pattern, attention, lambda_mask
from ..rope import apply_rope

FIGURES = Path(__file__).resolve().parents[2] / "lessons" / "figures"


def rope_scores(max_offset: int = 48, dim: int = 32, seed: int = 0):
    """Offsets d = n - m and the score q·k of one random query at m and key at n = m + d, with
    forward RoPE and with the reverse rotation: the reverse curve is the forward one mirrored."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, dim, generator=g)
    m = torch.tensor([max_offset])
    offsets = torch.arange(-max_offset, max_offset + 1)
    curves = {}
    for reverse in (False, True):
        qr = apply_rope(q, m, reverse=reverse)
        kr = apply_rope(k.expand(len(offsets), dim), m + offsets, reverse=reverse)
        curves["reverse" if reverse else "forward"] = (kr @ qr.T).squeeze(-1) / dim ** 0.5
    return offsets, curves


def draw_rope(plt, path):
    offsets, curves = rope_scores()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.axvspan(0.5, offsets.max().item() + 0.5, color="0.92",
               label="keys after the query:\nnever seen in causal training")
    for name, style in (("forward", "-o"), ("reverse", "--s")):
        ax.plot(offsets.numpy(), curves[name].numpy(), style, markersize=3,
                label=f"{name} rotation")
    ax.set(xlabel="offset n − m of the key (n) from the query (m)", ylabel="score q·k / √D",
           title="RoPE: one query and one key, moved apart (the reverse rotation mirrors it)")
    ax.axvline(0, color="k", linewidth=0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, not on them
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def offsets_seen(pattern, T: int = 8, D: int = 4, base: float = 1e6) -> torch.Tensor:
    """(T, T): the offset at which `attention` scores each key, read back out of it. Only pair 1
    is set, the query 1 and the key i as complex numbers, so a score is −sin(offset · θ) / √D
    with θ = base^(−2/D) small enough that sin is its angle; with one-hot values the output is
    the attention weights, and log w(i, j) − log w(i, i) is the score of (i, j) (0 at i)."""
    q, k = torch.zeros(2, 1, 1, T, D, dtype=torch.float64)
    q[..., 2], k[..., 3] = 1.0, 1.0
    weights = attention(q, k, torch.eye(T, dtype=torch.float64).view(1, 1, T, T),
                        torch.arange(T), pattern, base=base)[0, 0].log()
    score = weights - weights.diagonal()[:, None]
    return (-score * D ** 0.5 / base ** (-2 / D)).round().long()


def draw_bico(plt, path, T: int = 8):
    grids = {"plain RoPE, every key visible: offset j − i": offsets_seen(Pattern("prefix",
                                                                                 prefix_len=T)),
             "BICO: forward up to the diagonal, reverse after it: −|j − i|": offsets_seen("bico")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, (title, grid) in zip(axes, grids.items()):
        ax.imshow(grid.numpy(), cmap="coolwarm", vmin=-T, vmax=T)
        for r, row in enumerate(grid.tolist()):
            for c, value in enumerate(row):
                ax.text(c, r, f"{value:+d}" if value else "0", ha="center", va="center",
                        fontsize=8)
        ax.set(title=title, xlabel="key j", ylabel="query i")
        ax.title.set_fontsize(9)
    fig.suptitle("The offset each score is computed at (red: positive, an offset causal "
                 "training never showed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def draw_lambda(plt, path, T: int = 16, n_global: int = 2, n_local: int = 4):
    pos = torch.arange(T)
    mask = lambda_mask(pos, pos, n_global, n_local)
    # the distance limit: a visible key is seen at its true distance, never more than n_local
    distance = (pos[:, None] - pos[None, :]).clamp(max=n_local).float()
    distance[~mask] = float("nan")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.8))
    left.imshow(mask.numpy(), cmap="Greys", vmin=0, vmax=1.4)
    left.set(title=f"Λ mask: the first {n_global} keys and the last {n_local}",
             xlabel="key j", ylabel="query i")
    image = right.imshow(distance.numpy(), cmap="viridis")
    for (r, c) in mask.nonzero().tolist():
        right.text(c, r, int(distance[r, c]), ha="center", va="center", fontsize=7,
                   color="white" if distance[r, c] < n_local / 2 else "black")
    right.set(title=f"distance RoPE sees: i − j, at most n_local = {n_local}",
              xlabel="key j", ylabel="query i")
    fig.colorbar(image, ax=right, shrink=0.8, label="distance RoPE sees (positions)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


DRAWINGS = {"01_rope.png": draw_rope, "02_bico.png": draw_bico, "04_lambda.png": draw_lambda}


def main():
    p = cli.Parser(prog="python -m tinyrev.tools.figures", description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default=str(FIGURES), type=cli.nonempty,
                   help="folder for the PNG files (default: lessons/figures)")
    out = Path(p.parse_args().out)
    if not out.is_dir():
        p.error(f"{out} is not a folder; create it first")
    try:
        import matplotlib
    except ImportError:
        p.error('the figures need matplotlib, an optional extra: pip install -e ".[plot]"')
    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    for name, draw in DRAWINGS.items():
        draw(plt, out / name)
        plt.close("all")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    cli.run(main, "python -m tinyrev.tools.figures")
