"""The length-generalization experiment: train causally at length L, then read past L.

Covers: training on the long-text task (longtext.py), and evaluating the same weights, with no
parameter change, under every mode of methods.py: full causal attention (vanilla), the Λ mask
with LM-Infinite's distance limit, its two ablations, and the other training-free methods. It
measures the NLL by position bucket (up to 16L), the attention each layer puts on the first
tokens, and passkey accuracy (exact and per digit) by length and depth.
Leaves out: the language itself (longtext.py), the methods themselves (methods.py) and decoding
speed (tools/bench.py).
"""

import statistics
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F

from ..attention import Pattern, attention
from ..checks import MAX_BATCH_TOKENS, check_batch, check_int
from ..model import ModelConfig, Transformer, generate
from ..objectives import Batch
from ..checkpoint import check_fresh, claim, config_of, load_model
from ..trainer import TrainConfig, fit, pick_device
from . import longtext
from .methods import modes

TRAIN_LEN = 64
N_GLOBAL = 4  # BOS, the regime token and two words; StreamingLLM finds 1-4 sink tokens enough
LENGTH_TRAINING = TrainConfig(steps=2000, batch_size=32)
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
N_TEXTS, N_KEYS = 64, 32  # texts of 16L tokens for the NLL; passkey prompts per (length, depth)
FIRST_TOKEN_TEXTS = 16  # texts read for the first-token attention: a mean over many queries
NO_PASSKEY = ("lambda_no_limit", "window")  # ablations of Λ: their NLL says all the lesson needs


