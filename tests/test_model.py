"""Lesson 01: the decoder's parts against their formulas, causality, and cached generation."""

import pytest
import torch
import torch.nn.functional as F

import tinyrev.attention
from tinyrev.model import (FeedForward, KVCache, ModelConfig, RMSNorm, Transformer, generate,
                           sample_next)
from tinyrev.decoding import Decoding
from tinyrev.rope import apply_rope

pytestmark = pytest.mark.lesson01


@pytest.fixture(autouse=True)
def causal_mask_by_hand(monkeypatch):
    """A query decoded with a cache asks lesson 02's build_mask for its causal row; a lower
    triangle stands in for it, so that these tests grade lesson 01 whether or not 02 is done."""
    def build_mask(pattern, T, *, n_queries=None, device=None):
        assert pattern.name == "causal", pattern
        return torch.ones(T, T, dtype=torch.bool, device=device).tril()[T - (n_queries or T):]
    monkeypatch.setattr(tinyrev.attention, "build_mask", build_mask)


def tiny(**kw):
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=40, dim=32, n_layers=2, n_heads=2, **kw)).eval()


def test_rmsnorm_formula():
    norm = RMSNorm(8, eps=1e-6)
    norm.weight.data = torch.linspace(0.5, 2.0, 8)
    x = torch.randn(3, 5, 8)
    rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) / 8 ** 0.5
    torch.testing.assert_close(norm(x), x / torch.sqrt(rms ** 2 + 1e-6) * norm.weight)


def test_swiglu_formula():
    ffn = FeedForward(8, 12)
    x = torch.randn(4, 8)
    w1, w3 = ffn.w13.weight[:12], ffn.w13.weight[12:]
    expected = (F.silu(x @ w1.T) * (x @ w3.T)) @ ffn.w2.weight.T
    torch.testing.assert_close(ffn(x), expected)


@pytest.mark.tools
def test_llama_hidden_width_rule():
    assert ModelConfig(vocab_size=10, dim=128).hidden_dim == 352  # 8/3 * 128 = 341.3 -> 352


def test_causal_logits_ignore_later_tokens():
    model = tiny()
    x = torch.randint(0, 40, (2, 12))
    y = x.clone()
    y[:, 7:] = torch.randint(0, 40, (2, 5))
    torch.testing.assert_close(model(x)[:, :7], model(y)[:, :7])
    assert not torch.allclose(model(x)[:, 7:], model(y)[:, 7:])


def test_cached_greedy_generation_equals_full_recomputation():
    model = tiny()
    seq = torch.randint(0, 40, (3, 5))
    new = generate(model, seq, 6)
    for _ in range(6):  # greedy by hand: rerun the whole sequence every step
        seq = torch.cat((seq, model(seq)[:, -1].argmax(-1, keepdim=True)), 1)
    assert torch.equal(new, seq[:, 5:])


def test_full_cache_stores_rotated_keys_and_refuses_bico():
    model = tiny()
    cache = KVCache(2)
    x = torch.randint(0, 40, (1, 4))
    model(x, cache=cache)
    k = model.blocks[0].attn.wqkv(model.blocks[0].attn_norm(model.embed(x))).chunk(3, -1)[1]
    k = k.view(1, 4, 2, 16).transpose(1, 2)  # (B, H, T, Dh), as Attention splits it
    torch.testing.assert_close(cache.buffers[0][0][..., :4, :], apply_rope(k, torch.arange(4)))
    with pytest.raises(ValueError, match="'bico' rotates each key when it reads it"):
        model(x, pattern="bico", cache=KVCache(2))


def test_sampling_filters():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert sample_next(logits).item() == 1
    g = torch.Generator().manual_seed(0)
    assert all(sample_next(logits, 1.0, top_k=1, generator=g).item() == 1 for _ in range(20))
    assert all(sample_next(logits, 1.0, top_p=0.5, generator=g).item() == 1 for _ in range(20))
    picks = {sample_next(logits, 1.0, top_k=2, generator=g).item() for _ in range(200)}
    assert picks == {1, 2}
    with pytest.raises(ValueError, match="top_p"):
        sample_next(logits, 1.0, top_p=1.5)


def test_sampling_is_reproducible_with_a_generator():
    model = tiny()
    x = torch.randint(0, 40, (2, 4))
    run = lambda: generate(model, x, 8, decoding=Decoding(temperature=1.0, top_p=0.9),
                           generator=torch.Generator().manual_seed(3))
    assert torch.equal(run(), run())


@pytest.mark.parametrize("kw, message", [
    ({"dim": 30, "n_heads": 4}, "does not split"),
    ({"dim": 12, "n_heads": 4}, "head dimension 3 is odd"),
    ({"n_layers": 0}, "n_layers must be an integer >= 1"),
])
@pytest.mark.tools
def test_bad_config_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(vocab_size=10, **kw)


def test_generated_tokens_train_after_a_clone():
    """generate runs under inference_mode; its tokens, cloned, feed a training step."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=16, dim=16, n_layers=1, n_heads=2))
    new = generate(model, torch.zeros(2, 3, dtype=torch.long), 4)
    assert new.is_inference()
    model(new.clone()).sum().backward()
    assert model.embed.weight.grad is not None
