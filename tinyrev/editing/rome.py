"""ROME's rank-one edit (Meng et al. 2022) of one feed-forward output matrix: rewrite one fact.

A SwiGLU block ends with W = `w2.weight`, which maps a key k = silu(w1 x) * w3 x (the hidden
activation at one token) to the value W k added to the residual stream. Read W as a memory: the
key at a name's last token, the value the fact the later layers turn into an answer. To make one
key k* give a new value v* and disturb every other key as little as possible, weighted by how
keys are spread (C = E[k kᵀ] over the training text), ROME's closed form is

    W' = W + (v* − W k*) (C⁻¹ k*)ᵀ / (k*ᵀ C⁻¹ k*)

so that W' k* = v* exactly, and a key u with uᵀ C⁻¹ k* = 0 is mapped as before.
Covers: collecting keys with a hook on w2's input, C, k* (the mean over a few prompts that name
the person), v* (W k* plus an offset fitted by a few gradient steps so that the prompts are
answered with the new description) and the update.
`edit` puts the pieces together for one request. Leaves out: many facts in one update (memit.py),
ROME's KL term that keeps the rest of what the model says about the person; choosing facts and
measuring an edit (experiment.py).
"""

from dataclasses import dataclass

import torch

from ..reversal.evaluate import answer_logprob
from .trace import component


@dataclass(frozen=True)
class Request:
    """One fact to write: prompts of one length (lists of ids) whose token at `last[i]` holds the
    key, and the answer that must follow each of them."""
    prompts: list
    last: list
    answer: list


@torch.no_grad()
def hidden(model, layer: int, ids: torch.Tensor, at: str = "key") -> torch.Tensor:
    """(B, T, width) at layer `layer` for equally long sequences `ids` (B, T): w2's input (at
    "key", the hidden activation ROME edits) or the block's output (at "residual", where MEMIT
    sets its targets)."""
    out = []
    if at == "key":
        handle = model.blocks[layer].ffn.w2.register_forward_hook(lambda m, a, y: out.append(a[0]))
    else:
        handle = component(model, layer, "residual").register_forward_hook(
            lambda m, a, y: out.append(y))
    try:
        model(ids.to(model.embed.weight.device))
    finally:
        handle.remove()
    return out[0]


def by_length(sequences: list) -> dict:
    """{length: [index, ...]}: sequences of one length run as one batch, without padding."""
    groups = {}
    for i, s in enumerate(sequences):
        groups.setdefault(len(s), []).append(i)
    return groups


def keys(model, layer: int, sequences: list, positions: list, at: str = "key") -> torch.Tensor:
    """(len(sequences), width): `hidden` at layer `layer`, in sequence i at token positions[i],
    each sequence read under the causal mask."""
    out = [None] * len(sequences)
    for group in by_length(sequences).values():
        h = hidden(model, layer, torch.tensor([sequences[i] for i in group]), at)
        for row, i in enumerate(group):
            out[i] = h[row, positions[i]]
    return torch.stack(out)


def second_moment(model, layer: int, sentences: list) -> torch.Tensor:
    """C = E[k kᵀ] over every token of `sentences` (lists of ids), a (hidden, hidden) matrix."""
    k = torch.cat([hidden(model, layer, torch.tensor([sentences[i] for i in group])).flatten(0, 1)
                   for group in by_length(sentences).values()])
    return k.T @ k / len(k)


def rank_one_update(W: torch.Tensor, k: torch.Tensor, v: torch.Tensor, C: torch.Tensor):
    """W + (v − W k)(C⁻¹k)ᵀ / (kᵀC⁻¹k): W' k = v, and a key u with uᵀC⁻¹k = 0 keeps W u."""
    # BEGIN SOLUTION lesson06: ROME's closed form, with C⁻¹k from a linear solve
    u = torch.linalg.solve(C, k)
    return W + torch.outer(v - W @ k, u) / (k @ u)
    # END SOLUTION


def target_value(model, objective, layer: int, prompts: list, last: list, answer: list,
                 k: torch.Tensor, steps: int = 20, lr: float = 0.1) -> torch.Tensor:
    """v* = W k* + δ, δ fitted so that every prompt (ids, the edited token at last[i]) is
    followed by `answer`: Adam on −mean log p(answer | prompt) with the feed-forward output of
    layer `layer` at the edited token shifted by δ."""
    W = model.blocks[layer].ffn.w2.weight
    delta = torch.zeros(W.shape[0], device=W.device, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    groups = [[(prompts[i], last[i]) for i in group] for group in by_length(prompts).values()]
    for _ in range(steps):
        loss = 0.0
        for group in groups:
            at = torch.tensor([t for _, t in group], device=W.device)

            def shift(module, args, out, at=at):
                out = out.clone()
                out[torch.arange(len(at)), at] += delta
                return out

            handle = component(model, layer, "ffn").register_forward_hook(shift)
            try:
                q = torch.tensor([p for p, _ in group], device=W.device)
                loss = loss - answer_logprob(model, objective, q, [answer] * len(group)).sum()
            finally:
                handle.remove()
        (delta.grad,) = torch.autograd.grad(loss / len(prompts), delta)  # not the model's
        opt.step()
    return (W @ k + delta).detach()


def edit(model, objective, layer: int, C: torch.Tensor, request: Request):
    """Write `request` into w2 at `layer` as the weights stand now: k* the mean key over its
    prompts, v* fitted, then the rank-one update."""
    k = keys(model, layer, request.prompts, request.last).mean(0)
    v = target_value(model, objective, layer, request.prompts, request.last, request.answer, k)
    w2 = model.blocks[layer].ffn.w2
    with torch.no_grad():
        w2.weight.copy_(rank_one_update(w2.weight, k, v, C))
