"""Lesson 05: the training dynamics behind the curse: the gradient, the task, the asymmetry."""

import math
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tinyrev.dynamics.experiment import (bilinear_logits, embeddings, heatmap, measure,
                              measure_chain, train_bilinear, train_decoder)
from tinyrev.objectives import get
from tinyrev.reversal.evaluate import answer_asymmetry
from tinyrev.reversal.facts import FactsConfig, generate as make_facts
from tinyrev.model import ModelConfig, Transformer
from tinyrev.dynamics.symbolic import (BACKWARD, FORWARD, TWO_HOP, SymbolicConfig, chain_task,
                              reversal_task)

pytestmark = pytest.mark.lesson05
EVAL = str(Path(__file__).resolve().parents[1] / "eval.py")


def gd_step(theta, U, x, y, lr):
    """One gradient-descent step on -log p(y | x): the new Θ, and p(· | x) before the step."""
    theta = theta.clone().requires_grad_()
    loss = F.cross_entropy(bilinear_logits(theta, U, torch.tensor([x])), torch.tensor([y]))
    (grad,) = torch.autograd.grad(loss, theta)
    p = bilinear_logits(theta, U, torch.tensor([x])).softmax(-1)[0].detach()
    return (theta - lr * grad).detach(), p, grad


def test_bilinear_gradient_is_the_hand_derived_one():
    """d/dΘ [-log p(y|x)] = -u_x (u_y - Σ_z p(z|x) u_z)ᵀ."""
    torch.manual_seed(0)
    U, theta = torch.randn(7, 16), 0.3 * torch.randn(16, 16)
    _, p, grad = gd_step(theta, U, 2, 5, lr=0.1)
    assert torch.allclose(grad, -torch.outer(U[2], U[5] - p @ U), atol=1e-5)


@pytest.mark.parametrize("orthonormal", [True, False])
def test_reverse_logit_grows_by_the_embeddings_overlap(orthonormal):
    """After one step on (x, y) the reverse logit u_yᵀΘu_x moves by lr (u_y·u_x) (u_y - E_p u)·u_x:
    exactly 0 for orthonormal embeddings, while the forward logit grows by lr (1 - p(y|x))."""
    torch.manual_seed(0)
    V, d, x, y, lr = 6, 64, 1, 4, 0.5
    U = torch.linalg.qr(torch.randn(d, V)).Q.T if orthonormal else embeddings(V, d)
    theta = 0.1 * torch.randn(d, d)
    new, p, _ = gd_step(theta, U, x, y, lr)
    logit = lambda th, a, b: U[a] @ th @ U[b]
    reverse_growth = logit(new, y, x) - logit(theta, y, x)
    expected = lr * (U[y] @ U[x]) * ((U[y] - p @ U) @ U[x])
    assert reverse_growth.item() == pytest.approx(expected.item(), abs=1e-6)
    forward_growth = logit(new, x, y) - logit(theta, x, y)
    if orthonormal:
        assert abs(reverse_growth.item()) < 1e-6
        assert forward_growth.item() == pytest.approx(lr * (1 - p[y].item()), rel=1e-4)
    else:  # near-orthogonal: small next to the forward growth, but not zero
        assert 0 < abs(reverse_growth.item()) < 0.1 * forward_growth.item()


@pytest.mark.parametrize("make", [reversal_task, chain_task])
def test_splits_are_disjoint_complete_and_deterministic(make):
    cfg = SymbolicConfig(n_pairs=20, both_share=0.7, seed=3)
    task = make(cfg)
    both, test = set(task.both.tolist()), set(task.test.tolist())
    assert not both & test and both | test == set(range(20)) and len(test) == cfg.n_test == 6
    again, other = make(cfg), make(SymbolicConfig(n_pairs=20, both_share=0.7, seed=4))
    assert torch.equal(again.train, task.train) and torch.equal(again.test, task.test)
    assert not torch.equal(other.test, task.test)
    assert task.entities.unique().numel() == task.entities.numel()
    assert task.vocab_size == task.train.max().item() + 1 == 2 + task.entities.numel()


def test_reversal_test_sentences_are_never_trained_and_their_forward_always_is():
    task = reversal_task(SymbolicConfig(n_pairs=20, both_share=0.5))
    a, b = task.entities
    trained = {tuple(s) for s in task.train.tolist()}
    assert len(task.train) == 20 + 10
    for i in range(20):
        assert (a[i].item(), FORWARD, b[i].item()) in trained
        assert ((b[i].item(), BACKWARD, a[i].item()) in trained) == (i in task.both.tolist())


def test_chain_test_is_never_trained_but_both_hops_are():
    task = chain_task(SymbolicConfig(n_pairs=20, both_share=0.5))
    a, b, c = (row.tolist() for row in task.entities)
    trained = {tuple(s) for s in task.train.tolist()}
    for i in task.test.tolist():
        assert (a[i], TWO_HOP, c[i]) not in trained
        assert (a[i], FORWARD, b[i]) in trained and (b[i], FORWARD, c[i]) in trained


@pytest.mark.parametrize("kwargs, words", [
    ({"both_share": 1.5}, "both_share=1.5 is outside [0, 1]"),
    ({"both_share": -0.1}, "both_share=-0.1 is outside [0, 1]"),
    ({"both_share": float("nan")}, "outside [0, 1]"),
    ({"n_pairs": 3}, "leaves 1 pair(s) trained one way only; the test needs at least 2"),
    ({"n_pairs": 0}, "n_pairs must be an integer >= 1; got 0"),
])
@pytest.mark.tools
def test_bad_task_settings_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        SymbolicConfig(**kwargs)


