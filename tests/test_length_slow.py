"""Length generalization, small and quick (slow, about a minute and a half on 2 cores):
`python -m pytest -m slow`.

Trains causally at L = 32 for 500 steps (the default run: L = 64, 2000 steps), then reads 32
texts of 16 L under the four modes. Each mode lacking a part of Λ must fail in its own way, and Λ
must not. Measured here: ratio to the in-length bucket [L/2, L) at [8L, 16L) vanilla 1.35, window
1.42 (1.38 already at [L, 2L)), Λ without the distance limit 1.21, Λ at most 1.035 anywhere past L;
Λ's last layer put 0.45 of its attention on the first 4 tokens (an even spread over its 36 keys:
0.11), vanilla's at most 0.09. The passkey is not yet retrieved after 500 steps; the full-scale
numbers, passkey included, are in lesson 04.
"""

import pytest

from tinyrev.length.experiment import evaluate_length, load_length_run, train_length
from tinyrev.trainer import TrainConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory, request):
    out = tmp_path_factory.mktemp("slow") / "length"
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(
        "training the length model, 500 steps at L = 32, then reading 32 texts of 16 L...")
    train_length(out, train_len=32, train_cfg=TrainConfig(steps=500, batch_size=32), device="cpu",
                 progress=False)
    model, L, text, _ = load_length_run(out)
    return evaluate_length(model, L, text, n_texts=32, passkey_lengths=[32], depths=[1.0],
                           n_keys=1)


def ratios(result, mode):
    nll = result["nll"][mode]
    return [x / nll[1] for x in nll[2:]]  # every bucket past L, against [L/2, L)


def test_vanilla_degrades_past_four_times_the_training_length(result):
    assert min(ratios(result, "vanilla")[2:]) > 1.10, result["nll"]["vanilla"]


def test_lambda_stays_near_the_in_length_nll(result):
    assert max(ratios(result, "lambda")) < 1.07, result["nll"]["lambda"]


def test_a_window_without_the_first_tokens_loses_the_regime(result):
    assert max(ratios(result, "window")) > 1.15, result["nll"]["window"]


def test_without_the_distance_limit_the_first_tokens_are_seen_from_too_far(result):
    assert ratios(result, "lambda_no_limit")[-1] > ratios(result, "lambda")[-1] + 0.05


def test_lambda_attends_to_the_first_tokens_more_than_vanilla(result):
    even = result["n_global"] / (result["n_global"] + result["n_local"])  # Λ spread evenly
    lam, vanilla = result["first_token_attention"]["lambda"], result["first_token_attention"]["vanilla"]
    assert max(lam) > 1.5 * even and max(lam) > 3 * max(vanilla), (lam, vanilla)
