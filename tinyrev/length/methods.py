"""Every training-free way to read past the training length L, as the modes table of lesson 04.

Covers: the three kinds of change these methods make, each with one small class per method.
- RoPE's frequencies (a `Scaling`, which a causal Pattern carries): position interpolation,
  NTK-aware scaling, dynamic NTK and YaRN.
- Where a far key sits for RoPE (a far-key rule, which a Λ Pattern carries): LM-Infinite's
  distance limit (attention.distance_limit), ReRoPE, Self-Extend, StreamingLLM.
- Which keys are kept (the Λ mask and its bounded cache, model.KVCache): Λ, the window,
  StreamingLLM.
`modes` names each method with its Pattern: a new method is one class here and one line there.
Leaves out: methods that need training (fine-tuned PI or YaRN, LongLoRA), Su's log-length query
scaling in ReRoPE, leaky ReRoPE, and LM-Infinite's optional top-k attention in middle layers.
"""

import math
from dataclasses import dataclass

import torch

from ..attention import Pattern, check_lambda_sizes
from ..checks import check_int
from ..rope import rope_frequencies

EVERY_KEY = 2 ** 62  # as n_global: past any position, so every key is global and none forgotten


@dataclass(frozen=True)
class Scaling:
    """RoPE's frequencies rescaled for reading up to s times the training length L.

    s: a fixed factor (the reading length over L), or None for a dynamic one, s = max(1, n / L)
    for the n tokens read so far: recomputed as the text grows, and exactly RoPE inside L.
    A method says how one frequency changes (`frequencies`) and, if it does, how the logits are
    sharpened (`logit_scale`).
    """
    train_len: int
    s: float | None = None

    def __post_init__(self):
        check_int("the training length L", self.train_len)
        if self.s is not None and not (isinstance(self.s, (int, float)) and math.isfinite(self.s)
                                       and self.s > 0):
            raise ValueError(f"the scale s must be a finite number > 0 (the reading length over "
                             f"the training length); got {self.s!r}")

    @property
    def dynamic(self) -> bool:
        return self.s is None

    def factor(self, n: int) -> float:
        return self.s if self.s is not None else max(1.0, n / self.train_len)

    def theta(self, D: int, base: float, n: int, device) -> torch.Tensor:
        """The D/2 pair frequencies for a text of which n tokens have been read."""
        return self.frequencies(rope_frequencies(D, base, device), D, self.factor(n))

    def frequencies(self, theta, D, s):
        raise NotImplementedError

    def logit_scale(self, n: int) -> float:
        return 1.0


class Interpolation(Scaling):
    """Position interpolation (Chen et al. 2023): position m read as m / s, so every distance
    stays inside what training saw. Dividing every frequency by s is the same rotation."""

    def frequencies(self, theta, D, s):
        return theta / s


class NTK(Scaling):
    """NTK-aware scaling (bloc97, 2023): the base b becomes b * s^(D / (D - 2)). Pair i's
    frequency b^(-2i/D) then becomes theta_i * s^(-2i / (D - 2)): the fastest pair (i = 0) keeps
    its frequency, the slowest (i = D/2 - 1) is divided by s. With s = None: dynamic NTK."""

    def frequencies(self, theta, D, s):
        return theta * s ** (-torch.arange(0, D, 2, device=theta.device) / (D - 2))


@dataclass(frozen=True)
class YaRN(Scaling):
    """YaRN (Peng et al. 2023) without fine-tuning, dynamic by default as its authors use it so.

    Per pair, r = L / wavelength = L * theta / (2 pi) is how many turns it makes in L tokens.
    Pairs that turn fewer than alpha times are interpolated fully (theta / s), pairs that turn
    more than beta times are kept, and a linear ramp in r joins them. The logits are multiplied by
    (0.1 ln s + 1)^2, which keeps the softmax as sharp as it was over fewer keys. (The authors'
    code ramps linearly in the pair index between the pairs where r = beta and r = alpha.)
    """
    alpha: float = 1.0
    beta: float = 32.0

    def frequencies(self, theta, D, s):
        turns = self.train_len * theta / (2 * math.pi)
        keep = ((turns - self.alpha) / (self.beta - self.alpha)).clamp(0, 1)
        return (1 - keep) * theta / s + keep * theta

    def logit_scale(self, n):
        return (0.1 * math.log(self.factor(n)) + 1) ** 2


@dataclass(frozen=True)
class SelfExtend:
    """Self-Extend's far-key rule (Jin et al. 2024): beyond the neighbour window W, query i and
    key j are read at grouped positions, i // G + W - W // G and j // G, so a far key sits at
    distance i // G - j // G + W - W // G: every G positions count as one. Used with every key
    global and n_local = W, the window keeps exact distances."""
    group: int

    def __post_init__(self):
        check_int("Self-Extend's group size G", self.group)

    def __call__(self, q_pos, k_pos, n_local):
        return q_pos // self.group + n_local - n_local // self.group, k_pos // self.group


@dataclass(frozen=True)
class CachePositions:
    """StreamingLLM's far-key rule (Xiao et al. 2023): positions counted inside the cache, not
    the text. The sinks keep positions 0 .. n_global - 1 and the query sits at its index in the
    cache, at most n_global + n_local - 1; keys inside the window keep their true distances."""
    n_global: int

    def __call__(self, q_pos, k_pos, n_local):
        return q_pos.clamp(max=self.n_global + n_local - 1), k_pos


def modes(train_len: int, *, n_global: int, n_local: int | None = None, read_len: int,
          scale: float | None = None, group: int | None = None,
          window: int | None = None) -> dict:
    """name -> Pattern: every way this lesson reads a text of read_len tokens with weights trained
    at train_len. Defaults, none tuned on a seed: Λ's window n_local = L; the fixed scale
    s = read_len / L; Self-Extend's window W = L / 2 and the group G from its paper's rule
    (L - W) * G + W >= read_len; StreamingLLM's 4 sinks with a window of L - 4, so that no
    position in its cache reaches L."""
    n_local = train_len if n_local is None else n_local
    check_lambda_sizes(n_global, n_local)
    check_int("the reading length", read_len, 2)
    window = train_len // 2 if window is None else window
    check_int("Self-Extend's window W", window)
    if window >= read_len:
        raise ValueError(f"Self-Extend's window W={window} must be shorter than the text read "
                         f"({read_len} tokens), or nothing is grouped")
    group = group if group is not None else max(
        1, math.ceil((read_len - window) / max(1, train_len - window)))
    s = read_len / train_len if scale is None else scale
    sinks = 4
    return {"vanilla": Pattern("causal"),
            "lambda": Pattern("lambda", n_global=n_global, n_local=n_local),
            "lambda_no_limit": Pattern("lambda", n_global=n_global, n_local=n_local,
                                       distance_limit=False),
            "window": Pattern("lambda", n_global=0, n_local=n_local),
            "rerope": Pattern("lambda", n_global=EVERY_KEY, n_local=n_local),
            "pi": Pattern("causal", scaling=Interpolation(train_len, s)),
            "ntk": Pattern("causal", scaling=NTK(train_len, s)),
            "dynamic_ntk": Pattern("causal", scaling=NTK(train_len)),
            "yarn": Pattern("causal", scaling=YaRN(train_len)),
            "self_extend": Pattern("lambda", n_global=EVERY_KEY, n_local=window,
                                   far=SelfExtend(group)),
            "streaming_llm": Pattern("lambda", n_global=sinks, n_local=max(1, train_len - sinks),
                                     far=CachePositions(sinks))}
