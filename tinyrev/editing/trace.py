"""Causal tracing (Meng et al. 2022, ROME): which hidden states carry a fact to its answer.

Covers: three runs of one question. Clean: p(answer). Corrupted: the name's token embeddings
shifted by Gaussian noise (3x the embedding's std), so the model no longer knows who is asked
about. Restored: corrupted, but one clean hidden state put back, at one (layer, token): the
residual stream after the block, or only the attention's output, or only the feed-forward
output. A state that recovers most of p(answer) carries the fact at that point. Every
restoration of a question runs as one row of one batch.
Leaves out: which facts and prompts are traced, and the table over them (experiment.py); ROME's
average over several noise draws (one fixed draw per fact here; the average over facts smooths
it).
"""

from collections import defaultdict

import torch

from ..reversal.evaluate import answer_logprob

COMPONENTS = ("residual", "attention", "ffn")
NOISE = 3.0  # the corruption's std, in units of the embedding's std (ROME's choice)


def component(model, layer: int, name: str):
    """The module whose output is hidden state `name` of block `layer`."""
    if not 0 <= layer < len(model.blocks):
        raise ValueError(f"layer {layer} is outside the model; it has layers 0 to "
                         f"{len(model.blocks) - 1}")
    block = model.blocks[layer]
    return {"residual": block, "attention": block.attn, "ffn": block.ffn}[name]


def clean_states(model, objective, question: list, answer: list):
    """p(answer | question) and every hidden state of the clean run: {(layer, component): (1, T,
    dim)}, T counting the answer's tokens too (it is read teacher-forced)."""
    states, handles = {}, []
    for layer in range(len(model.blocks)):
        for name in COMPONENTS:
            def keep(module, args, out, key=(layer, name)):
                states[key] = out
            handles.append(component(model, layer, name).register_forward_hook(keep))
    try:
        question = torch.tensor([question], device=model.embed.weight.device)
        p = answer_logprob(model, objective, question, [answer]).exp()
    finally:
        for h in handles:
            h.remove()
    return p.item(), states


def corrupted_probs(model, objective, question: list, answer: list, subject: list, noise,
                    rows: list, clean: dict) -> torch.Tensor:
    """p(answer) for each row of `rows`, with `noise` (len(subject), dim) added to the embeddings
    of the tokens at positions `subject`, and in row r the clean state put back at every
    (layer, component, token) of rows[r] (`clean` from `clean_states`)."""
    # BEGIN SOLUTION lesson06: the corrupted run, with the clean states of each row put back
    handles = []

    def corrupt(module, args, out):
        out = out.clone()
        out[:, subject] += noise.to(out)
        return out

    handles.append(model.embed.register_forward_hook(corrupt))
    cells = defaultdict(list)  # (layer, component) -> [(row, token)]
    for r, restored in enumerate(rows):
        for layer, name, token in restored:
            cells[layer, name].append((r, token))
    for (layer, name), where in cells.items():
        def restore(module, args, out, where=torch.tensor(where), state=clean[layer, name]):
            out = out.clone()
            out[where[:, 0], where[:, 1]] = state[0, where[:, 1]]
            return out
        handles.append(component(model, layer, name).register_forward_hook(restore))
    try:
        questions = torch.tensor([question], device=noise.device).expand(len(rows), -1)
        return answer_logprob(model, objective, questions, [answer] * len(rows)).exp()
    finally:
        for h in handles:
            h.remove()
    # END SOLUTION


@torch.no_grad()
def trace(model, objective, question: list, answer: list, subject: list, gen) -> dict:
    """{"clean": p, "corrupted": p, "restored": (n_layers, 3 components, len(question)) tensor of
    p(answer) with that one clean state put back}, with one noise draw from `gen`.

    Only the question's tokens are restored, so trace a one-token answer: a second answer token
    would be read at a position the corruption reached and no restoration repairs."""
    model.eval()
    p_clean, clean = clean_states(model, objective, question, answer)
    std = NOISE * model.embed.weight.std()
    noise = torch.randn(len(subject), model.cfg.dim, generator=gen).to(std) * std
    cells = [(layer, name, t) for layer in range(len(model.blocks)) for name in COMPONENTS
             for t in range(len(question))]
    p = corrupted_probs(model, objective, question, answer, subject, noise,
                        [[]] + [[cell] for cell in cells], clean)
    return {"clean": p_clean, "corrupted": p[0].item(),
            "restored": p[1:].view(len(model.blocks), len(COMPONENTS), len(question))}
