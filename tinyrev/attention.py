"""The five attention patterns: causal, prefix, ABI, BICO and Λ, as one value and two functions.

Covers: `Pattern` (a pattern's name with the sizes it needs, checked once when it is made),
`build_mask` (which key each query may see) and `attention` (scores, mask, softmax, weighted sum,
including the per-branch rotations that BICO and Λ need, and a length method's frequencies or
far-key rule, which the Pattern carries from length/methods.py).
Leaves out: the projections and heads (model.py) and position embedding math (rope.py).

Llama passes one mask down its layers; tinyrev passes one `Pattern`, because BICO and Λ need more
than a mask: they rotate keys differently per branch. q, k and v therefore arrive *unrotated*:
BICO rotates the two triangles of the score matrix differently, and Λ rotates its global branch
differently from its local one, so rotation belongs here.

Keys and queries: k and v hold the whole sequence (T_k positions, `pos` has length T_k); q holds
its last T_q positions. T_q == T_k in training; T_q < T_k while decoding with a KV cache. Λ reads
its mask off the positions rather than the indices, so it also works on a bounded cache, whose
keys skip the middle of the text.
"""

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from .checks import check_int
from .rope import apply_rope

PATTERNS = ("causal", "prefix", "abi", "bico", "lambda")
# the sizes each pattern takes; any other is refused, so a misplaced option never passes silently
OPTIONS = {"causal": ("scaling",), "prefix": ("prefix_len",), "abi": ("part_a_len",),
           "bico": ("prefix_len",), "lambda": ("n_global", "n_local", "distance_limit", "far")}


@dataclass(frozen=True, eq=False)
class Pattern:
    """One attention pattern with its sizes: what a forward call passes down every layer.

    prefix_len (prefix) and part_a_len (abi, GLM's Part A): the length of the bidirectional
    part, an int, or a (B,) tensor with one length per sequence. BICO takes a prefix_len too:
    without one every token reads every other (training); with one only the first prefix_len
    tokens read each other both ways and the rest is causal: a question read both ways, its
    answer decoded after it (lesson 03, "How you ask decides what you find").
    n_global, n_local, distance_limit (lambda): Λ keeps the first n_global keys and the last
    n_local; with distance_limit (LM-Infinite's), no key is seen farther away than n_local.
    far (lambda): where a global key outside the window sits for RoPE, a rule
    (query positions, key positions, n_local) -> (query positions, key positions); None is
    LM-Infinite's `distance_limit`. scaling (causal): RoPE's frequencies rescaled for a long text
    (position interpolation, NTK, YaRN). Both are lesson 04's training-free length methods, one
    small class each in length/methods.py.
    """
    name: str = "causal"
    prefix_len: int | torch.Tensor | None = None
    part_a_len: int | torch.Tensor | None = None
    n_global: int = 0
    n_local: int | None = None
    distance_limit: bool = True
    far: object = None
    scaling: object = None

    def __post_init__(self):
        if self.name not in PATTERNS:
            raise ValueError(f"unknown attention pattern {self.name!r}; choose one of {PATTERNS}")
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            given = value is not f.default if f.default is None else value != f.default
            if given and f.name not in OPTIONS[self.name]:
                raise ValueError(f"{f.name}={value!r} is no option of pattern {self.name!r}; it "
                                 f"takes {', '.join(OPTIONS[self.name]) or 'none'}")
        for name in ("prefix_len", "part_a_len"):
            optional = self.name == "bico" and self.prefix_len is None
            if name in OPTIONS[self.name] and not optional:
                _check_length(name, getattr(self, name))
        if self.name == "lambda":
            check_lambda_sizes(self.n_global, self.n_local)
            if self.far is not None and not self.distance_limit:
                raise ValueError("a far-key rule replaces the distance limit; it cannot be given "
                                 "with distance_limit=False")

    @property
    def needs_unrotated_keys(self) -> bool:
        """Whether a key's rotation depends on more than its own position: BICO and Λ rotate a
        key by its role for the query, a scaling by the length read so far. Their caches keep
        keys unrotated."""
        return self.name in ("bico", "lambda") or self.scaling is not None

    def to(self, device) -> "Pattern":
        """The same pattern with its per-sequence lengths on `device`."""
        move = lambda x: x.to(device) if torch.is_tensor(x) else x
        return replace(self, prefix_len=move(self.prefix_len), part_a_len=move(self.part_a_len))


CAUSAL = Pattern()


def as_pattern(pattern="causal", **options) -> Pattern:
    """A Pattern given, or one built from a pattern name and its sizes (the course's form)."""
    if isinstance(pattern, Pattern):
        if options:
            raise ValueError(f"options {sorted(options)} given beside a Pattern; put them in it")
        return pattern
    return Pattern(pattern, **options)


