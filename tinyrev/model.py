"""A small Llama-like decoder: RMSNorm, SwiGLU, RoPE attention, pre-norm blocks, and generation.

Covers: the config, the modules (RMSNorm, FeedForward, Attention, Block, Transformer), a
key/value cache and `generate` (greedy or sampled: temperature, top-k, top-p; beam search and
the penalties are in decoding.py).
Leaves out: dropout, grouped-query attention, weight tying, mixed-precision policy (the trainer
owns autocast) and any pretrained weights.

The attention pattern is an argument of `forward`, not part of the model: the same weights can be
trained bidirectionally (BICO) and decoded causally, or trained causally and evaluated under Λ.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .attention import Pattern, as_pattern, attention, check_lambda_sizes
from .checks import check_int
from .decoding import GREEDY, Decoding, beam_search, next_positions, penalize
from .rope import apply_rope


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    hidden_dim: int = 0        # SwiGLU width; 0 means Llama's rule, 2/3 * 4 * dim rounded up to 32
    rope_base: float = 10000.0
    span_positions: int = 0    # > 0: GLM's second position (offset inside an ABI span), learned
    norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "dim", "n_layers", "n_heads"):
            check_int(f"model {name}", getattr(self, name))
        check_int("model span_positions", self.span_positions, 0)
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} does not split into n_heads={self.n_heads} heads")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head dimension {self.dim // self.n_heads} is odd; RoPE rotates "
                             "pairs of dimensions, so dim / n_heads must be even")
        if not self.hidden_dim:  # a frozen class sets a derived field through object
            object.__setattr__(self, "hidden_dim", 32 * math.ceil(8 * self.dim / 3 / 32))


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: LayerNorm without centring or bias (Zhang & Sennrich)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # BEGIN SOLUTION lesson01: RMSNorm, x / sqrt(mean(x^2) + eps) * weight
        x32 = x.float()  # the mean of squares is computed in fp32 even under bf16 autocast
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight
        # END SOLUTION


class FeedForward(nn.Module):
    """SwiGLU (Shazeer 2020): w2(silu(w1 x) * w3 x). w1 and w3 share one matmul for speed."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w13 = nn.Linear(dim, 2 * hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        # BEGIN SOLUTION lesson01: SwiGLU, w2(silu(w1 x) * w3 x) with w1 and w3 stacked in w13
        gate, up = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)
        # END SOLUTION


