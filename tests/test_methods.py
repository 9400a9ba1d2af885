"""Lesson 04: the training-free length methods of methods.py against formulas written out here:
positions, frequencies and distances computed by hand, not by the code under test."""

import math

import pytest
import torch

from tinyrev.attention import Pattern, attention
from tinyrev.length.experiment import nll_by_position, reading_curve
from tinyrev.length.methods import (EVERY_KEY, NTK, YaRN, CachePositions, Interpolation,
                                    SelfExtend, modes)
from tinyrev.model import generate
from tinyrev.rope import rope_frequencies
from test_attention import reference
from test_length import texts, tiny
from test_rope import complex_rope

pytestmark = pytest.mark.lesson04
D = 8


def dot(q, k, i, j, m, n, theta=None):
    """q_i rotated to position m against k_j rotated to position n, as an attention score."""
    rq = complex_rope(q[..., i:i + 1, :], torch.tensor([m]), theta=theta)
    rk = complex_rope(k[..., j:j + 1, :], torch.tensor([n]), theta=theta)
    return ((rq * rk).sum(-1).squeeze(-1) / math.sqrt(q.shape[-1])).float()


@pytest.fixture
def qkv():
    torch.manual_seed(0)
    return [torch.randn(1, 2, 10, D) for _ in range(3)]


def causal(i, j):
    return j <= i


@pytest.mark.needs("01")
def test_position_interpolation_is_rope_at_scaled_positions(qkv):
    q, k, v = qkv
    s = 2.5
    out = attention(q, k, v, torch.arange(10), Pattern(scaling=Interpolation(4, s)))
    expected = reference(q, k, v, lambda i, j: dot(q, k, i, j, i / s, j / s), causal)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.needs("01")
