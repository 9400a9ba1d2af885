"""Lesson 02: the five masks against hand-written ones, and attention against slow references."""

import math

import pytest
import torch

import tinyrev.attention
from test_rope import complex_rope
from tinyrev.attention import Pattern, as_pattern, attention, build_mask
from tinyrev.checks import check_int

pytestmark = pytest.mark.lesson02


def apply_rope(x, pos, base=10000.0, reverse=False, theta=None):
    """Lesson 01's rotation the slow way (test_rope's complex numbers). It stands in for
    tinyrev.rope.apply_rope here, so that these tests grade lesson 02 whether or not 01 is done."""
    return complex_rope(x, pos, base, -1.0 if reverse else 1.0, theta).to(x.dtype)


@pytest.fixture(autouse=True)
def rope_by_reference(monkeypatch):
    monkeypatch.setattr(tinyrev.attention, "apply_rope", apply_rope)


def grid(rows):
    return torch.tensor([[c == "x" for c in r] for r in rows])


HAND_WRITTEN = {
    ("causal", ()): ["x....", "xx...", "xxx..", "xxxx.", "xxxxx"],
    ("prefix", (("prefix_len", 2),)): ["xx...", "xx...", "xxx..", "xxxx.", "xxxxx"],
    ("abi", (("part_a_len", 3),)): ["xxx..", "xxx..", "xxx..", "xxxx.", "xxxxx"],
    ("bico", ()): ["xxxxx"] * 5,
    ("bico", (("prefix_len", 2),)): ["xx...", "xx...", "xxx..", "xxxx.", "xxxxx"],
    ("lambda", (("n_global", 1), ("n_local", 2))): ["x....", "xx...", "xxx..", "x.xx.", "x..xx"],
}


@pytest.mark.parametrize("pattern, options", HAND_WRITTEN)
def test_mask_matches_hand_written(pattern, options):
    expected = grid(HAND_WRITTEN[pattern, options])
    assert torch.equal(build_mask(pattern, 5, **dict(options)), expected)


@pytest.mark.parametrize("pattern, options", HAND_WRITTEN)
def test_last_rows_alone_match_the_full_mask(pattern, options):
    # decoding asks for the last query's row only; it must be that row of the full mask
    full = build_mask(pattern, 5, **dict(options))
    for n in (1, 3):
        assert torch.equal(build_mask(pattern, 5, n_queries=n, **dict(options)), full[-n:])


def test_per_sequence_prefix_lengths_give_one_mask_each():
    masks = build_mask("prefix", 4, prefix_len=torch.tensor([1, 3]))
    assert masks.shape == (2, 4, 4)
    assert torch.equal(masks[0], build_mask("causal", 4))
    assert torch.equal(masks[1], build_mask("prefix", 4, prefix_len=3))


@pytest.mark.parametrize("pattern, options, message", [
    ("prefix", {"prefix_len": 9}, "outside \\[0, 5\\]"),
    ("prefix", {}, "needs `prefix_len`"),
    ("lambda", {"n_global": 1, "n_local": 0}, "n_local.*>= 1; got 0"),
    ("lambda", {"n_global": -1, "n_local": 2}, "n_global.*>= 0; got -1"),
    ("sideways", {}, "unknown attention pattern 'sideways'"),
    ("causal", {"n_queries": 6}, "n_queries must be an int in \\[1, 5\\].*got 6"),
    ("causal", {"n_local": 4}, "n_local=4 is no option of pattern 'causal'; it takes scaling"),
    ("abi", {"prefix_len": 2}, "prefix_len=2 is no option of pattern 'abi'; it takes part_a_len"),
    ("prefix", {"prefix_len": torch.tensor([1.5])}, "`prefix_len` must be an int >= 0 or a 1-D"),
    ("prefix", {"prefix_len": True}, "`prefix_len` must be an integer >= 0; got True"),
])
@pytest.mark.tools
def test_bad_options_are_named(pattern, options, message):
    with pytest.raises(ValueError, match=message):
        build_mask(pattern, 5, **options)