class KVCache:
    """Per-layer keys, values and their positions.

    Unbounded by default: every token stays, in buffers that double when full, so an append costs
    O(1) on average instead of a copy of everything cached. Its keys are stored rotated: under
    causal, prefix and ABI attention a key's rotation never changes, and rotating all of them
    again at every step would cost more than the attention itself on long texts.
    BICO and Λ rotate a key by its role, so their caches store keys *before* rotation
    (`rotated=False`): BICO reads the keys of a question ahead of its earlier tokens with the
    reverse rotation when it fills the cache, Λ a far global key at the distance limit. So does
    a RoPE scaling, whose frequencies may change as the text grows (lesson 04).
    With `n_local` set it is Λ's bounded cache: only the first `n_global` and the last `n_local`
    tokens stay, and memory is constant however long the text grows. Λ attention sees exactly
    those keys, so nothing is lost.
    """

    def __init__(self, n_layers: int, *, n_global: int = 0, n_local: int | None = None,
                 rotated: bool = True):
        if n_local is not None:
            check_lambda_sizes(n_global, n_local)
            rotated = False
        self.n_global, self.n_local, self.rotated = n_global, n_local, rotated
        self.buffers = [None] * n_layers  # per layer: [k, v, pos], with spare room at the end
        self.sizes = [0] * n_layers       # how many tokens each layer's buffers hold
        self.seen = 0                     # tokens ever stored, kept or forgotten since

    @classmethod
    def for_pattern(cls, n_layers: int, pattern: Pattern) -> "KVCache":
        """The cache `pattern` decodes with: Λ's bounded one, unrotated keys for BICO, or full."""
        if pattern.name == "lambda":
            return cls(n_layers, n_global=pattern.n_global, n_local=pattern.n_local)
        return cls(n_layers, rotated=not pattern.needs_unrotated_keys)

    def __len__(self):
        return self.sizes[0]

    def check(self, pattern: Pattern):
        """Refuse a pattern this cache cannot serve: a bounded cache forgot every other key."""
        asked = (pattern.name, pattern.n_global, pattern.n_local)
        if self.n_local is not None and asked != ("lambda", self.n_global, self.n_local):
            raise ValueError(f"a bounded cache keeps Λ's keys for n_global={self.n_global}, "
                             f"n_local={self.n_local}; it cannot serve pattern {pattern.name!r} "
                             f"with (n_global, n_local)={(pattern.n_global, pattern.n_local)}")

    def reorder(self, rows):
        """Keep the cached rows `rows` (a 1-D index, repeats allowed): beam search replaces
        hypotheses by copies of better ones."""
        for layer, buf in enumerate(self.buffers):
            if buf is not None:
                self.buffers[layer] = [x.index_select(0, rows) if x.dim() > 1 else x
                                       for x in buf]

    def nbytes(self) -> int:
        """Memory the buffers take, spare room included."""
        return sum(x.nbytes for layer in self.buffers if layer for x in layer)

    def update(self, layer: int, k, v, pos):
        """Store new (B, H, T, Dh) keys and values at positions `pos` (..., T); return every
        cached key, value and position (new ones last) for this step's attention."""
        new, n, T = (k, v, pos), self.sizes[layer], k.shape[-2]
        time = (-2, -2, -1)  # the token axis of keys, values and positions
        buf = self.buffers[layer]
        if self.n_local is not None and n > self.n_global + self.n_local:
            # forget the middle now rather than at the end of the previous call, whose views of
            # the buffers were still in use
            # BEGIN SOLUTION lesson04: keep the first n_global tokens and the last n_local, in place
            g, keep = self.n_global, self.n_local
            for x, d in zip(buf, time):
                x.narrow(d, g, keep).copy_(x.narrow(d, n - keep, keep).clone())
            n = g + keep
            # END SOLUTION
        if buf is None or n + T > buf[0].shape[-2]:
            size = max(64, 2 * (n + T))
            grown = [x.new_empty(*x.shape[:d], size, *x.shape[d:][1:]) for x, d in zip(new, time)]
            for x, old, d in zip(grown, buf or (), time):
                x.narrow(d, 0, n).copy_(old.narrow(d, 0, n))
            buf = self.buffers[layer] = grown
        for x, y, d in zip(buf, new, time):
            x.narrow(d, n, T).copy_(y)
        self.sizes[layer] = n + T
        self.seen += T if layer == 0 else 0
        return tuple(x.narrow(d, 0, n + T) for x, d in zip(buf, time))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.n_heads, self.layer, self.base = cfg.n_heads, layer, cfg.rope_base
        self.wqkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def heads(self, x):
        """Unrotated q, k, v, each (B, H, T, Dh): the one place that splits the projection."""
        return rearrange(self.wqkv(x), "b t (n h d) -> n b h t d", n=3, h=self.n_heads)

    def forward(self, x, pos, pattern: Pattern, key_mask, cache):
        q, k, v = self.heads(x)
        rotated = cache is not None and cache.rotated
        if rotated:
            k = apply_rope(k, pos, base=self.base)  # once, on the way in (see KVCache)
        if cache is not None:
            k, v, pos = cache.update(self.layer, k, v, pos)
        out = attention(q, k, v, pos, pattern, key_mask=key_mask, base=self.base,
                        k_rotated=rotated)
        return self.wo(rearrange(out, "b h t d -> b t (h d)"))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn = FeedForward(cfg.dim, cfg.hidden_dim)

    def forward(self, x, pos, pattern: Pattern, key_mask, cache):
        x = x + self.attn(self.attn_norm(x), pos, pattern, key_mask, cache)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.span_embed = nn.Embedding(cfg.span_positions, cfg.dim) if cfg.span_positions else None
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("wo.weight", "w2.weight")):
                # GPT-2's scaling: each residual branch adds variance, so start them small
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, pos=None, pattern="causal", *, key_mask=None, span_pos=None,
                cache: KVCache | None = None, **options):
        """Logits (B, T, vocab) for tokens `idx` (B, T).

        pos: positions of these T tokens, (T,) or (B, T); default: the T integers after the
        tokens the cache has seen (0..T-1 without one). The cache keeps its tokens' positions.
        pattern: a `Pattern`, or a pattern name with its sizes as keywords; it is made once here
        and passed down every layer. span_pos: (B, T) offsets inside ABI spans (0 in Part A),
        needs `span_positions > 0`. key_mask: see `attention.attention`.
        """
        pattern = as_pattern(pattern, **options)
        if pos is None:
            start = cache.seen if cache is not None else 0
            pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        if cache is not None:
            cache.check(pattern)
        x = self.embed(idx)
        if span_pos is not None:
            if self.span_embed is None:
                raise ValueError("span_pos given, but this model was built with span_positions=0")
            if span_pos.max() >= self.cfg.span_positions:
                raise ValueError(f"span offset {span_pos.max().item()} is beyond the model's "
                                 f"span_positions={self.cfg.span_positions}")
            x = x + self.span_embed(span_pos)
        for block in self.blocks:
            x = block(x, pos, pattern, key_mask, cache)
        return self.head(self.norm(x))