def _check_length(name, value):
    if value is None:
        raise ValueError(f"this pattern needs `{name}` (the length of the bidirectional part)")
    if not torch.is_tensor(value):
        return check_int(f"`{name}`", value, 0)
    if value.dtype.is_floating_point or value.dtype == torch.bool or value.dim() > 1 or \
            (value < 0).any():
        raise ValueError(f"`{name}` must be an int >= 0 or a 1-D tensor of them; got {value!r}")


def check_lambda_sizes(n_global, n_local):
    check_int("n_local (the Λ window)", n_local)
    check_int("n_global (Λ's first tokens kept)", n_global, 0)


def distance_limit(q_pos, k_pos, n_local):
    """LM-Infinite's far-key rule: the query at position n_local, the key unrotated (position 0),
    so every far global key sits at distance n_local, one past what training on n_local showed."""
    return torch.full_like(q_pos, n_local), torch.zeros_like(k_pos)


def _prefix_length(name, value, T, device):
    """A prefix length (int or (B,) tensor) as something that broadcasts against (T, T)."""
    value = torch.as_tensor(value, device=device)
    if (value > T).any():
        raise ValueError(f"`{name}`={value.tolist()} is outside [0, {T}], the sequence length")
    return value.view(-1, 1, 1) if value.dim() == 1 else value


def build_mask(pattern, T: int, *, n_queries=None, device=None, **options) -> torch.Tensor:
    """Boolean (T, T) mask, True where query i may attend key j.

    `pattern`: a Pattern, or a pattern name with its sizes as keywords (prefix_len=3, ...).
    causal: j <= i.      prefix: causal, plus every key j < prefix_len.
    abi: the prefix mask with Part A as the prefix (GLM: A bidirectional, B sees A and earlier B).
    bico: every pair, or with a prefix_len the prefix mask.
    lambda: j <= i and (i - j < n_local or j < n_global).
    A length given as a (B,) tensor, one per sequence, gives a (B, T, T) mask.
    n_queries: only the last n_queries rows, (n_queries, T). Decoding asks for one row over
    thousands of keys; building all T x T rows to keep one would cost O(T^2) per token.
    """
    p = as_pattern(pattern, **options)
    check_int("sequence length T", T)
    T_q = T if n_queries is None else n_queries
    if isinstance(T_q, bool) or not isinstance(T_q, int) or not 1 <= T_q <= T:
        raise ValueError(f"n_queries must be an int in [1, {T}], the sequence length; got {T_q!r}")
    i = torch.arange(T - T_q, T, device=device)[:, None]
    j = torch.arange(T, device=device)[None, :]
    if p.name == "bico" and p.prefix_len is None:
        # BEGIN SOLUTION lesson02: the BICO mask, every pair
        return torch.ones(T_q, T, dtype=torch.bool, device=device)
        # END SOLUTION
    if p.name in ("prefix", "bico"):
        # BEGIN SOLUTION lesson02: the prefix mask (lengths checked by _prefix_length)
        return (j <= i) | (j < _prefix_length("prefix_len", p.prefix_len, T, device))
        # END SOLUTION
    if p.name == "abi":
        # BEGIN SOLUTION lesson02: the ABI mask, Part A as the prefix
        return (j <= i) | (j < _prefix_length("part_a_len", p.part_a_len, T, device))
        # END SOLUTION
    if p.name == "lambda":
        return lambda_mask(i[:, 0], j[0], p.n_global, p.n_local)
    # BEGIN SOLUTION lesson02: the causal mask
    return j <= i
    # END SOLUTION


def lambda_mask(q_pos, k_pos, n_global, n_local) -> torch.Tensor:
    """(T_q, T_k) Λ mask from positions: key j is visible to query i iff j <= i and it lies in the
    local branch (i - j < n_local) or the global one (j < n_global)."""
    # BEGIN SOLUTION lesson02: the Λ mask from positions, a causal window plus the first n_global
    i, j = q_pos[:, None], k_pos[None, :]
    return (j <= i) & ((i - j < n_local) | (j < n_global))
    # END SOLUTION