@pytest.mark.tools
def test_a_pattern_is_made_once_and_passed_as_it_is():
    """The course's form (a name with keywords) and the value the model passes down agree, and a
    Pattern given with more options is refused rather than half used."""
    p = Pattern("lambda", n_global=1, n_local=3)
    assert torch.equal(build_mask(p, 6), build_mask("lambda", 6, n_global=1, n_local=3))
    assert as_pattern(p) is p and as_pattern().name == "causal"
    with pytest.raises(ValueError, match="given beside a Pattern"):
        as_pattern(p, n_local=4)


@pytest.mark.tools
@pytest.mark.parametrize("value", [0, -1, True, 1.0, "3"])
def test_check_int_names_the_value_and_the_rule(value):
    with pytest.raises(ValueError, match=f"steps must be an integer >= 1; got {value!r}"):
        check_int("steps", value)


def reference(q, k, v, score, allowed):
    """Slow attention: an explicit score function of (i, j), masked softmax, weighted sum."""
    T = q.shape[-2]
    out = torch.zeros_like(q)
    for i in range(T):
        s = torch.stack([score(i, j) if allowed(i, j) else torch.full(q.shape[:-2], -math.inf)
                         for j in range(T)], -1)
        out[..., i, :] = torch.einsum("bht,bhtd->bhd", torch.softmax(s, -1), v)
    return out


def rotated_dot(q, k, m, n, reverse=False, qm=None, kn=None):
    """<R(m) q_i, R(n) k_j> for every batch and head, with positions chosen by the caller."""
    rq = apply_rope(q, torch.tensor([m]), reverse=reverse)
    rk = apply_rope(k, torch.tensor([n]), reverse=reverse)
    return (rq * rk).sum(-1).squeeze(-1) / math.sqrt(q.shape[-1])


@pytest.fixture
def qkv():
    torch.manual_seed(0)
    return [torch.randn(2, 3, 7, 8) for _ in range(3)]


def test_causal_and_prefix_match_reference(qkv):
    q, k, v = qkv
    pos = torch.arange(7)
    dot = lambda i, j: rotated_dot(q[..., i:i + 1, :], k[..., j:j + 1, :], i, j)
    torch.testing.assert_close(attention(q, k, v, pos, "causal"),
                               reference(q, k, v, dot, lambda i, j: j <= i), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attention(q, k, v, pos, "prefix", prefix_len=3),
                               reference(q, k, v, dot, lambda i, j: j <= i or j < 3),
                               atol=1e-5, rtol=1e-4)


def test_bico_matches_reference(qkv):
    """Below and on the diagonal forward RoPE at (i, j); above it, forward RoPE at (j, i)."""
    q, k, v = qkv

    def dot(i, j):
        m, n = (i, j) if j <= i else (j, i)
        return rotated_dot(q[..., i:i + 1, :], k[..., j:j + 1, :], m, n)

    torch.testing.assert_close(attention(q, k, v, torch.arange(7), "bico"),
                               reference(q, k, v, dot, lambda i, j: True), atol=1e-5, rtol=1e-4)


def test_bico_with_a_prefix_reads_the_question_both_ways_and_the_answer_causally(qkv):
    """A question of 4 tokens read both ways, then 3 answer tokens: inside the prefix BICO's
    reference restricted to the prefix's keys, after it forward RoPE on every key behind."""
    q, k, v = qkv

    def dot(i, j):
        m, n = (i, j) if j <= i else (j, i)
        return rotated_dot(q[..., i:i + 1, :], k[..., j:j + 1, :], m, n)

    torch.testing.assert_close(attention(q, k, v, torch.arange(7), "bico", prefix_len=4),
                               reference(q, k, v, dot, lambda i, j: j <= i or j < 4),
                               atol=1e-5, rtol=1e-4)


def test_bico_sees_mirrored_distances():
    """Same content everywhere: a key d ahead must get exactly the weight of a key d behind."""
    torch.manual_seed(1)
    q = torch.randn(1, 1, 1, 8).expand(1, 1, 9, 8)
    k = torch.randn(1, 1, 1, 8).expand(1, 1, 9, 8)
    v = torch.eye(9)[None, None]  # output row i is then the attention weights of query i
    weights = attention(q, k, v, torch.arange(9), "bico")[0, 0]
    for d in range(1, 5):
        torch.testing.assert_close(weights[4, 4 + d], weights[4, 4 - d])