def sample_next(logits, temperature: float = 0.0, top_k: int | None = None,
                top_p: float | None = None, generator=None):
    """Pick one token per row of `logits` (B, V): greedy at temperature 0, else sampled.

    Sampling divides the logits by `temperature`, keeps the `top_k` largest (ties with the k-th
    kept), then the nucleus: sorted by probability, a token is kept while the mass of the tokens
    before it is below `top_p` (so the most likely token is always kept), and one token is drawn
    from what is left, renormalised, with `generator`.
    """
    if temperature == 0:
        return logits.argmax(-1)
    if temperature < 0 or (top_k is not None and top_k < 1) or \
            (top_p is not None and not 0 < top_p <= 1):
        raise ValueError(f"need temperature >= 0, top_k >= 1, 0 < top_p <= 1; got "
                         f"{temperature}, {top_k}, {top_p}")
    # BEGIN SOLUTION lesson01: sampling at `temperature`, filtered by top_k and top_p
    logits = logits.float() / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        # nucleus: keep the smallest set of most likely tokens whose mass reaches top_p
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        mass_before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)
        drop = (mass_before >= top_p).scatter(-1, order, mass_before >= top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
    # END SOLUTION


@torch.inference_mode()  # no_grad, and no autograd bookkeeping per op either: see the docstring
def generate(model: Transformer, idx, max_new_tokens: int, *, pos=None, span_pos=None,
             pattern="causal", decoding: Decoding = GREEDY, generator=None,
             cache: KVCache | None = None, **options):
    """Continue each row of `idx` (B, T) by `max_new_tokens` tokens, with a KV cache.

    decoding: how each next token is picked (decoding.py: greedy by default, sampling, beam
    search, penalties); `generator` draws the samples. Positions of new tokens: the next integer
    after the last one; in blank infilling (span_pos given) the position stays at the [MASK]'s
    and the span offset grows by one instead, as GLM decodes a span (`next_positions`). Under Λ
    the cache is bounded: it keeps only the keys Λ can see.
    `cache`: continue from a cache of earlier calls (then idx holds only the tokens it lacks).
    pattern: a `Pattern`, or a pattern name with its sizes as keywords.
    Returns only the new tokens, (B, max_new_tokens).
    It runs under torch.inference_mode: at batch 1 a step is a few hundred tiny ops, and dropping
    their autograd bookkeeping made a Λ step 17% faster than under no_grad (2 048 tokens cached,
    one thread). The price: the tokens and the cache's tensors are inference tensors. Clone the
    tokens before training on them, and continue a cache that `generate` filled with `generate`
    (or under torch.inference_mode).
    """
    pattern = as_pattern(pattern, **options)
    if cache is None:
        cache = KVCache.for_pattern(model.cfg.n_layers, pattern)
    if pos is None:
        pos = torch.arange(cache.seen, cache.seen + idx.shape[1], device=idx.device)
    d = decoding
    if d.beam > 1:
        return beam_search(model, idx, max_new_tokens, pos=pos, span_pos=span_pos,
                           pattern=pattern, cache=cache, decoding=d)
    # BEGIN SOLUTION lesson01: the decoding loop, each new token fed alone to the cache
    out, x = [], idx
    for _ in range(max_new_tokens):
        logits = model(x, pos, pattern, span_pos=span_pos, cache=cache)[:, -1]
        if d.penalizes:  # they read idx and what this call decoded
            logits = penalize(logits, torch.cat((idx, *out), 1), d)
        x = sample_next(logits, d.temperature, d.top_k, d.top_p, generator)[:, None]
        out.append(x)
        pos, span_pos = next_positions(pos, span_pos)
    return torch.cat(out, dim=1)
    # END SOLUTION