@pytest.mark.parametrize("dim", [0, -4, 2.5])
@pytest.mark.tools
def test_bad_dimension_is_refused(dim):
    with pytest.raises(ValueError, match=f"dimension must be an integer >= 1; got {dim}"):
        embeddings(10, dim)


def eval_py(monkeypatch, *args):
    """Run eval.py in this process; return its exit code."""
    monkeypatch.setattr(sys, "argv", ["eval.py", *args])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(EVAL, run_name="__main__")
    return e.value.code


@pytest.mark.parametrize("args, words", [
    (["--task", "dynamics", "--both-share", "1.5"], "both_share=1.5 is outside [0, 1]"),
    (["--task", "dynamics", "--pairs", "3"], "the test needs at least 2"),
    (["--task", "reversal"], "--task reversal needs at least one RUN_DIR"),
])
@pytest.mark.tools
def test_eval_refuses_bad_input_in_one_line(monkeypatch, capsys, args, words):
    assert eval_py(monkeypatch, *args) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and message.startswith("eval.py: error: ") and words in message


@pytest.mark.tools
def test_eval_refuses_a_non_positive_dimension(monkeypatch, capsys):
    assert eval_py(monkeypatch, "--task", "dynamics", "--dim", "0") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "argument --dim: must be a positive integer, got '0'" in err


def test_a_small_bilinear_run_shows_the_asymmetry():
    """Train loss to about 0, reverse loss stays at log M, W[A, B] far above W[B, A]."""
    task = reversal_task(SymbolicConfig(n_pairs=40, both_share=0.5))
    theta, U, history = train_bilinear(task, dim=256, steps=100, log_every=100)
    log_M = math.log(task.vocab_size)
    assert history[0][1] == pytest.approx(log_M) and history[0][2] == pytest.approx(log_M)
    m, (forward, reverse) = measure((theta, U), task)
    assert m["train_loss"] < 0.05 and m["log_M"] == pytest.approx(log_M)
    assert abs(m["reverse_loss"] - log_M) < 0.05 * log_M
    assert m["w_forward"] > 8 and abs(m["w_reverse"]) < 0.5
    assert m["reverse_acc"] <= 0.1
    assert forward.shape == reverse.shape == (20, 20)


@pytest.mark.needs("01", "03")
def test_a_one_layer_decoder_learns_each_hop_but_neither_reverse_nor_shortcut():
    """tinyrev's own block, 150 steps: B_i ← ? and A_i ⇝ ? no better than a guess among 20,
    A_i ⇝ ? right when B_i is generated first."""
    cfg = SymbolicConfig(n_pairs=20, both_share=0.5)
    task = reversal_task(cfg)
    m, _ = measure(train_decoder(task, n_layers=1, steps=150), task)
    assert m["train_loss"] < 0.05 and m["w_forward"] > 5 and abs(m["w_reverse"]) < 1
    assert m["reverse_acc"] <= 0.2
    chain = chain_task(cfg)
    c = measure_chain(train_decoder(chain, n_layers=1, steps=150), chain)
    assert c["direct_acc"] <= 0.2 and c["with_step_acc"] >= 0.9 and c["chance"] == 1 / 20


@pytest.mark.tools
def test_heatmap_shades_the_diagonal_of_the_trained_block_only():
    text = heatmap(10 * torch.eye(4), torch.zeros(4, 4)).splitlines()
    assert "max 10.0" in text[0] and len(text) == 5
    assert text[1].startswith("@@      ") and text[4][:8].endswith("@@")
    assert all(set(line[8 + 3:]) <= {" "} for line in text[1:])


@pytest.mark.needs("01", "03")
def test_answer_asymmetry_is_zero_for_a_model_that_ignores_the_prompt():
    """A model with all-zero weights gives every answer of one length the same log-prob, so the
    right answer is preferred by exactly 0 nats, both ways."""
    data = make_facts(FactsConfig(n_per_subset=3, n_train_templates=2, n_test_templates=2))
    model = Transformer(ModelConfig(vocab_size=len(data.tokenizer), dim=16, n_layers=1, n_heads=2))
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    r = answer_asymmetry(model, data, get("ntp"))
    assert set(r["per_test"]) == {"N2D", "D2N", "N2D-reverse", "D2N-reverse"}
    assert r["w_forward"] == pytest.approx(0, abs=1e-5) and r["w_reverse"] == pytest.approx(0, abs=1e-5)


@pytest.mark.tools
def test_the_lesson_figure_draws_the_losses_and_the_heat_maps(tmp_path):
    """The lesson's figure command (`eval.py --task dynamics --plot PNG`) on a made-up result."""
    pytest.importorskip("matplotlib", reason="the plot extra: pip install -e '.[plot]'")
    from tinyrev.dynamics.experiment import plot
    block = torch.eye(4)
    r = {"history": [(0, 6.0, 6.0), (50, 0.1, 6.1)], "config": {"dim": 8, "M": 403},
         "blocks": {"bilinear": (block, -block), "decoder": (block, block)}}
    plot(r, tmp_path / "dynamics.png")
    assert (tmp_path / "dynamics.png").stat().st_size > 10_000
