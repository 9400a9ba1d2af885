"""How `generate` picks each next token, as one `Decoding` value, and beam search.

Covers: `Decoding` (greedy, sampled with temperature, top-k and top-p, or beam search with
length normalisation; a repetition penalty and a ban on repeated n-grams, both applied to the
logits before a token is picked), checked once when it is made; `penalize`; `next_positions`
(where the token after the last one sits); `beam_search`.
Leaves out: the model, its cache and the greedy or sampled loop (`generate` and `sample_next` in
model.py, lesson 01), and how a trained model is asked a question (objectives.py).
"""

import math
from dataclasses import dataclass

import torch

from .checks import check_int


@dataclass(frozen=True)
class Decoding:
    """How to pick the next token.

    temperature 0 takes the most likely token (greedy); above 0 samples, after top_k and top_p.
    beam > 1 keeps that many hypotheses per row (beam search, no sampling); a hypothesis ends at
    `stop`, and the best is the one with the highest log-prob / length ** length_penalty
    (0: the plain sum, which favours short answers; 1: the mean per token).
    repetition_penalty (CTRL, Keskar et al. 2019): a token already in the text has its logit
    divided by it when positive, multiplied when negative; 1 leaves the logits alone.
    no_repeat_ngram n: a token that would repeat an n-gram already in the text is never picked.
    """
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    beam: int = 1
    length_penalty: float = 1.0
    stop: int | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram: int | None = None

    def __post_init__(self):
        if not 0 <= self.temperature < math.inf:
            raise ValueError(f"temperature must be a finite number >= 0; got {self.temperature!r}")
        if self.top_k is not None:
            check_int("top_k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1]; got {self.top_p!r}")
        check_int("beam (hypotheses kept)", self.beam)
        if self.beam > 1 and self.temperature > 0:
            raise ValueError(f"beam={self.beam} searches for the most likely text; it does not "
                             f"sample, so temperature must be 0 (got {self.temperature!r})")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be a finite number; got {self.length_penalty!r}")
        if not 0 < self.repetition_penalty < math.inf:
            raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = none); got "
                             f"{self.repetition_penalty!r}")
        if self.no_repeat_ngram is not None:
            check_int("no_repeat_ngram (the n-gram size)", self.no_repeat_ngram)

    @property
    def penalizes(self) -> bool:
        return self.repetition_penalty != 1.0 or self.no_repeat_ngram is not None


GREEDY = Decoding()


def penalize(logits, seq, decoding: Decoding):
    """The logits (B, V) of the token after `seq` (B, T), with `decoding`'s penalties applied."""
    if decoding.repetition_penalty != 1.0:
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, seq, True)
        p = decoding.repetition_penalty
        logits = torch.where(seen, torch.where(logits > 0, logits / p, logits * p), logits)
    n = decoding.no_repeat_ngram
    if n is not None and seq.shape[1] >= n:
        grams = seq.unfold(1, n, 1)  # (B, T - n + 1, n): every n-gram of the text
        # an n-gram whose first n - 1 tokens are the text's last n - 1 bans its last token
        repeats = (grams[..., :-1] == seq[:, None, seq.shape[1] - (n - 1):]).all(-1)
        # amax, not a plain scatter: a token can end several n-grams, repeated or not
        banned = torch.zeros_like(logits).scatter_reduce(1, grams[..., -1], repeats.to(
            logits.dtype), "amax")
        logits = logits.masked_fill(banned > 0, float("-inf"))
    return logits


def next_positions(pos, span_pos):
    """Positions of the token after the last one: the next integer, or, inside a blank-infilling
    span (span_pos given), the same position with the span offset one further (GLM)."""
    if span_pos is None:
        return pos[..., -1:] + 1, None
    return pos[..., -1:], span_pos[:, -1:] + 1


def beam_search(model, idx, max_new_tokens: int, *, pos, span_pos, pattern, cache,
                decoding: Decoding):
    """The `decoding.beam` most likely continuations of each row of `idx` (B, T), kept step by
    step in `cache` (each hypothesis one row of it, reordered as hypotheses are replaced, and
    left holding the best one per row); returns the best one per row, (B, max_new_tokens),
    padded with `stop` after it. The penalties read `idx` and what is decoded, not what an
    earlier call left in the cache.

    Every row starts with one live hypothesis (the others at -inf, so that K copies of the same
    text never fill the beam). At each step, all K x V extensions are scored by their summed
    log-prob and the K best kept; a finished hypothesis extends only by `stop`, at no cost.
    """
    B, T, K = *idx.shape, decoding.beam
    rows = torch.arange(B, device=idx.device).repeat_interleave(K)  # K copies of each row
    logits = model(idx, pos, pattern, span_pos=span_pos, cache=cache)[:, -1][rows]
    cache.reorder(rows)
    pos, span_pos = next_positions(pos, span_pos)
    pos = pos[rows] if pos.dim() == 2 else pos
    span_pos = None if span_pos is None else span_pos[rows]
    seq = idx[rows]
    scores = torch.full((B, K), float("-inf"), device=idx.device)
    scores[:, 0] = 0.0
    done = torch.zeros(B * K, dtype=torch.bool, device=idx.device)
    length = torch.zeros(B * K, device=idx.device)  # tokens up to and including `stop`
    first = torch.arange(B, device=idx.device)[:, None] * K  # each row's first hypothesis
    for step in range(max_new_tokens):
        if step:
            logits = model(seq[:, -1:], pos, pattern, span_pos=span_pos, cache=cache)[:, -1]
            pos, span_pos = next_positions(pos, span_pos)
        logp = penalize(logits, seq, decoding).float().log_softmax(-1)
        if decoding.stop is not None:
            logp[done] = float("-inf")
            logp[done, decoding.stop] = 0.0
        V = logp.shape[-1]
        scores, best = (scores.view(-1, 1) + logp).view(B, K * V).topk(K, dim=1)
        order = (first + best // V).view(-1)  # which hypothesis each new one extends
        cache.reorder(order)
        seq = torch.cat((seq[order], (best % V).view(-1, 1)), 1)
        done, length = done[order], length[order] + ~done[order]
        if decoding.stop is not None:
            done |= seq[:, -1] == decoding.stop
    final = scores / length.view(B, K).clamp(min=1) ** decoding.length_penalty
    best = first[:, 0] + final.argmax(1)
    cache.reorder(best)  # one row per question again, so that a caller can continue from it
    return seq[best, T:]
