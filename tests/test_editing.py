"""Lesson 06: causal tracing and ROME's rank-one edit, against their defining properties."""

import pytest
import torch

from tinyrev import objectives
from tinyrev.editing import experiment, memit, rome, trace
from tinyrev.editing.finetune import finetune
from tinyrev.model import ModelConfig, Transformer
from tinyrev.reversal.facts import FactsConfig, generate

pytestmark = pytest.mark.lesson06
NTP = objectives.get("ntp")


def tiny():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=30, dim=32, n_layers=2, n_heads=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20 if p.dim() == 2 else 1)  # untrained weights, but answers that depend on input
    return model


QUESTION, ANSWER, NAME = [1, 7, 2, 3, 4, 5], [11], [2, 3]  # the name at positions 2 and 3


def probs(model, noise, rows):
    p_clean, clean = trace.clean_states(model, NTP, QUESTION, ANSWER)
    return p_clean, trace.corrupted_probs(model, NTP, QUESTION, ANSWER, NAME, noise, rows, clean)


@pytest.mark.needs("01", "02", "03")
def test_corrupting_nothing_changes_nothing():
    model = tiny()
    p_clean, p = probs(model, torch.zeros(len(NAME), 32), [[], [(0, "ffn", 3)]])
    torch.testing.assert_close(p, torch.full((2,), p_clean))
    assert not any(m._forward_hooks for m in model.modules())  # every hook removed afterwards


@pytest.mark.needs("01", "02", "03")
def test_restoring_every_position_recovers_the_clean_probability():
    model = tiny()
    noise = 3 * torch.randn(len(NAME), 32, generator=torch.Generator().manual_seed(0))
    every = [(layer, "residual", t) for layer in (0, 1) for t in range(len(QUESTION))]
    from_name = [(0, "residual", t) for t in range(NAME[0], len(QUESTION))]
    p_clean, p = probs(model, noise, [[], every, from_name])
    assert abs(p[0] / p_clean - 1) > 0.1  # the corruption does change the answer
    torch.testing.assert_close(p[1], torch.tensor(p_clean))
    # block 0's output from the name on is all the corruption reached: putting it back suffices
    torch.testing.assert_close(p[2], torch.tensor(p_clean))


@pytest.mark.needs("01", "02", "03")
def test_restoring_a_token_before_the_name_changes_nothing():
    model = tiny()
    noise = 3 * torch.randn(len(NAME), 32, generator=torch.Generator().manual_seed(0))
    _, p = probs(model, noise, [[]] + [[(layer, c, 1)] for layer in (0, 1)
                                     for c in trace.COMPONENTS])
    torch.testing.assert_close(p[1:], p[:1].expand(6))  # causal: nothing before the name moved


def test_rank_one_update_maps_k_to_v_and_spares_keys_orthogonal_in_c():
    g = torch.Generator().manual_seed(0)
    W, A = torch.randn(4, 6, generator=g), torch.randn(6, 20, generator=g)
    C = A @ A.T / 20 + 0.1 * torch.eye(6)  # a second moment: symmetric, positive definite
    k, v, r = torch.randn(6, generator=g), torch.randn(4, generator=g), torch.randn(6, generator=g)
    new = rome.rank_one_update(W, k, v, C)
    torch.testing.assert_close(new @ k, v)
    c_inv_k = torch.linalg.solve(C, k)
    u = r - (r @ c_inv_k) / (k @ c_inv_k) * k  # uᵀ C⁻¹ k = 0
    torch.testing.assert_close(new @ u, W @ u)
    assert torch.linalg.matrix_rank(new - W) == 1


def second_moment(g, n):
    A = torch.randn(n, 4 * n, generator=g)
    return A @ A.T / (4 * n) + 0.1 * torch.eye(n)  # symmetric, positive definite


def test_memit_with_one_fact_is_romes_update():
    g = torch.Generator().manual_seed(0)
    W, C = torch.randn(4, 6, generator=g), second_moment(g, 6)
    k, v = torch.randn(6, generator=g), torch.randn(4, generator=g)
    torch.testing.assert_close(memit.batch_update(W, k[:, None], (v - W @ k)[:, None], C),
                               rome.rank_one_update(W, k, v, C))


