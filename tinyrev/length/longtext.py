"""The long-text task: a synthetic language for length generalization, and a passkey test.

Covers: a seeded generator of documents (BOS, then a Markov chain over words with short copies
from the recent past), training batches at the training length with a share of passkey
documents, and passkey prompts (a key hidden at a chosen depth, asked for at the end).
Leaves out: the model, training and the measurements (experiment.py beside it).

Three properties make it a fair test of LM-Infinite's claim (lessons/04_length_generalization.md):
- Bounded dependencies: every token depends only on the last `max_copy_distance` tokens, so a
  model that generalized past its training length would keep its NLL flat, and a window as long
  as the training length loses nothing. (Copying from anywhere in the past would make every
  windowed model worse for a reason that has nothing to do with positions.)
- Attention is needed: a copy repeats a span from up to `max_copy_distance` tokens back; after its
  first token the rest is predictable only by looking back (an induction head), not from the
  previous token alone.
- Stationary: from position `max_copy_distance` on, every position has the same statistics, so
  the last in-length bucket [L/2, L) is the fair reference for every bucket past L.
"""

from dataclasses import dataclass

import torch

from ..checks import check_int

BOS, KEY = 0, 1          # the document start, and the passkey marker ("the pass key is")
DIGITS = 2               # ids 2..11 are the key's digits 0..9
FIRST_WORD = 12          # ids from here to vocab_size - 1 are the language's words
SUCCESSOR_PROBS = (0.5, 0.25, 0.15, 0.1)  # each word's likely next words, most likely first


@dataclass(frozen=True)
class LongTextConfig:
    vocab_size: int = 256
    copy_prob: float = 0.15       # chance, at each token outside a copy, that a copy starts
    min_span: int = 3
    max_span: int = 6
    max_copy_distance: int = 24   # a copy's source starts at most this many tokens back
    key_digits: int = 5
    passkey_share: float = 0.5    # training documents that hide a key and ask for it at the end
    seed: int = 0                 # fixes the language (the successor table), not the texts

    def __post_init__(self):
        if self.vocab_size < FIRST_WORD + len(SUCCESSOR_PROBS):
            raise ValueError(f"vocab_size {self.vocab_size} leaves too few words; need at least "
                             f"{FIRST_WORD + len(SUCCESSOR_PROBS)}")
        if not 1 <= self.min_span <= self.max_span <= self.max_copy_distance:
            raise ValueError(f"need 1 <= min_span <= max_span <= max_copy_distance; got "
                             f"{self.min_span}, {self.max_span}, {self.max_copy_distance}")
        for name in ("copy_prob", "passkey_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1]; got {getattr(self, name)}")


def successors(cfg: LongTextConfig) -> torch.Tensor:
    """(n_words, 4): the four words that may follow each word, distinct, fixed by cfg.seed."""
    n_words = cfg.vocab_size - FIRST_WORD
    gen = torch.Generator().manual_seed(cfg.seed)
    table = torch.rand(n_words, n_words, generator=gen).argsort(-1)[:, :len(SUCCESSOR_PROBS)]
    return table + FIRST_WORD


def sample_texts(cfg: LongTextConfig, n: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """(n, length) documents: BOS, then the language. One step per position, all n at once."""
    # BEGIN SOLUTION lesson04: the documents, each token a successor or a copy from nearby
    table, probs = successors(cfg), torch.tensor(SUCCESSOR_PROBS)
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = BOS
    x[:, 1:2] = torch.randint(FIRST_WORD, cfg.vocab_size, (n, 1), generator=gen)
    left = torch.zeros(n, dtype=torch.long)   # tokens of the current copy still to come
    dist = torch.zeros(n, dtype=torch.long)   # how far back the current copy reads
    rows = torch.arange(n)
    for t in range(2, length):
        span = torch.randint(cfg.min_span, cfg.max_span + 1, (n,), generator=gen)
        reach = min(cfg.max_copy_distance, t - 1)  # the source must lie after BOS
        start = (left == 0) & (torch.rand(n, generator=gen) < cfg.copy_prob) & (span <= reach)
        far = span + (torch.rand(n, generator=gen) * (reach - span + 1).clamp(min=1)).long()
        left, dist = torch.where(start, span, left), torch.where(start, far, dist)
        copying = left > 0
        pick = torch.multinomial(probs, n, replacement=True, generator=gen)
        markov = table[x[:, t - 1] - FIRST_WORD, pick]
        x[:, t] = torch.where(copying, x[rows, t - dist.clamp(min=1)], markov)
        left = (left - 1).clamp(min=0)
    return x
    # END SOLUTION


def key_block(cfg: LongTextConfig, n: int, gen: torch.Generator):
    """(n, 1 + key_digits) blocks "[KEY] d d d d d", and the (n, key_digits) digits alone."""
    digits = torch.randint(DIGITS, DIGITS + 10, (n, cfg.key_digits), generator=gen)
    return torch.cat((torch.full((n, 1), KEY), digits), 1), digits


def training_batch(cfg: LongTextConfig, n: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """(n, length) training documents; a `passkey_share` of them hide a key somewhere and end
    with "[KEY]" and the key again, so that retrieval is learned within the training length."""
    x = sample_texts(cfg, n, length, gen)
    block, _ = key_block(cfg, n, gen)
    width = block.shape[1]
    if length < 2 * width + 1:
        return x  # too short to hide a key and ask for it
    # BEGIN SOLUTION lesson04: in a passkey_share of the rows, the key block hidden, then asked
    hide = torch.rand(n, generator=gen) < cfg.passkey_share
    where = torch.randint(1, length - 2 * width + 1, (n, 1), generator=gen) + torch.arange(width)
    rows = torch.arange(n)[:, None]
    x[rows[hide], where[hide]] = block[hide]
    x[hide, length - width:] = block[hide]
    return x
    # END SOLUTION


def check_passkey(cfg: LongTextConfig, length, depth):
    # the key block, the question, and one token of text
    check_int("a passkey prompt's length", length, 2 * (cfg.key_digits + 1))
    if not 0 <= depth <= 1:
        raise ValueError(f"passkey depth must lie in [0, 1]; got {depth}")


def passkey_prompts(cfg: LongTextConfig, n: int, length: int, depth: float, gen: torch.Generator):
    """n prompts of `length` tokens: BOS, text with the key block at `depth` (0: right after BOS,
    1: right before the question), and a final [KEY]. Returns (prompts, keys)."""
    check_passkey(cfg, length, depth)
    # BEGIN SOLUTION lesson04: the key block at `depth` inside a text, then the question [KEY]
    block, digits = key_block(cfg, n, gen)
    text = sample_texts(cfg, n, length - block.shape[1] - 1, gen)
    at = 1 + round(depth * (text.shape[1] - 1))
    prompts = torch.cat((text[:, :at], block, text[:, at:], torch.full((n, 1), KEY)), 1)
    return prompts, digits
    # END SOLUTION


if __name__ == "__main__":  # python -m tinyrev.length.longtext: a look at the language
    g = torch.Generator().manual_seed(0)
    print(sample_texts(LongTextConfig(), 1, 48, g)[0].tolist())
    prompt, key = passkey_prompts(LongTextConfig(), 1, 32, 0.5, g)
    print(prompt[0].tolist(), "->", key[0].tolist())
