"""Symbolic tasks for the training-dynamics lesson (Zhu et al. 2024): entities as single tokens.

Covers: the reversal task (pairs A_i, B_i; sentences "A_i → B_i" and "B_i ← A_i"; a share of the
pairs trained both ways, the rest only A → B, whose B ← A is the test) and the chain task
(triples A_i, B_i, C_i; "A_i → B_i" and "B_i → C_i" for all, "A_i ⇝ C_i" for a share, the rest
asked A ⇝ ? as the test). Both are generated from a seed as (N, 3) tensors of token ids.
Leaves out: multi-token entities, paraphrases and words (reversal/facts.py has those), and any
model.

Token ids: the two relation tokens first, then the entities kind by kind. With no special tokens,
the vocabulary is exactly what the paper's M counts: every token a model could be asked to predict.
"""

from dataclasses import dataclass

import torch

from ..checks import check_int

FORWARD = 0    # "→"
BACKWARD = 1   # "←" in the reversal task
TWO_HOP = 1    # "⇝" in the chain task: ← and ⇝ never share a task, so they share an id
FIRST_ENTITY = 2


@dataclass(frozen=True)
class SymbolicConfig:
    n_pairs: int = 200         # M entity pairs (triples in the chain task); Zhu et al. use 200
    both_share: float = 0.7    # share whose test relation is trained too (both directions / A ⇝ C)
    seed: int = 0

    def __post_init__(self):
        check_int("n_pairs", self.n_pairs)
        if not 0 <= self.both_share <= 1:
            raise ValueError(f"both_share={self.both_share!r} is outside [0, 1]: it is the share "
                             "of pairs trained in both directions")
        if self.n_test < 2:
            raise ValueError(f"n_pairs={self.n_pairs} with both_share={self.both_share} leaves "
                             f"{self.n_test} pair(s) trained one way only; the test needs at "
                             "least 2 "
                             "(a right answer and another to compare it with): use more pairs or a "
                             "smaller share")

    @property
    def n_both(self) -> int:
        return round(self.n_pairs * self.both_share)

    @property
    def n_test(self) -> int:
        return self.n_pairs - self.n_both


@dataclass
class Task:
    train: torch.Tensor      # (N, 3) sentences: entity, relation, entity
    entities: torch.Tensor   # (kinds, n) token ids: row 0 the A_i, row 1 the B_i (row 2 the C_i)
    both: torch.Tensor       # indices i whose test relation is trained as well
    test: torch.Tensor       # indices i whose test relation is never trained: the test

    @property
    def vocab_size(self) -> int:
        return FIRST_ENTITY + self.entities.numel()


def _split(cfg: SymbolicConfig, kinds: int):
    ids = FIRST_ENTITY + torch.arange(kinds * cfg.n_pairs).view(kinds, cfg.n_pairs)
    order = torch.randperm(cfg.n_pairs, generator=torch.Generator().manual_seed(cfg.seed))
    return ids, order[:cfg.n_both].sort().values, order[cfg.n_both:].sort().values


def _sentences(first, relation, second):
    return torch.stack((first, torch.full_like(first, relation), second), dim=1)


def reversal_task(cfg: SymbolicConfig = SymbolicConfig()) -> Task:
    """Every A_i → B_i is trained; B_i ← A_i only for the `both` pairs; the rest is the test."""
    # BEGIN SOLUTION lesson05: every A_i → B_i, and B_i ← A_i for the both pairs only
    (a, b), both, test = _split(cfg, 2)
    train = torch.cat((_sentences(a, FORWARD, b), _sentences(b[both], BACKWARD, a[both])))
    return Task(train, torch.stack((a, b)), both, test)
    # END SOLUTION


def chain_task(cfg: SymbolicConfig = SymbolicConfig()) -> Task:
    """A_i → B_i and B_i → C_i for every i; A_i ⇝ C_i only for the `both` share; the rest is
    the test."""
    # BEGIN SOLUTION lesson05: both hops for every i, A_i ⇝ C_i for the both share only
    (a, b, c), both, test = _split(cfg, 3)
    train = torch.cat((_sentences(a, FORWARD, b), _sentences(b, FORWARD, c),
                       _sentences(a[both], TWO_HOP, c[both])))
    return Task(train, torch.stack((a, b, c)), both, test)
    # END SOLUTION