def test_memits_weight_shrinks_a_single_edit_by_its_share():
    """With λ > 0 and one fact the update is ROME's times kᵀC⁻¹k / (λ + kᵀC⁻¹k)."""
    g = torch.Generator().manual_seed(3)
    W, C = torch.randn(4, 6, generator=g), second_moment(g, 6)
    k, v = torch.randn(6, generator=g), torch.randn(4, generator=g)
    share = k @ torch.linalg.solve(C, k)
    rome_delta = rome.rank_one_update(W, k, v, C) - W
    memit_delta = memit.batch_update(W, k[:, None], (v - W @ k)[:, None], C, lam=2.0) - W
    torch.testing.assert_close(memit_delta, rome_delta * share / (2.0 + share))


def test_memit_moves_every_key_by_its_target_and_spares_keys_orthogonal_in_c():
    g = torch.Generator().manual_seed(1)
    W, C = torch.randn(6, 8, generator=g), second_moment(g, 8)
    K, R = torch.randn(8, 5, generator=g), torch.randn(6, 5, generator=g)
    new = memit.batch_update(W, K, R, C)
    assert ((new - W) @ K - R).abs().max() < 1e-4  # the least-squares residual on the edits
    x = torch.randn(8, generator=g)
    C_inv_K = torch.linalg.solve(C, K)
    u = x - K @ torch.linalg.solve(K.T @ C_inv_K, C_inv_K.T @ x)  # Kᵀ C⁻¹ u = 0
    assert (C_inv_K.T @ u).abs().max() < 1e-4
    torch.testing.assert_close(new @ u, W @ u, atol=1e-4, rtol=1e-4)
    assert torch.linalg.matrix_rank(new - W) == 5  # one direction per edited key


@pytest.mark.needs("01", "02", "03")
def test_memit_over_one_layer_writes_what_rome_writes():
    req = rome.Request([QUESTION, [1, 9, 2, 3, 4, 5]], [3, 3], ANSWER)
    C = second_moment(torch.Generator().manual_seed(2), tiny().blocks[1].ffn.w2.in_features)
    by_rome, by_memit = tiny(), tiny()
    rome.edit(by_rome, NTP, 1, C, req)
    memit.edit_many(by_memit, NTP, [1], {1: C}, [req], lam_per_width=0.0)
    torch.testing.assert_close(by_memit.blocks[1].ffn.w2.weight, by_rome.blocks[1].ffn.w2.weight,
                               atol=1e-5, rtol=1e-4)


@pytest.mark.needs("01")
@pytest.mark.parametrize("layer_only", [True, False])
def test_finetuning_moves_only_the_weights_it_is_given(layer_only):
    model, start = tiny(), tiny().state_dict()
    w2 = model.blocks[1].ffn.w2.weight
    finetune(model, [QUESTION + ANSWER] * 2, [w2] if layer_only else list(model.parameters()),
             steps=3)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, start[k])}
    assert "blocks.1.ffn.w2.weight" in moved
    assert moved == {"blocks.1.ffn.w2.weight"} if layer_only else len(moved) > 10
    assert all(p.requires_grad for p in model.parameters()) and not model.training


@pytest.mark.tools
def test_each_fact_gets_its_own_prompts_and_a_new_description_nobody_owns():
    data = generate(FactsConfig(n_per_subset=4, n_train_templates=3, n_test_templates=2))
    facts = experiment.facts_of(data)
    owned = {tuple(data.tokenizer.encode(d)) for group in data.people.values() for _, d in group}
    assert len(facts) == 4
    for f in facts:
        assert tuple(f.new) not in owned and f.new[:-1] == f.old[:-1]  # only the place differs
        assert len(f.prompts) == 3 and len(f.paraphrases) == 2 and len(f.reverse) == 2
        assert all(experiment.find(p, f.name) >= 0 for p in f.prompts + f.paraphrases)
        assert all(experiment.find(p, f.old) >= 0 for p in f.reverse)


@pytest.mark.tools
def test_a_run_of_another_kind_is_refused():
    data = generate(FactsConfig(n_per_subset=2, n_train_templates=2, n_test_templates=1))
    with pytest.raises(ValueError, match="is asked infill"):
        experiment.run(tiny(), data, objectives.get("abi"))
    with pytest.raises(ValueError, match="--fact 7 is out of range: this run has facts 0 to 1"):
        experiment.run(tiny(), data, NTP, fact=7)
