"""The long-text task: a synthetic language for length generalization, and a passkey test.

Covers: a seeded generator of documents (BOS, a regime token, then a Markov chain over words with
short copies from the recent past), training batches at the training length in which a key is
hidden and later asked for, and passkey prompts (a key hidden at a chosen depth, asked for at the
end). Leaves out: the model, training and the measurements (experiment.py beside it).

Each of LM-Infinite's three factors has a part of the language that a reader lacking the matching
part of Λ gets wrong (lessons/04_length_generalization.md):
- Bounded dependencies: apart from the regime token, every token depends only on the last
  `max_copy_distance` tokens, so a model that generalized past its training length would keep its
  NLL flat. (Copying from anywhere in the past would make every windowed model worse for a reason
  that has nothing to do with positions.)
- Starting tokens that matter: the token right after BOS picks which of `n_regimes` successor
  tables the whole document follows. A model learns to look it up; a sliding window that drops
  the first tokens loses it, while Λ's global branch keeps it. This is a dependency on *content*,
  standing in for the attention sinks that large models form on their first tokens by themselves.
- Attention is needed: a copy repeats a span from up to `max_copy_distance` tokens back; after its
  first token the rest is predictable only by looking back (an induction head), since each word
  has 8 equally likely successors. A passkey is the same skill over a longer distance.
- Stationary: from position `max_copy_distance + 2` on (a copy never reaches into the header),
  every position has the same statistics, so the last in-length bucket [L/2, L) is the fair
  reference for every bucket past L.
"""

import functools
from dataclasses import dataclass

import torch

from ..checks import check_int

BOS, KEY = 0, 1          # the document start, and the passkey marker ("the pass key is")
DIGITS = 2               # ids 2..11 are the key's digits 0..9
REGIME = 12              # ids 12..15: the regime token right after BOS, one per successor table
MAX_REGIMES = 4
HEADER = 2               # BOS and the regime token open every document
FIRST_WORD = 16          # ids from here to vocab_size - 1 are the language's words
N_SUCCESSORS = 8         # each word may be followed by 8 words, equally likely, per regime


@dataclass(frozen=True)
class LongTextConfig:
    vocab_size: int = 256
    n_regimes: int = 4            # successor tables; the token after BOS says which one is used
    copy_prob: float = 0.15       # chance, at each token outside a copy, that a copy starts
    min_span: int = 3
    max_span: int = 6
    max_copy_distance: int = 24   # a copy's source starts at most this many tokens back
    key_digits: int = 5
    passkey_share: float = 0.75   # training documents that hide a key and ask for it later
    seed: int = 0                 # fixes the language (the successor tables), not the texts

    def __post_init__(self):
        if self.vocab_size < FIRST_WORD + N_SUCCESSORS:
            raise ValueError(f"vocab_size {self.vocab_size} leaves too few words; need at least "
                             f"{FIRST_WORD + N_SUCCESSORS}")
        if not 1 <= self.key_digits <= 10:
            raise ValueError(f"key_digits must lie in [1, 10] (the digits are distinct); got "
                             f"{self.key_digits}")
        if not 1 <= self.n_regimes <= MAX_REGIMES:
            raise ValueError(f"n_regimes must lie in [1, {MAX_REGIMES}]; got {self.n_regimes}")
        if not 1 <= self.min_span <= self.max_span <= self.max_copy_distance:
            raise ValueError(f"need 1 <= min_span <= max_span <= max_copy_distance; got "
                             f"{self.min_span}, {self.max_span}, {self.max_copy_distance}")
        for name in ("copy_prob", "passkey_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1]; got {getattr(self, name)}")


@functools.cache  # one table per language; drawing it costs more than a batch of text
def successors(cfg: LongTextConfig) -> torch.Tensor:
    """(n_regimes, n_words, N_SUCCESSORS): the words that may follow each word in each regime,
    distinct within a row, fixed by cfg.seed. Shared between calls: read it, never write it."""
    n_words = cfg.vocab_size - FIRST_WORD
    gen = torch.Generator().manual_seed(cfg.seed)
    table = torch.rand(cfg.n_regimes, n_words, n_words, generator=gen).argsort(-1)
    return table[..., :N_SUCCESSORS] + FIRST_WORD