@pytest.mark.tools  # the figure of lesson 02, drawn from attention itself
def test_the_offsets_read_out_of_attention_are_plain_ropes_and_bicos():
    from tinyrev.attention import Pattern
    from tinyrev.tools.figures import offsets_seen
    i, j = torch.arange(8)[:, None], torch.arange(8)[None, :]
    assert torch.equal(offsets_seen(Pattern("prefix", prefix_len=8)), j - i)
    assert torch.equal(offsets_seen("bico"), -(j - i).abs())


def test_lambda_matches_reference_with_distance_limit(qkv):
    q, k, v = qkv
    n_global, n_local = 2, 3

    def dot(i, j):
        if i - j < n_local:
            return rotated_dot(q[..., i:i + 1, :], k[..., j:j + 1, :], i, j)
        return rotated_dot(q[..., i:i + 1, :], k[..., j:j + 1, :], n_local, 0)  # capped distance

    allowed = lambda i, j: j <= i and (i - j < n_local or j < n_global)
    out = attention(q, k, v, torch.arange(7), "lambda", n_global=n_global, n_local=n_local)
    torch.testing.assert_close(out, reference(q, k, v, dot, allowed), atol=1e-5, rtol=1e-4)


def test_lambda_equals_causal_within_the_window(qkv):
    q, k, v = qkv
    pos = torch.arange(7)
    torch.testing.assert_close(attention(q, k, v, pos, "lambda", n_global=2, n_local=7),
                               attention(q, k, v, pos, "causal"))


def test_lambda_ignores_keys_outside_both_branches(qkv):
    q, k, v = qkv
    pos, opts = torch.arange(7), {"n_global": 1, "n_local": 2}
    k2, v2 = k.clone(), v.clone()
    k2[..., 2, :] += 5.0  # key 2: not global, and outside the window of query 6
    v2[..., 2, :] -= 5.0
    a = attention(q, k, v, pos, "lambda", **opts)[..., 6, :]
    b = attention(q, k2, v2, pos, "lambda", **opts)[..., 6, :]
    torch.testing.assert_close(a, b)


def test_key_mask_hides_keys_and_empty_rows_are_zero(qkv):
    q, k, v = qkv
    pos = torch.arange(7)
    key_mask = torch.ones(2, 7, dtype=torch.bool)
    key_mask[:, 3] = False
    k2 = k.clone()
    k2[..., 3, :] = 100.0
    for pattern in ("causal", "bico"):
        torch.testing.assert_close(attention(q, k, v, pos, pattern, key_mask=key_mask),
                                   attention(q, k2, v, pos, pattern, key_mask=key_mask))
    q.requires_grad_(True)
    nothing = torch.zeros(2, 7, dtype=torch.bool)
    out = attention(q, k, v, pos, "causal", key_mask=nothing)
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_cached_queries_match_full_attention(qkv):
    """Decoding with a cache: the last T_q queries against all keys equal the full result's rows
    (one query, a decoding step, goes without a mask under causal, prefix and ABI)."""
    q, k, v = qkv
    pos = torch.arange(7)
    for pattern, opts in [("causal", {}), ("prefix", {"prefix_len": 3}),
                          ("abi", {"part_a_len": 4}), ("lambda", {"n_global": 1, "n_local": 3})]:
        full = attention(q, k, v, pos, pattern, **opts)
        for start in (5, 6):
            torch.testing.assert_close(attention(q[..., start:, :], k, v, pos, pattern, **opts),
                                       full[..., start:, :])


@pytest.mark.tools
def test_the_bico_row_hides_the_placeholder_and_mirrors_distances():
    from tinyrev.tools.masks import bico_row
    rows = {line[:16].strip(): line[16:].split() for line in bico_row(6, 2, 4).splitlines()[1:]}
    assert rows["visible"] == ["■"] * 4 + ["·", "■"]
    assert rows["offset j - i"] == ["-2", "-1", "0", "+1", "·", "+3"]
    assert rows["RoPE distance"] == ["2", "1", "0", "1", "·", "3"]
    assert rows["rotation"] == ["fwd"] * 3 + ["rev", "·", "rev"]
