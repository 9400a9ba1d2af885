"""The five attention patterns: causal, prefix, ABI, BICO and Λ, behind two functions.

Covers: `build_mask` (which key each query may see) and `attention` (scores, mask, softmax,
weighted sum, including the per-branch rotations that BICO and Λ need).
Leaves out: the projections and heads (model.py) and position embedding math (rope.py).

q, k and v arrive *unrotated*: BICO rotates the two triangles of the score matrix differently,
and Λ rotates its global branch differently from its local one, so rotation belongs here.

Keys and queries: k and v hold the whole sequence (T_k positions, `pos` has length T_k); q holds
its last T_q positions. T_q == T_k in training; T_q < T_k while decoding with a KV cache. Λ reads
its mask off the positions rather than the indices, so it also works on a bounded cache, whose
keys skip the middle of the text.
"""

import math

import torch
import torch.nn.functional as F

from .rope import apply_rope

PATTERNS = ("causal", "prefix", "abi", "bico", "lambda")


def _prefix_length(name, value, T, device):
    """An int or a (B,) tensor of prefix lengths, as something that broadcasts against (T, T)."""
    if value is None:
        raise ValueError(f"this pattern needs `{name}` (the length of the bidirectional part)")
    value = torch.as_tensor(value, device=device)
    if value.dtype.is_floating_point or value.dim() > 1:
        raise ValueError(f"`{name}` must be an int or a 1-D tensor of ints; got {value!r}")
    if (value < 0).any() or (value > T).any():
        raise ValueError(f"`{name}`={value.tolist()} is outside [0, {T}], the sequence length")
    return value.view(-1, 1, 1) if value.dim() == 1 else value