def buckets(L: int) -> list:
    """[0, L/2), [L/2, L), then doublings up to [8L, 16L)."""
    return [(0, L // 2), (L // 2, L)] + [(L * 2 ** k, L * 2 ** (k + 1)) for k in range(4)]


def train_length(out_dir, *, train_len: int = TRAIN_LEN, train_cfg: TrainConfig = LENGTH_TRAINING,
                 text_cfg: longtext.LongTextConfig = longtext.LongTextConfig(), device=None,
                 resume: dict | None = None, progress: bool = True) -> float:
    """Train a causal model on documents of `train_len` tokens; return the seconds it took."""
    check_int("the training length", train_len, 2)
    check_batch(train_cfg.batch_size, train_len)
    check_fresh(out_dir, resume)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    torch.manual_seed(train_cfg.seed)
    model = Transformer(ModelConfig(vocab_size=text_cfg.vocab_size))
    pos = torch.arange(train_len)

    def make_batch(gen):
        x = longtext.training_batch(text_cfg, train_cfg.batch_size, train_len + 1, gen)
        return Batch(x[:, :-1], x[:, 1:], pos)

    meta = {"task": "length", "train_len": train_len, "text": asdict(text_cfg)}
    t0 = time.perf_counter()
    with claim(out_dir):
        check_fresh(out_dir, resume)  # again: another process may have finished a run there
        fit(model, make_batch, train_cfg, out_dir, device=device, meta=meta, resume=resume,
            progress=progress)
    return time.perf_counter() - t0


def load_length_run(run_dir, device=None):
    """(model, train_len, text config, training seed) of a run trained by `train_length`."""
    model, ckpt = load_model(run_dir, "length", device)
    meta = ckpt["meta"]
    return (model, meta["train_len"], config_of(longtext.LongTextConfig, meta["text"], run_dir),
            ckpt["train_config"]["seed"])


@torch.no_grad()
def nll_by_position(model, texts, pattern: Pattern, batch_size: int = 8) -> torch.Tensor:
    """Mean NLL of each next token over `texts` (n, T): a (T - 1,) curve, position by position."""
    # BEGIN SOLUTION lesson04: the mean NLL of each next token, position by position
    model.eval()
    dev = next(model.parameters()).device
    total = torch.zeros(texts.shape[1] - 1)
    for chunk in texts.split(batch_size):
        chunk = chunk.to(dev)
        logits = model(chunk[:, :-1], None, pattern).float()
        nll = F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")
        total += nll.sum(0).cpu()
    return total / len(texts)
    # END SOLUTION


@torch.no_grad()
def passkey_accuracy(model, text_cfg, length: int, depth: float, pattern: Pattern, n: int,
                     seed: int = 0) -> tuple:
    """Of n prompts of `length` tokens with the key hidden at `depth`: the share decoded exactly,
    and the share of digits right (which shows a retrieval that is only partly there)."""
    model.eval()
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    prompts, keys = longtext.passkey_prompts(text_cfg, n, length, depth, gen)
    right = generate(model, prompts.to(dev), text_cfg.key_digits, pattern=pattern).cpu() == keys
    return right.all(1).float().mean().item(), right.float().mean().item()


@torch.no_grad()
def first_token_attention(model, texts, pattern: Pattern, n_first: int, train_len: int) -> list:
    """Per layer: the attention mass, averaged over heads and over queries at positions from
    2 * train_len on, that falls on the first `n_first` keys of `texts` (n, T). From 2L on, those
    keys lie outside every window of L keys, so a window without global keys gives exactly 0, and
    a mass far above an even spread shows heads that seek the first tokens out.

    The mass is read off `attention` itself: with a value of 1 on the first n_first keys and 0
    elsewhere, the weighted sum of values *is* the attention on them, under any pattern."""
    model.eval()
    dev = next(model.parameters()).device
    texts = texts.to(dev)
    pos = torch.arange(texts.shape[1], device=dev)
    first = (pos < n_first).float().view(1, 1, -1, 1)
    mass = []

    def measure(attn, args):  # args: what the layer's forward gets, its input first
        q, k, _ = attn.heads(args[0])
        out = attention(q, k, first.expand(*k.shape[:2], -1, 1), pos, pattern, base=attn.base)
        mass.append(out[:, :, 2 * train_len:].mean().item())

    hooks = [block.attn.register_forward_pre_hook(measure) for block in model.blocks]
    try:
        model(texts, pos, pattern)
    finally:
        for hook in hooks:
            hook.remove()
    return mass


def reading_curve(model, texts, pattern: Pattern, train_len: int) -> torch.Tensor:
    """`nll_by_position` under `pattern`. A dynamic scaling depends on how much of the text has
    been read, so the text is read again up to the end of each block of L tokens, and each
    block's tokens are scored at the scale of that length (s = 1 in the first, vanilla)."""
    if pattern.scaling is None or not pattern.scaling.dynamic:
        return nll_by_position(model, texts, pattern)
    ends = range(train_len, texts.shape[1] - 1 + train_len, train_len)
    return torch.cat([nll_by_position(model, texts[:, :end + 1], pattern)[end - train_len:]
                      for end in ends])[:texts.shape[1] - 1]


def evaluate_length(model, train_len: int, text_cfg, *, n_global: int = N_GLOBAL,
                    n_local: int | None = None, n_texts: int = N_TEXTS, passkey_lengths=None,
                    depths=DEPTHS, n_keys: int = N_KEYS, seed: int = 1, names=None,
                    scale: float | None = None, group: int | None = None,
                    window: int | None = None) -> dict:
    """The length table: NLL per bucket and first-token attention under every mode (or those in
    `names`), passkey accuracy (exact and per digit) for those not in NO_PASSKEY."""
    n_local = train_len if n_local is None else n_local
    edges = buckets(train_len)
    all_modes = modes(train_len, n_global=n_global, n_local=n_local, read_len=edges[-1][1],
                      scale=scale, group=group, window=window)  # bad sizes refused before work
    unknown = sorted(set(names or ()) - set(all_modes))
    if unknown:
        raise ValueError(f"unknown length mode(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(all_modes)}")
    extend = all_modes["self_extend"]
    settings = {"scale": all_modes["pi"].scaling.s, "self_extend_window": extend.n_local,
                "self_extend_group": extend.far.group}
    all_modes = {name: p for name, p in all_modes.items() if not names or name in names}
    lengths = passkey_lengths or [train_len // 2 * 2 ** k for k in range(6)]
    for n in lengths:  # before the minutes of NLL evaluation, not after
        for d in depths:
            longtext.check_passkey(text_cfg, n, d)
        if n * n_keys > MAX_BATCH_TOKENS:  # the prompts of one cell are decoded as one batch
            raise ValueError(f"{n_keys} passkey prompts of {n} tokens are {n * n_keys} tokens at "
                             f"once, over the {MAX_BATCH_TOKENS} a batch may hold; give shorter "
                             "--passkey-lengths or fewer --keys")
    texts = longtext.sample_texts(text_cfg, n_texts, edges[-1][1] + 1,
                                  torch.Generator().manual_seed(seed))
    result = {"task": "length", "train_len": train_len, "n_global": n_global, "n_local": n_local,
              **settings,
              "buckets": [f"[{lo},{hi})" for lo, hi in edges], "nll": {}, "curve": {},
              "first_token_attention": {},
              "passkey": {"lengths": lengths, "depths": list(depths)}, "passkey_by_depth": {},
              "passkey_digits": {}}
    for name, pattern in all_modes.items():
        curve = reading_curve(model, texts, pattern, train_len)
        result["nll"][name] = [curve[lo:hi].mean().item() for lo, hi in edges]
        result["curve"][name] = [curve[lo:lo + train_len].mean().item()
                                 for lo in range(0, len(curve), train_len)]
        result["first_token_attention"][name] = first_token_attention(
            model, texts[:FIRST_TOKEN_TEXTS], pattern, n_global, train_len)
        if name not in NO_PASSKEY:
            cells = [[passkey_accuracy(model, text_cfg, n, d, pattern, n_keys, seed + i)
                      for i, d in enumerate(depths)] for n in lengths]
            result["passkey_by_depth"][name] = [[exact for exact, _ in row] for row in cells]
            result["passkey_digits"][name] = [[digits for _, digits in row] for row in cells]
            result["passkey"][name] = [statistics.fmean(row)
                                       for row in result["passkey_by_depth"][name]]
    return result


def format_length(r: dict) -> str:
    """The NLL table (with each bucket's ratio to [L/2, L)), the curve and the passkey tables."""
    L = r["train_len"]
    lines = [f"NLL per bucket (trained at L = {L}; Λ: n_global {r['n_global']}, "
             f"n_local {r['n_local']})",
             "mode".ljust(17) + "".join(b.rjust(12) for b in r["buckets"])]
    for name, row in r["nll"].items():
        lines.append(name.ljust(17) + "".join(f"{x:12.3f}" for x in row))
    lines.append("ratio to [L/2,L)")
    for name, row in r["nll"].items():
        lines.append(name.ljust(17) + "".join(f"{x / row[1]:12.3f}" for x in row))
    lines += ["", "NLL by position, mean over each block of L tokens",
              "positions".ljust(17) + "".join(n.rjust(17) for n in r["curve"])]
    for k in range(len(next(iter(r["curve"].values())))):
        lines.append(f"[{k * L},{(k + 1) * L})".ljust(17)
                     + "".join(f"{c[k]:17.3f}" for c in r["curve"].values()))
    even = r["n_global"] / (r["n_global"] + r["n_local"])
    lines += ["", f"attention on the first {r['n_global']} tokens from queries past 2L, per layer "
              f"(Λ spreading evenly over its keys would give {even:.3f})"]
    for name, mass in r["first_token_attention"].items():
        lines.append(name.ljust(17) + "".join(f"{m:8.3f}" for m in mass))
    lines += ["", "passkey exact match (%) by total length, mean over depths "
              + ", ".join(f"{d:g}" for d in r["passkey"]["depths"]),
              "length".ljust(17) + "".join(str(n).rjust(8) for n in r["passkey"]["lengths"])]
    for name in r["passkey_by_depth"]:
        lines.append(name.ljust(17) + "".join(f"{100 * a:8.0f}" for a in r["passkey"][name]))
    for title, key in (("exact match", "passkey_by_depth"), ("digits right", "passkey_digits")):
        lines += ["", f"passkey {title} (%) by depth (rows) and length (columns)"]
        for name, grid in r[key].items():
            for i, d in enumerate(r["passkey"]["depths"]):
                cells = "".join(f"{100 * row[i]:8.0f}" for row in grid)
                lines.append(f"{name} @ {d:g}".ljust(17) + cells)
    return "\n".join(lines)


def plot_curve(r: dict, path, passkey: bool = True):
    """The NLL by position under every mode and, with `passkey`, a second panel: passkey exact
    match by length for the key nearest the start and nearest the question. Needs matplotlib,
    an optional extra."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    L = r["train_len"]
    fig, axes = plt.subplots(1, 2 if passkey else 1, figsize=(12 if passkey else 7, 4),
                             squeeze=False)
    nll = axes[0, 0]
    for k, (name, curve) in enumerate(r["curve"].items()):
        nll.plot([L * (b + 0.5) for b in range(len(curve))], curve, marker="o", label=name,
                 color=f"C{k % 10}", linestyle="-" if k < 10 else "--")
    nll.set(xlabel="position (token)", ylabel=f"NLL, nats per token (mean over blocks of {L})",
            title=f"Next-token loss by position, same weights, {len(r['curve'])} modes")
    if passkey:
        key = axes[0, 1]
        depths, lengths = r["passkey"]["depths"], r["passkey"]["lengths"]
        colour = {name: f"C{k % 10}" for k, name in enumerate(r["curve"])}  # as in the NLL panel
        for name, grid in r["passkey_by_depth"].items():
            for i in sorted({0, len(depths) - 1}):
                key.plot(lengths, [100 * row[i] for row in grid], marker="o", color=colour[name],
                         linestyle="--" if i == 0 else "-", label=f"{name}, depth {depths[i]:g}")
        key.set(xlabel="prompt length, answer included (tokens)",
                ylabel="passkey exact match (%)",
                title="Passkey retrieval, key at the start (dashed) or end (solid)")
    for ax in axes[0]:
        ax.axvline(L, color="gray", linestyle=":", label="training length L")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