def test_ntk_is_rope_with_a_larger_base():
    """b -> b * s^(D / (D - 2)), the pair frequencies written out in plain Python."""
    s, b = 16.0, 10000.0
    by_hand = [(b * s ** (D / (D - 2))) ** (-2 * i / D) for i in range(D // 2)]
    got = NTK(64, s).theta(D, b, 1024, torch.device("cpu"))
    torch.testing.assert_close(got, torch.tensor(by_hand), rtol=1e-6, atol=0)
    plain = rope_frequencies(D, b, torch.device("cpu"))
    assert got[0] == plain[0] and got[-1] == pytest.approx(plain[-1].item() / s, rel=1e-6)


@pytest.mark.needs("01")
def test_yarn_ramp_and_temperature_by_hand():
    """L = 64, D = 8, base 10^4: the pairs turn 10.19, 1.019, 0.102, 0.010 times in L tokens, so
    with alpha = 1, beta = 32 only pair 0 keeps part of its frequency (gamma = 9.19 / 31), pair 1
    a sliver (0.019 / 31), and pairs 2 and 3 are interpolated fully."""
    L, s = 64, 4.0
    yarn = YaRN(L, s)
    for i, got in enumerate(yarn.theta(D, 1e4, 256, torch.device("cpu")).tolist()):
        theta = 1e4 ** (-2 * i / D)
        turns = L * theta / (2 * math.pi)
        gamma = min(1.0, max(0.0, (turns - 1) / 31))
        assert got == pytest.approx((1 - gamma) * theta / s + gamma * theta, rel=1e-6)
    assert yarn.logit_scale(256) == pytest.approx((0.1 * math.log(4) + 1) ** 2)


@pytest.mark.needs("01")
def test_yarn_scores_are_rope_at_its_frequencies_times_its_temperature(qkv):
    q, k, v = qkv
    yarn = YaRN(4)  # dynamic: 10 keys read at L = 4, so s = 2.5
    theta = yarn.theta(D, 1e4, 10, torch.device("cpu"))
    t = (0.1 * math.log(2.5) + 1) ** 2
    out = attention(q, k, v, torch.arange(10), Pattern(scaling=yarn))
    expected = reference(q, k, v, lambda i, j: t * dot(q, k, i, j, i, j, theta), causal)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.needs("01")
@pytest.mark.parametrize("dynamic", [NTK(10), YaRN(10)])
def test_dynamic_methods_are_vanilla_inside_the_training_length(qkv, dynamic):
    q, k, v = qkv  # 10 keys, L = 10: s = max(1, 10 / 10) = 1
    pos = torch.arange(10)
    torch.testing.assert_close(attention(q, k, v, pos, Pattern(scaling=dynamic)),
                               attention(q, k, v, pos, Pattern()), atol=1e-6, rtol=1e-5)
    # past L the scale follows the length read: 10 keys at L = 4 is the fixed s = 2.5
    fixed = NTK(4, 2.5) if isinstance(dynamic, NTK) else YaRN(4, 2.5)
    grown = type(dynamic)(4)
    torch.testing.assert_close(attention(q, k, v, pos, Pattern(scaling=grown)),
                               attention(q, k, v, pos, Pattern(scaling=fixed)))


@pytest.mark.needs("01", "02")
def test_self_extend_distance_map_by_hand(qkv):
    """W = 3, G = 2: exact distances below 3, beyond it i // 2 - j // 2 + 3 - 1."""
    distance = [[0],
                [1, 0],
                [2, 1, 0],
                [3, 2, 1, 0],
                [4, 4, 2, 1, 0],
                [4, 4, 3, 2, 1, 0],
                [5, 5, 4, 4, 2, 1, 0],
                [5, 5, 4, 4, 3, 2, 1, 0],
                [6, 6, 5, 5, 4, 4, 2, 1, 0],
                [6, 6, 5, 5, 4, 4, 3, 2, 1, 0]]
    q, k, v = qkv
    pattern = Pattern("lambda", n_global=EVERY_KEY, n_local=3, far=SelfExtend(2))
    out = attention(q, k, v, torch.arange(10), pattern)
    expected = reference(q, k, v, lambda i, j: dot(q, k, i, j, distance[i][j], 0), causal)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.needs("01", "02")
def test_streaming_llm_reads_positions_inside_its_cache(qkv):
    """2 sinks and a window of 4: once a query has more keys than its cache holds (2 + 4), the
    cache holds the sinks at 0 and 1 and the window at 2 .. 5, the query last; every score is
    RoPE at those cache positions."""
    q, k, v = qkv
    sinks, window = 2, 4

    def kept(i):
        return [j for j in range(i + 1) if j < sinks or i - j < window]

    def score(i, j):
        slot = kept(i).index(j)
        return dot(q, k, i, j, len(kept(i)) - 1, slot)

    pattern = Pattern("lambda", n_global=sinks, n_local=window, far=CachePositions(sinks))
    out = attention(q, k, v, torch.arange(10), pattern)
    expected = reference(q, k, v, score, lambda i, j: j in kept(i))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.needs("01", "02")
@pytest.mark.parametrize("name", ["self_extend", "streaming_llm", "dynamic_ntk", "yarn"])
def test_decoding_with_a_cache_equals_recomputing_the_whole_text(name):
    """Each new token from the cache (StreamingLLM's bounded one keeps only its sinks and window)
    is the one recomputing the whole text picks."""
    pattern = modes(8, n_global=2, read_len=40)[name]
    model, x = tiny(), texts(2, 20)
    new = generate(model, x, 12, pattern=pattern)
    seq = x
    for _ in range(12):
        seq = torch.cat((seq, model(seq, None, pattern)[:, -1].argmax(-1, keepdim=True)), 1)
    assert torch.equal(new, seq[:, 20:])


@pytest.mark.needs("01")
def test_a_dynamic_method_is_scored_at_the_length_read_so_far():
    """reading_curve: block k of L tokens scored as the text cut at (k + 1) L, at s = k + 1."""
    model, x, L = tiny(), texts(2, 25), 8
    curve = reading_curve(model, x, Pattern(scaling=NTK(L)), L)
    assert curve.shape == (24,)
    torch.testing.assert_close(curve[:L], nll_by_position(model, x[:, :L + 1], Pattern()))
    torch.testing.assert_close(curve[2 * L:], nll_by_position(
        model, x, Pattern(scaling=NTK(L, 3.0)))[2 * L:])


@pytest.mark.tools
@pytest.mark.parametrize("make, words", [
    (lambda: Interpolation(64, 0.0), "s must be a finite number > 0"),
    (lambda: NTK(64, float("nan")), "got nan"),
    (lambda: SelfExtend(0), "group size G must be an integer >= 1; got 0"),
    (lambda: modes(64, n_global=4, read_len=64, window=64), "window W=64 must be shorter"),
    (lambda: Pattern("lambda", n_local=4, distance_limit=False, far=SelfExtend(2)), "far-key"),
    (lambda: Pattern("prefix", prefix_len=1, scaling=NTK(4)), "scaling=.* no option"),
])
def test_bad_settings_are_refused_with_the_value(make, words):
    with pytest.raises(ValueError, match=words):
        make()
