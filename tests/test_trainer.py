"""Lesson 03: the training loop: schedule, a run that learns, checkpoints, exact resume, NaN stop."""

import pytest
import torch

from tinyrev import objectives
from tinyrev.reversal.facts import FactsConfig, generate
from tinyrev.model import ModelConfig, Transformer
from tinyrev.attention import CAUSAL
from tinyrev.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from tinyrev.trainer import TrainConfig, fit, lr_at, make_optimizer, pick_device, restore

pytestmark = pytest.mark.lesson03

DATA = generate(FactsConfig(n_per_subset=4, n_train_templates=4, n_test_templates=1))


def model():
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=len(DATA.tokenizer), dim=32, n_layers=2, n_heads=2))


class Bigram(torch.nn.Module):
    """Stands in for the decoder (lessons 01 and 02) where only the loop is on trial: logits from
    the current token alone, whatever the pattern. fit keeps its config like the decoder's."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.cfg = ModelConfig(vocab_size=len(DATA.tokenizer), dim=32)
        self.embed = torch.nn.Embedding(self.cfg.vocab_size, 32)
        self.head = torch.nn.Linear(32, self.cfg.vocab_size, bias=False)

    def forward(self, idx, pos, pattern, **_):
        return self.head(self.embed(idx))


def batches(objective="bico", fail_at=None):
    """make_batch for fit(); raises KeyboardInterrupt on call `fail_at`, like a Ctrl-C."""
    calls = {"n": 0}

    def make(gen):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt
        pick = torch.randint(len(DATA.train), (8,), generator=gen).tolist()
        return objectives.get(objective)([DATA.train[i] for i in pick], gen)
    return make


def test_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) == pytest.approx(1e-4) and lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(55, cfg) == pytest.approx(5.5e-4) and lr_at(100, cfg) == pytest.approx(1e-4)


@pytest.mark.needs("01")
def test_a_tiny_run_learns(tmp_path):
    from tinyrev.trainer import loss_of
    m = model()
    cfg = TrainConfig(steps=200, batch_size=16, lr=3e-3, warmup=10, seed=0)
    answers = objectives.prefix(DATA.train, None)  # the loss on answers alone: memorisable
    answers.pattern = CAUSAL
    before = loss_of(m, answers).item()
    fit(m, batches("ntp"), cfg, tmp_path, progress=False)
    after = loss_of(m.eval(), answers).item()
    assert before > 3.0 and after < 0.5, (before, after)


@pytest.mark.tools
def test_checkpoint_round_trip_is_atomic(tmp_path):
    payload = {"model": {"w": torch.arange(3.0)}, "optimizer": {}, "step": 4, "model_config": {},
               "train_config": {"steps": 4}, "rng": torch.Generator().get_state(), "meta": {"task": "x"}}
    save_checkpoint(tmp_path / CHECKPOINT, payload)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temporary file left over
    back = load_checkpoint(tmp_path)
    assert back["step"] == 4 and torch.equal(back["model"]["w"], torch.arange(3.0))


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    cfg = TrainConfig(steps=7, batch_size=8, warmup=2, ckpt_every=2, seed=1)
    whole = fit(Bigram(), batches(), cfg, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(Bigram(), batches(fail_at=6), cfg, tmp_path / "cut", progress=False)
    ckpt = load_checkpoint(tmp_path / "cut")
    assert ckpt["step"] == 4  # the last checkpoint before the interruption
    resumed = fit(Bigram(), batches(), cfg, tmp_path / "cut", resume=ckpt, progress=False)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_curve_scores_every_checkpoint_and_a_resumed_run_continues_it(tmp_path):
    """evaluate(model) runs at each checkpoint, with the model in eval mode, and training goes on
    in train mode; a resumed run keeps the points scored before the interruption."""
    seen = []

    def evaluate(m):
        seen.append(m.training)
        m.eval()  # as scoring does; fit must put the model back in training mode
        return {"weight_sum": m.head.weight.sum().item()}

    cfg = TrainConfig(steps=7, batch_size=8, warmup=2, ckpt_every=2, seed=1)
    with pytest.raises(KeyboardInterrupt):
        fit(Bigram(), batches(fail_at=6), cfg, tmp_path, progress=False, evaluate=evaluate)
    ckpt = load_checkpoint(tmp_path)
    assert [p["step"] for p in ckpt["curve"]] == [2, 4]
    m = fit(Bigram(), batches(), cfg, tmp_path, resume=ckpt, progress=False, evaluate=evaluate)
    curve = load_checkpoint(tmp_path)["curve"]
    assert [p["step"] for p in curve] == [2, 4, 6, 7] and curve[:2] == ckpt["curve"]
    assert curve[-1]["weight_sum"] == pytest.approx(m.head.weight.sum().item())
    assert seen == [True] * 4 and m.training


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    m = Bigram()
    make = batches("ntp")

    def poisoned(gen):
        if load_step(tmp_path) == 2:
            m.head.weight.data.fill_(float("nan"))
        return make(gen)

    cfg = TrainConfig(steps=6, batch_size=8, warmup=1, ckpt_every=2)
    with pytest.raises(FloatingPointError, match=r"diverged at step 2 \(loss nan.*\(step 2\) is kept"):
        fit(m, poisoned, cfg, tmp_path, progress=False)
    assert torch.isfinite(load_checkpoint(tmp_path)["model"]["head.weight"]).all()


def load_step(path):
    return load_checkpoint(path)["step"] if (path / CHECKPOINT).exists() else None


@pytest.mark.tools
def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(ValueError, match="no tinyrev checkpoint at"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / CHECKPOINT).write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable tinyrev checkpoint"):
        load_checkpoint(tmp_path)
    torch.save({"model": {}}, tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match="is not a tinyrev checkpoint .*lacks"):
        load_checkpoint(tmp_path)


@pytest.mark.tools
def test_device_choice():
    assert pick_device().type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            pick_device("cuda")


@pytest.mark.parametrize("kw, message", [({"steps": 0}, "steps must be an integer >= 1; got 0"),
                                         ({"lr": -1.0}, "lr must be a finite number > 0; got -1.0"),
                                         ({"lr": float("inf")}, "lr must be a finite")])
@pytest.mark.tools
def test_bad_train_config_is_named(kw, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kw)


@pytest.mark.tools
@pytest.mark.parametrize("key, bad", [("rng", torch.zeros(3, dtype=torch.uint8)),
                                      ("optimizer", {"state": {}, "param_groups": []})])
def test_a_foreign_optimizer_or_generator_state_is_named_not_torchs_internals(tmp_path, key, bad):
    cfg = TrainConfig(steps=2, batch_size=8, warmup=1, ckpt_every=2, seed=1)
    fit(Bigram(), batches(), cfg, tmp_path, progress=False)
    ckpt = {**load_checkpoint(tmp_path), key: bad}
    model = Bigram()
    with pytest.raises(ValueError, match="optimizer or random-generator state cannot be restored"):
        restore(ckpt, model, make_optimizer(model, cfg), torch.Generator())