def sample_texts(cfg: LongTextConfig, n: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """(n, length) documents, one step per position for all n at once: BOS; a regime token
    REGIME + r, r uniform in [0, n_regimes); a uniform first word; then, at each position, either
    the next token of a running copy, or (with copy_prob, if the span fits after the regime
    token) the first token of a new copy of min_span..max_span tokens from at most
    max_copy_distance back, or else a uniform pick among the previous word's N_SUCCESSORS in the
    document's regime table."""
    # BEGIN SOLUTION lesson04: the documents, each token a successor or a copy from nearby
    regime = torch.randint(cfg.n_regimes, (n,), generator=gen)
    table = successors(cfg)[regime]  # (n, n_words, N_SUCCESSORS): each document's own table
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0], x[:, 1] = BOS, REGIME + regime
    x[:, 2:3] = torch.randint(FIRST_WORD, cfg.vocab_size, (n, 1), generator=gen)
    left = torch.zeros(n, dtype=torch.long)   # tokens of the current copy still to come
    dist = torch.zeros(n, dtype=torch.long)   # how far back the current copy reads
    rows = torch.arange(n)
    for t in range(3, length):
        span = torch.randint(cfg.min_span, cfg.max_span + 1, (n,), generator=gen)
        reach = min(cfg.max_copy_distance, t - 2)  # the source must lie after the regime token
        start = (left == 0) & (torch.rand(n, generator=gen) < cfg.copy_prob) & (span <= reach)
        far = span + (torch.rand(n, generator=gen) * (reach - span + 1).clamp(min=1)).long()
        left, dist = torch.where(start, span, left), torch.where(start, far, dist)
        copying = left > 0
        pick = torch.randint(N_SUCCESSORS, (n,), generator=gen)
        markov = table[rows, x[:, t - 1] - FIRST_WORD, pick]
        x[:, t] = torch.where(copying, x[rows, t - dist.clamp(min=1)], markov)
        left = (left - 1).clamp(min=0)
    return x
    # END SOLUTION


def key_block(cfg: LongTextConfig, n: int, gen: torch.Generator):
    """(n, 1 + key_digits) blocks "[KEY] d d d d d", and the (n, key_digits) digits alone."""
    # distinct digits: each one then says unambiguously which digit follows it in the key
    digits = torch.rand(n, 10, generator=gen).argsort(-1)[:, :cfg.key_digits] + DIGITS
    return torch.cat((torch.full((n, 1), KEY), digits), 1), digits


def training_batch(cfg: LongTextConfig, n: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """(n, length) training documents. In a `passkey_share` of them the key block is written over
    the text at a uniform place after the header, and the same block (the question "[KEY]" and
    its answer) at a uniform place from the end of the first on, both whole inside the document,
    each start drawn among the places that leave room for what follows: retrieval is then
    learned within the training length, by looking the key up, not by where the question stands."""
    x = sample_texts(cfg, n, length, gen)
    block, _ = key_block(cfg, n, gen)
    width = block.shape[1]
    if length < 2 * width + HEADER:
        return x  # too short to hide a key and ask for it
    # BEGIN SOLUTION lesson04: in a passkey_share of the rows, the key block hidden, then asked
    hide = torch.rand(n, generator=gen) < cfg.passkey_share
    key_at = torch.randint(HEADER, length - 2 * width + 1, (n,), generator=gen)
    room = length - 2 * width - key_at + 1  # places the question can take after the key
    ask_at = key_at + width + (torch.rand(n, generator=gen) * room).long()
    rows, span = torch.arange(n)[hide, None], torch.arange(width)
    x[rows, key_at[hide, None] + span] = block[hide]
    x[rows, ask_at[hide, None] + span] = block[hide]
    return x
    # END SOLUTION


def check_passkey(cfg: LongTextConfig, length, depth):
    # the header, one word, the key block, the question and the answer
    check_int("a passkey prompt's length (answer included)", length,
              HEADER + 1 + 2 * (cfg.key_digits + 1))
    if not 0 <= depth <= 1:
        raise ValueError(f"passkey depth must lie in [0, 1]; got {depth}")


def passkey_prompts(cfg: LongTextConfig, n: int, length: int, depth: float, gen: torch.Generator):
    """n prompts that, with their answer, fill `length` tokens: a text of
    length - key_digits - (1 + key_digits) - 1 tokens from `sample_texts` (header included), with
    the key block inserted after its first HEADER + round(depth * (text length - HEADER)) tokens
    (depth 0: right after the header, 1: right before the question), then the question [KEY].
    The key_digits tokens of the answer come last, so a prompt of length L is read, answer
    included, entirely inside the training length. Returns (prompts, keys)."""
    check_passkey(cfg, length, depth)
    # BEGIN SOLUTION lesson04: the key block at `depth` inside a text, then the question [KEY]
    block, digits = key_block(cfg, n, gen)
    text = sample_texts(cfg, n, length - cfg.key_digits - block.shape[1] - 1, gen)
    at = HEADER + round(depth * (text.shape[1] - HEADER))
    prompts = torch.cat((text[:, :at], block, text[:, at:], torch.full((n, 1), KEY)), 1)
    return prompts, digits
    # END SOLUTION


if __name__ == "__main__":  # python -m tinyrev.length.longtext: a look at the language
    g = torch.Generator().manual_seed(0)
    print(sample_texts(LongTextConfig(), 1, 48, g)[0].tolist())
    prompt, key = passkey_prompts(LongTextConfig(), 1, 32, 0.5, g)
    print(prompt[0].tolist(), "->", key[0].tolist())
