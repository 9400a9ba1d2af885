"""Length generalization in a quarter of the training (slow, 2–4 minutes on 2 cores): `pytest -m slow`.

Trains causally at L = 64 for 500 steps (the default run takes 2000), then reads 64 texts of 16 L:
vanilla attention must degrade past 4 L and Λ must stay close to the last in-length bucket
[L/2, L). Measured here: vanilla 1.07 and 1.10 times that bucket in [4L, 8L) and [8L, 16L), Λ at
most 1.011. The full-scale numbers are in the README and lesson 04.
"""

import pytest

from tinyrev.length.experiment import evaluate_length, load_length_run, train_length
from tinyrev.trainer import TrainConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory, request):
    out = tmp_path_factory.mktemp("slow") / "length"
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(
        "training the length model, 500 steps at L = 64, then reading 64 texts of 16 L...")
    train_length(out, train_len=64, train_cfg=TrainConfig(steps=500, batch_size=32), device="cpu",
                 progress=False)
    model, L, text = load_length_run(out)
    return evaluate_length(model, L, text, n_texts=64, passkey_lengths=[32], depths=[1.0],
                           n_keys=1)


def test_vanilla_degrades_past_four_times_the_training_length(result):
    vanilla = result["nll"]["vanilla"]
    assert min(vanilla[4:]) / vanilla[1] > 1.05, vanilla


def test_lambda_stays_near_the_in_length_nll(result):
    lam, vanilla = result["nll"]["lambda"], result["nll"]["vanilla"]
    assert max(lam[2:]) / lam[1] < 1.05, lam
    assert lam[-1] < vanilla[-1] - 0.1, (lam, vanilla)