def attention(q, k, v, pos, pattern="causal", *, key_mask=None, base: float = 10000.0,
              k_rotated: bool = False, **options) -> torch.Tensor:
    """Attention of unrotated q (B, H, T_q, Dh) over k, v (B, H, T_k, Dh) under `pattern`.

    pattern: a Pattern, or a pattern name with its sizes as keywords (see `Pattern`).
    pos: positions of the T_k keys, (T_k,) or (B, T_k); the queries sit at the last T_q of them.
    key_mask: optional (B, T_k) bool, False for keys nobody may see (padding, BICO placeholders).
    k_rotated: k arrives already rotated by `pos` (a full KV cache stores it so). Causal, prefix
    and ABI rotate a key by its own position only, so that is the same; BICO and Λ rotate a key
    by its role and need it unrotated.
    A query with no visible key returns a zero vector instead of NaN.
    """
    p = as_pattern(pattern, **options)
    T_q, T_k = q.shape[-2], k.shape[-2]
    if k_rotated and p.needs_unrotated_keys:
        raise ValueError(f"pattern {p.name!r} rotates each key when it reads it (by its role or "
                         f"by the length read) and needs unrotated keys; decode it with a cache "
                         f"that keeps them so, KVCache.for_pattern")
    if p.name == "lambda":
        if pos.dim() != 1:
            raise ValueError(f"Λ attention takes one position vector (T,) for the whole batch; "
                             f"got positions of shape {tuple(pos.shape)}")
        mask = lambda_mask(pos[T_k - T_q:], pos, p.n_global, p.n_local)
    elif key_mask is None and (T_q == 1 or (p.name == "causal" and T_q == T_k)):
        # a decoding step: causal, prefix, ABI and BICO all let the last position see every key,
        # each behind it (so BICO's scores are all forward ones), and a mask over 16k keys costs
        # a tenth of the step. A whole causal pass: the fused kernel makes its own mask.
        mask = None
    else:
        mask = build_mask(p, T_k, n_queries=T_q, device=q.device)
    if mask is not None and mask.dim() == 3:
        mask = mask[:, None]  # (B, 1, T_q, T_k): one mask per sequence, shared by its heads
    empty = None
    if key_mask is not None:
        mask = mask & key_mask[:, None, None, :]
        # a row with no visible key would softmax to NaN; let it see everything, zero it after
        empty = ~mask.any(-1, keepdim=True)
        mask = mask | empty
    q_pos = pos[..., T_k - T_q:]
    limited = p.name == "lambda" and p.distance_limit and p.n_global > 0
    if limited and T_q > 1:
        scores = lambda_scores(q, k, q_pos, pos, base=base, n_global=p.n_global, n_local=p.n_local,
                               far=p.far or distance_limit)
        out = _softmax_attend(scores, mask, v)
    else:
        theta = None
        if limited:
            # one query (a decoding step): only distances matter, so each far global key moves to
            # the query's position minus the distance its rule gives, and the fused kernel serves
            # Λ too. LM-Infinite's rule is then a clamp, two operations instead of eight.
            if p.far is None:
                pos = torch.maximum(pos, q_pos - p.n_local)
            else:
                far_q, far_k = p.far(q_pos, pos, p.n_local)
                is_far = (q_pos - pos >= p.n_local) & (pos < p.n_global)
                pos = torch.where(is_far, q_pos - (far_q - far_k), pos)
        elif p.scaling is not None:  # a length method's frequencies, for the T_k keys read so far
            theta = p.scaling.theta(q.shape[-1], base, T_k, q.device)
            q = q * p.scaling.logit_scale(T_k)
        qr = apply_rope(q, q_pos, base=base, theta=theta)
        kr = k if k_rotated else apply_rope(k, pos, base=base, theta=theta)
        if p.name == "bico" and mask is not None:
            out = _bico(q, k, v, qr, kr, q_pos, pos, mask, base)
        elif p.name == "causal" and mask is None and T_q == T_k:
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


def lambda_scores(q, k, q_pos, pos, *, base: float = 10000.0, n_global: int, n_local: int,
                  far=distance_limit):
    """Λ's scores with LM-Infinite's distance limit: no key is ever seen farther than n_local.

    Inside the window, ordinary RoPE. A global key outside the window is scored at the positions
    the rule `far` gives the query and the key. LM-Infinite's rule (`distance_limit`) leaves the
    key unrotated (position 0) and rotates the query to position n_local, so every such key sits
    at distance exactly n_local wherever the query is: one past the largest distance a model
    trained on n_local tokens has seen (0 ... n_local - 1), as in LM-Infinite's own code.
    Positions ascend, so the global keys (positions < n_global) are the first g keys, in a full
    sequence or a bounded cache. Scores of keys outside both branches are left for the mask.
    """
    # BEGIN SOLUTION lesson02: Λ's scores, far global keys at the positions `far` gives
    scale = 1.0 / math.sqrt(q.shape[-1])
    qr, kr = apply_rope(q, q_pos, base=base), apply_rope(k, pos, base=base)
    scores = (qr @ kr.transpose(-2, -1)) * scale
    g = int((pos < n_global).sum())
    outside = q_pos[:, None] - pos[None, :g] >= n_local  # global keys outside the query's window
    far_q, far_k = far(q_pos, pos[:g], n_local)
    q_far, k_far = apply_rope(q, far_q, base=base), apply_rope(k[..., :g, :], far_k, base=base)
    far_scores = (q_far @ k_far.transpose(-2, -1)) * scale
    scores[..., :g] = torch.where(outside, far_scores, scores[..., :g])
    return scores
    # END SOLUTION
