"""MEMIT (Meng et al. 2023): many facts written at once, spread over a range of feed-forward layers.

ROME asks one key k* to give one value exactly. MEMIT asks the outputs of n keys
K = [k₁ … kₙ] (hidden, n) to change by R = [r₁ … rₙ] (dim, n) at once, and every other key's as
little as possible, weighted by how keys are spread (C = E[k kᵀ]). Its least-squares answer,
ΔW = R Kᵀ (λC + K Kᵀ)⁻¹, is the same matrix as

    ΔW = R (λI + Kᵀ C⁻¹ K)⁻¹ Kᵀ C⁻¹          and ΔW u = 0 whenever Kᵀ C⁻¹ u = 0.

λ weighs every other key against the edits. At λ = 0 the edits hold exactly (ΔW K = R), and with
one fact this is ROME's update. If edited keys are nearly alike, exact constraints make
KᵀC⁻¹K nearly singular and the update huge; λ > 0 keeps it bounded. Over layers l₁ < … < l_L,
MEMIT fits each fact's target at the *output* of the last layer (z = its residual there plus a
fitted shift, found as ROME finds v*), then edits the layers in order: at each, it reads what is
still missing at the top, z − (the residual now), and gives this layer its share, one over the
number of layers left, so the change is spread instead of piled onto one matrix.
Covers: `batch_update` (the formula above) and `edit_many` (the layers in order).
Leaves out: MEMIT's bound on the norm of each fitted shift; ROME itself (rome.py) and
measuring (experiment.py).
"""

import torch

from . import rome

# MEMIT's weight for GPT-J, 15 000 against a mean second moment C over a 16 384-wide hidden
# layer, kept in proportion to the width: E[kᵀC⁻¹k] = width, so λ / width is what carries over
LAMBDA_PER_WIDTH = 15000 / 16384


def batch_update(W: torch.Tensor, K: torch.Tensor, R: torch.Tensor, C: torch.Tensor,
                 lam: float = 0.0):
    """W + R (λI + KᵀC⁻¹K)⁻¹ KᵀC⁻¹ for keys K (hidden, n) and wanted changes R (dim, n), in fp64
    (the n × n system is as ill-conditioned as the keys are alike)."""
    # BEGIN SOLUTION lesson06: MEMIT's batch update, every key moved toward its column of R
    C_inv_K = torch.linalg.solve(C.double(), K.double())          # (hidden, n)
    A = K.double().T @ C_inv_K + lam * torch.eye(K.shape[1], dtype=torch.float64,
                                                  device=K.device)
    return W + (R.double() @ torch.linalg.solve(A, C_inv_K.T)).to(W.dtype)
    # END SOLUTION


def edit_many(model, objective, layers: list, Cs: dict, requests: list,
              lam_per_width: float = LAMBDA_PER_WIDTH):
    """Write every request at once over `layers` (ascending), C per layer in `Cs`, with
    λ = lam_per_width * the hidden width."""
    top = layers[-1]
    W_top = model.blocks[top].ffn.w2.weight
    residuals, shifts = [], []
    for r in requests:  # each fact's target at the top layer's output: now, plus a fitted shift
        k = rome.keys(model, top, r.prompts, r.last).mean(0)
        v = rome.target_value(model, objective, top, r.prompts, r.last, r.answer, k)
        shifts.append(v - W_top.detach() @ k)
        residuals.append(rome.keys(model, top, r.prompts, r.last, at="residual").mean(0))
    targets = torch.stack(residuals) + torch.stack(shifts)  # (n, dim)
    for i, layer in enumerate(layers):
        K = torch.stack([rome.keys(model, layer, r.prompts, r.last).mean(0) for r in requests])
        now = torch.stack([rome.keys(model, top, r.prompts, r.last, at="residual").mean(0)
                           for r in requests])
        w2 = model.blocks[layer].ffn.w2
        with torch.no_grad():
            w2.weight.copy_(batch_update(w2.weight, K.T, (targets - now).T / (len(layers) - i),
                                         Cs[layer], lam_per_width * K.shape[1]))
