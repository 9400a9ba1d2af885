"""Fine-tuning as an edit: a few steps of plain next-token prediction on the new fact's sentences.

The baseline ROME's authors compare with, in two forms: every weight free, or only one layer's
feed-forward output matrix w2 (the matrix ROME edits), so the two differ only in *how* that
matrix changes. Cheap to write, and nothing in the loss says what to keep: lesson 06 measures what
it does to the facts it was not asked to change.
Covers: `finetune`. Leaves out: ROME's L∞ bound on the constrained weights, and the sentences
themselves (experiment.py builds them from the run's own training sentences).
"""

import torch
import torch.nn.functional as F

STEPS, LR = 20, 1e-3  # Adam; fixed once, before any measurement (lesson 06 reports the result)


def finetune(model, sentences: list, params: list, steps: int = STEPS, lr: float = LR):
    """Adam on the mean next-token loss over `sentences` (lists of ids, one length), moving only
    `params`; every other weight is left exactly as it was."""
    ids = torch.tensor(sentences, device=params[0].device)
    given = {id(p) for p in params}
    frozen = [p for p in model.parameters() if id(p) not in given]
    for p in frozen:
        p.requires_grad_(False)
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    try:
        for _ in range(steps):
            logits = model(ids[:, :-1]).float()
            loss = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.eval()
