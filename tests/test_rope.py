"""Lesson 01: RoPE against complex numbers, relative positions, and the reverse rotation."""

import pytest
import torch

from tinyrev.rope import apply_rope

pytestmark = pytest.mark.lesson01


def complex_rope(x, pos, base=10000.0, sign=1.0, theta=None):
    """Independent reference: neighbour pairs as complex numbers, times exp(±i * pos * theta)."""
    D = x.shape[-1]
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], D // 2, 2).contiguous())
    theta = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D) if theta is None else \
        theta.double()
    z = z * torch.polar(torch.ones((), dtype=torch.float64), sign * pos.double()[:, None] * theta)
    return torch.view_as_real(z).reshape(x.shape)


def test_given_frequencies_replace_the_bases():
    """A length method (lesson 04) passes its own frequencies; the rotation is the same formula."""
    torch.manual_seed(0)
    x, pos, theta = torch.randn(1, 2, 5, 8), torch.arange(5) * 7, torch.rand(4)
    torch.testing.assert_close(apply_rope(x, pos, theta=theta),
                               complex_rope(x, pos, theta=theta).float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_matches_complex_formula(reverse):
    torch.manual_seed(0)
    x, pos = torch.randn(2, 3, 7, 16), torch.arange(7) * 5
    expected = complex_rope(x, pos, sign=-1.0 if reverse else 1.0).float()
    torch.testing.assert_close(apply_rope(x, pos, reverse=reverse), expected, atol=1e-5, rtol=1e-5)


def test_rotation_keeps_length():
    x = torch.randn(4, 10, 8)
    torch.testing.assert_close(apply_rope(x, torch.arange(10)).norm(dim=-1), x.norm(dim=-1))


def test_score_depends_only_on_offset():
    torch.manual_seed(1)
    q, k = torch.randn(1, 32), torch.randn(1, 32)

    def score(m, n):
        return (apply_rope(q, torch.tensor([m])) * apply_rope(k, torch.tensor([n]))).sum()

    for m, n in [(3, 1), (10, 10), (0, 7)]:
        torch.testing.assert_close(score(m, n), score(m + 13, n + 13), atol=1e-4, rtol=1e-4)
    assert not torch.isclose(score(3, 1), score(3, 2))


def test_reverse_scores_mirror_forward_scores():
    torch.manual_seed(2)
    q, k = torch.randn(1, 32), torch.randn(1, 32)

    def score(m, n, reverse):
        rot = lambda x, p: apply_rope(x, torch.tensor([p]), reverse=reverse)
        return (rot(q, m) * rot(k, n)).sum()

    for m, n in [(2, 9), (9, 2), (0, 5)]:
        torch.testing.assert_close(score(m, n, True), score(n, m, False), atol=1e-4, rtol=1e-4)


def test_batched_positions_equal_per_row_positions():
    x = torch.randn(2, 4, 6, 8)
    pos = torch.tensor([[0, 1, 2, 3, 4, 5], [3, 3, 3, 7, 8, 9]])
    out = apply_rope(x, pos)
    for b in range(2):
        torch.testing.assert_close(out[b], apply_rope(x[b], pos[b]))


@pytest.mark.tools
def test_odd_dimension_is_refused():
    with pytest.raises(ValueError, match="even last dimension; got 7"):
        apply_rope(torch.randn(3, 7), torch.arange(3))