def build_mask(pattern: str, T: int, *, prefix_len=None, part_a_len=None, n_global=None,
               n_local=None, n_queries=None, device=None) -> torch.Tensor:
    """Boolean (T, T) mask, True where query i may attend key j.

    causal: j <= i.      prefix: causal, plus every key j < prefix_len.
    abi: the prefix mask with Part A as the prefix (GLM: A bidirectional, B sees A and earlier B).
    bico: every pair.    lambda: j <= i and (i - j < n_local or j < n_global).
    A length given as a (B,) tensor, one per sequence, gives a (B, T, T) mask.
    n_queries: only the last n_queries rows, (n_queries, T). Decoding asks for one row over
    thousands of keys; building all T x T rows to keep one would cost O(T^2) per token.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"unknown attention pattern {pattern!r}; choose one of {PATTERNS}")
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"sequence length must be a positive int; got {T!r}")
    T_q = T if n_queries is None else n_queries
    if isinstance(T_q, bool) or not isinstance(T_q, int) or not 1 <= T_q <= T:
        raise ValueError(f"n_queries must be an int in [1, {T}], the sequence length; got {T_q!r}")
    i = torch.arange(T - T_q, T, device=device)[:, None]
    j = torch.arange(T, device=device)[None, :]
    if pattern == "bico":
        # BEGIN SOLUTION lesson02: the BICO mask, every pair
        return torch.ones(T_q, T, dtype=torch.bool, device=device)
        # END SOLUTION
    if pattern == "prefix":
        # BEGIN SOLUTION lesson02: the prefix mask (lengths checked by _prefix_length)
        return (j <= i) | (j < _prefix_length("prefix_len", prefix_len, T, device))
        # END SOLUTION
    if pattern == "abi":
        # BEGIN SOLUTION lesson02: the ABI mask, Part A as the prefix
        return (j <= i) | (j < _prefix_length("part_a_len", part_a_len, T, device))
        # END SOLUTION
    if pattern == "lambda":
        return lambda_mask(i[:, 0], j[0], n_global, n_local)
    # BEGIN SOLUTION lesson02: the causal mask
    return j <= i
    # END SOLUTION


def lambda_mask(q_pos, k_pos, n_global, n_local) -> torch.Tensor:
    """(T_q, T_k) Λ mask from positions: key j is visible to query i iff j <= i and it lies in the
    local branch (i - j < n_local) or the global one (j < n_global)."""
    check_lambda_sizes(n_global, n_local)
    # BEGIN SOLUTION lesson02: the Λ mask from positions, a causal window plus the first n_global
    i, j = q_pos[:, None], k_pos[None, :]
    return (j <= i) & ((i - j < n_local) | (j < n_global))
    # END SOLUTION


def check_lambda_sizes(n_global, n_local):
    if isinstance(n_local, bool) or not isinstance(n_local, int) or n_local < 1:
        raise ValueError(f"n_local (the Λ window) must be an integer >= 1; got {n_local!r}")
    if isinstance(n_global, bool) or not isinstance(n_global, int) or n_global < 0:
        raise ValueError(f"n_global (Λ's first tokens kept) must be an integer >= 0; got {n_global!r}")


def attention(q, k, v, pos, pattern: str = "causal", *, key_mask=None, base: float = 10000.0,
              distance_limit: bool = True, k_rotated: bool = False, **options) -> torch.Tensor:
    """Attention of unrotated q (B, H, T_q, Dh) over k, v (B, H, T_k, Dh) under `pattern`.

    pos: positions of the T_k keys, (T_k,) or (B, T_k); the queries sit at the last T_q of them.
    key_mask: optional (B, T_k) bool, False for keys nobody may see (padding, BICO placeholders).
    options: the lengths `build_mask` needs for the pattern. For "lambda", `distance_limit=False`
    turns off LM-Infinite's distance limit and leaves only the Λ mask.
    k_rotated: k arrives already rotated by `pos` (a full KV cache stores it so). Causal, prefix
    and ABI rotate a key by its own position only, so that is the same; BICO and Λ rotate a key
    by its role and need it unrotated.
    A query with no visible key returns a zero vector instead of NaN.
    """
    T_q, T_k = q.shape[-2], k.shape[-2]
    if k_rotated and pattern in ("bico", "lambda"):
        raise ValueError(f"pattern {pattern!r} rotates each key by its role and needs unrotated "
                         f"keys; decode it without a full cache (Λ: a bounded KVCache)")
    if pattern == "lambda":
        if pos.dim() != 1:
            raise ValueError(f"Λ attention takes one position vector (T,) for the whole batch; "
                             f"got positions of shape {tuple(pos.shape)}")
        mask = lambda_mask(pos[T_k - T_q:], pos, options.get("n_global"), options.get("n_local"))
    else:
        mask = build_mask(pattern, T_k, n_queries=T_q, device=q.device, **options)
    if mask.dim() == 3:
        mask = mask[:, None]  # (B, 1, T_q, T_k): one mask per sequence, shared by its heads
    empty = None
    if key_mask is not None:
        mask = mask & key_mask[:, None, None, :]
        # a row with no visible key would softmax to NaN; let it see everything, zero it after
        empty = ~mask.any(-1, keepdim=True)
        mask = mask | empty
    q_pos = pos[..., T_k - T_q:]
    if pattern == "lambda" and distance_limit and options["n_global"] > 0:
        out = _softmax_attend(lambda_scores(q, k, q_pos, pos, base=base, **options), mask, v)
    else:
        qr = apply_rope(q, q_pos, base=base)
        kr = k if k_rotated else apply_rope(k, pos, base=base)
        if pattern == "bico":
            out = _bico(q, k, v, qr, kr, q_pos, pos, mask, base)
        elif pattern == "causal" and empty is None and T_q == T_k:
            out = F.scaled_dot_product_attention(qr, kr, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(qr, kr, v, attn_mask=mask)
    return out if empty is None else out.masked_fill(empty, 0.0)


def _softmax_attend(scores, mask, v):
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).type_as(v) @ v


def _bico(q, k, v, qr, kr, q_pos, pos, mask, base):
    """BICO: forward-rotated scores on and below the diagonal, reverse-rotated strictly above.

    Forward scores see q^T R(n - m) k with n <= m; reverse scores above see q^T R(m - n) k with
    n > m. Both are rotations by -|m - n|: a key d places ahead scores like one d places behind,
    so bidirectional attention never meets an offset causal training did not.
    """
    # BEGIN SOLUTION lesson02: BICO's scores, forward rotation up to the diagonal, reverse above
    T_q, T_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    forward = (qr @ kr.transpose(-2, -1)) * scale
    q_rev = apply_rope(q, q_pos, base=base, reverse=True)
    k_rev = apply_rope(k, pos, base=base, reverse=True)
    backward = (q_rev @ k_rev.transpose(-2, -1)) * scale
    lower = build_mask("causal", T_k, n_queries=T_q, device=q.device)
    return _softmax_attend(torch.where(lower, forward, backward), mask, v)
    # END SOLUTION


def lambda_scores(q, k, q_pos, pos, *, base: float = 10000.0, n_global: int, n_local: int):
    """Λ's scores with LM-Infinite's distance limit: no key is ever seen farther than n_local.

    Inside the window, ordinary RoPE. For a global key outside the window, the key stays
    unrotated (position 0) and the query is rotated to position n_local, so every such key sits
    at distance exactly n_local, the largest distance training showed, wherever the query is.
    Positions ascend, so the global keys (positions < n_global) are the first g keys, in a full
    sequence or a bounded cache. Scores of keys outside both branches are left for the mask.
    """
    # BEGIN SOLUTION lesson02: Λ's scores, far global keys seen at distance n_local
    scale = 1.0 / math.sqrt(q.shape[-1])
    qr, kr = apply_rope(q, q_pos, base=base), apply_rope(k, pos, base=base)
    scores = (qr @ kr.transpose(-2, -1)) * scale
    g = int((pos < n_global).sum())
    far = q_pos[:, None] - pos[None, :g] >= n_local  # global keys outside the query's window
    q_far = apply_rope(q, torch.full_like(q_pos, n_local), base=base)
    far_scores = (q_far @ k[..., :g, :].transpose(-2, -1)) * scale
    scores[..., :g] = torch.where(far, far_scores, scores[..., :g])
    return scores
    # END SOLUTION


def show_mask(mask: torch.Tensor) -> str:
    """A (T, T) mask as text: one row per query, '■' where it may attend, '·' where not."""
    return "\n".join("".join("■" if x else "·" for x in row) for row in mask.tolist())


if __name__ == "__main__":  # python -m tinyrev.attention: the five patterns at T = 8
    for pattern, opts in [("causal", {}), ("prefix", {"prefix_len": 3}), ("abi", {"part_a_len": 5}),
                          ("bico", {}), ("lambda", {"n_global": 1, "n_local": 3})]:
        print(f"{pattern} {opts}\n{show_mask(build_mask(pattern, 8, **opts))}\n")
