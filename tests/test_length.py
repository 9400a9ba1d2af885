"""Lesson 04: length generalization: the long-text task, Λ's distance limit, the bounded cache,
the evaluation modes, and the command line's answers to bad input."""

import json
import math

import pytest
import torch

from tinyrev.length import longtext
from tinyrev.attention import attention, lambda_scores
from tinyrev.length.experiment import (buckets, evaluate_length,
                                       first_token_attention, load_length_run,
                                       nll_by_position, plot_curve, train_length)
from tinyrev.attention import Pattern
from tinyrev.length.methods import EVERY_KEY, modes
from tinyrev.rope import apply_rope
from tinyrev.model import KVCache, ModelConfig, Transformer, generate
from tinyrev.trainer import TrainConfig
from test_cli import assert_one_line_error, run, trained

pytestmark = pytest.mark.lesson04
TEXT = longtext.LongTextConfig()


def tiny(vocab=TEXT.vocab_size):
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2)).eval()


def texts(n, length, seed=0):
    return longtext.sample_texts(TEXT, n, length, torch.Generator().manual_seed(seed))


def own_tables(x):
    """Each document's successor table, chosen by its regime token (position 1)."""
    return longtext.successors(TEXT)[x[:, 1] - longtext.REGIME]


def test_every_token_is_a_successor_or_a_copy_from_the_last_24():
    """The information needed for each next token lies within max_copy_distance tokens, plus the
    regime token at position 1."""
    x = texts(16, 400)
    assert (x[:, 0] == longtext.BOS).all()
    assert ((x[:, 1] >= longtext.REGIME) & (x[:, 1] < longtext.REGIME + TEXT.n_regimes)).all()
    for row, table in zip(x.tolist(), own_tables(x)):
        for t in range(3, len(row)):
            near = row[max(2, t - TEXT.max_copy_distance):t]
            assert row[t] in table[row[t - 1] - longtext.FIRST_WORD].tolist() or row[t] in near


def test_the_text_is_stationary():
    """The share of copied tokens (those that are not a successor of the previous token) is the
    same in the reference bucket [L/2, L) as far past it: the in-length NLL is a fair reference."""
    x = texts(256, 1025, seed=1)
    words = x[:, 2:]
    allowed = own_tables(x)[torch.arange(len(x))[:, None], words[:, :-1] - longtext.FIRST_WORD]
    follows = (allowed == words[:, 1:, None]).any(-1)
    near, far = 1 - follows[:, 32:64].float().mean(), 1 - follows[:, 512:1024].float().mean()
    assert 0.05 < near < 0.5 and abs(near - far) < 0.02, (near, far)


@pytest.mark.tools  # a property of the language's tables, which no student writes
def test_the_regime_token_is_needed_to_predict_the_next_word():
    """Bayes-optimal NLL of a word drawn from the successor table: knowing the previous word and
    the regime it is log N_SUCCESSORS; knowing the previous word only, the next word comes from a
    mixture of the regimes' tables, about log n_regimes nats worse. A reader that has lost the
    regime token pays that price on every such word until it works the regime out again."""
    table = longtext.successors(TEXT)                      # (regimes, words, successors)
    R, W, S = table.shape
    p = torch.zeros(R, W, TEXT.vocab_size).scatter_(2, table, 1.0 / S)  # p(next | word, regime)
    mixture = p.mean(0, keepdim=True)                      # p(next | word), regimes equally likely
    known = math.log(S)
    unknown = -(p * mixture.clamp_min(1e-30).log()).sum(-1).mean().item()
    assert unknown - known > 0.9 * math.log(R), (known, unknown)


def test_texts_and_keys_are_deterministic_per_seed():
    assert torch.equal(texts(4, 50, seed=3), texts(4, 50, seed=3))
    assert not torch.equal(texts(4, 50, seed=3), texts(4, 50, seed=4))


@pytest.mark.parametrize("depth, at", [(0.0, 2), (0.5, 2 + 25), (1.0, 64 - 5 - 7)])
def test_passkey_prompt_hides_the_key_at_its_depth(depth, at):
    """Depth 0: right after the header (BOS, regime); 1: right before the question [KEY]. The
    5-digit answer completes the 64 tokens: the prompt has 59."""
    prompts, keys = longtext.passkey_prompts(TEXT, 3, 64, depth, torch.Generator().manual_seed(0))
    assert prompts.shape == (3, 59) and (prompts[:, -1] == longtext.KEY).all()
    assert (prompts[:, at] == longtext.KEY).all() and (prompts[:, :-1] == longtext.KEY).sum() == 3
    assert torch.equal(prompts[:, at + 1:at + 6], keys)
    assert all(len(set(key)) == 5 for key in keys.tolist())  # distinct digits


def test_training_batch_asks_for_the_key_it_hid():
    """A passkey_share of the documents hold the key block twice: hidden after the header, then
    asked for somewhere later, whole, inside the document."""
    x = longtext.training_batch(TEXT, 256, 65, torch.Generator().manual_seed(0))
    at = [(row == longtext.KEY).nonzero()[:, 0].tolist() for row in x]
    asked = [a for a in at if a]
    assert abs(len(asked) / 256 - TEXT.passkey_share) < 0.1
    assert len({q for _, q in asked}) > 20  # the question stands anywhere, not at one place
    for row, places in zip(x, at):
        if places:
            hidden, question = places
            assert longtext.HEADER <= hidden and hidden + 6 <= question <= 65 - 6
            assert torch.equal(row[hidden:hidden + 6], row[question:question + 6])


@pytest.mark.parametrize("bad, message", [({"depth": 1.5}, "depth must lie in"),
                                           ({"length": 14}, "integer >= 15; got 14")])
@pytest.mark.tools
def test_passkey_bad_input(bad, message):
    args = {"length": 64, "depth": 0.5, **bad}
    with pytest.raises(ValueError, match=message):
        longtext.passkey_prompts(TEXT, 1, args["length"], args["depth"], torch.Generator())


@pytest.mark.parametrize("bad, message", [({"n_regimes": 5}, r"n_regimes must lie in \[1, 4\]; got 5"),
                                           ({"n_regimes": 0}, r"n_regimes .* got 0"),
                                           ({"key_digits": 11}, r"key_digits .* \[1, 10\].* got 11"),
                                           ({"passkey_share": 1.5}, r"passkey_share .* got 1.5")])
@pytest.mark.tools
def test_the_language_refuses_bad_options(bad, message):
    with pytest.raises(ValueError, match=message):
        longtext.LongTextConfig(**bad)


@pytest.mark.needs("01", "02")
def test_a_global_keys_score_is_the_same_from_every_query_past_the_window():
    """With the distance limit every far query sees global keys at distance n_local; plain RoPE
    scores change with the query's position as the distance grows."""
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, 16).expand(1, 1, 40, 16)  # the same query vector at every position
    k = torch.randn(1, 1, 40, 16)
    pos = torch.arange(40)
    limited = lambda_scores(q, k, pos, pos, n_global=2, n_local=8)[0, 0, :, :2]
    torch.testing.assert_close(limited[9:], limited[9:10].expand(31, 2))  # i - 1 >= 8 from i = 9
    plain = apply_rope(q, pos) @ apply_rope(k, pos).transpose(-2, -1) / 4
    torch.testing.assert_close(limited[:8], plain[0, 0, :8, :2])  # inside the window: plain RoPE
    assert plain[0, 0, 9:, 0].std() > 0.1


@pytest.mark.parametrize("limit", [True, False])
@pytest.mark.needs("01", "02")
def test_bounded_cache_gives_full_lambda_logits_step_by_step(limit):
    model = tiny()
    x = texts(2, 40)
    opts = {"n_global": 2, "n_local": 6, "distance_limit": limit}
    cache = KVCache(2, n_global=2, n_local=6)
    model(x[:, :3], None, "lambda", cache=cache, **opts)
    sizes = []
    for t in range(3, 40):
        step = model(x[:, t:t + 1], None, "lambda", cache=cache, **opts)[:, -1]
        full = model(x[:, :t + 1], None, "lambda", **opts)[:, -1]
        torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-4)
        sizes.append(cache.nbytes())
    assert len(cache) == 2 + 6 + 1 and len(set(sizes[10:])) == 1  # constant memory


@pytest.mark.needs("01", "02")
@pytest.mark.parametrize("opts", [{"n_global": 1, "n_local": 4},
                                  {"n_global": EVERY_KEY, "n_local": 4}])  # Λ, then ReRoPE
def test_generate_under_lambda_equals_recomputing_the_full_sequence(opts):
    model = tiny()
    x = texts(2, 20)
    new = generate(model, x, 12, pattern="lambda", **opts)
    seq = x
    for _ in range(12):
        seq = torch.cat((seq, model(seq, None, "lambda", **opts)[:, -1].argmax(-1, keepdim=True)), 1)
    assert torch.equal(new, seq[:, 20:])


def test_a_bounded_cache_refuses_other_patterns_and_sizes():
    model = tiny()
    cache = KVCache(2, n_global=1, n_local=4)
    with pytest.raises(ValueError, match="bounded cache"):
        model(texts(1, 5), None, "causal", cache=cache)
    with pytest.raises(ValueError, match="bounded cache"):
        model(texts(1, 5), None, "lambda", cache=cache, n_global=1, n_local=8)
    with pytest.raises(ValueError, match="n_local.*>= 1; got 0"):
        KVCache(2, n_global=1, n_local=0)


class KnowsTheText(torch.nn.Module):
    """Stands in for a decoder (no code of lessons 01 and 02): logit `confidence` on the token that
    really comes next in `texts`, 0 on every other, whatever it is asked."""

    def __init__(self, texts, confidence):
        super().__init__()
        self.next, self.confidence = texts[:, 1:], confidence
        self.unused = torch.nn.Parameter(torch.zeros(()))  # the device is read off a parameter

    def forward(self, idx, pos, pattern, **_):
        return self.confidence * torch.nn.functional.one_hot(self.next, TEXT.vocab_size).float()


@pytest.mark.parametrize("confidence", [0.0, 5.0])
def test_nll_by_position_scores_each_next_token(confidence):
    """With logit c on the right token and 0 on the V - 1 others the NLL is log(V - 1 + e^c) - c
    at every position: log V when the model knows nothing."""
    x = texts(4, 30)
    curve = nll_by_position(KnowsTheText(x, confidence), x, Pattern("causal"))
    V = TEXT.vocab_size
    expected = torch.tensor(V - 1 + math.exp(confidence)).log() - confidence
    assert curve.shape == (29,)
    torch.testing.assert_close(curve, expected.expand(29))


@pytest.mark.needs("01", "02")
def test_first_token_attention_sums_the_softmax_over_exactly_the_first_keys():
    """Against softmax weights written out by hand from each layer's own queries and keys."""
    model, x, L, n = tiny(), texts(2, 40), 8, 3
    inputs = []
    hooks = [b.attn.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
             for b in model.blocks]
    model(x)
    for hook in hooks:
        hook.remove()
    pos = torch.arange(40)
    expected = []
    for block, h in zip(model.blocks, inputs):
        q, k, _ = block.attn.wqkv(h).view(2, 40, 3, 2, 16).permute(2, 0, 3, 1, 4)
        scores = apply_rope(q, pos) @ apply_rope(k, pos).transpose(-2, -1) / 4
        weights = scores.masked_fill(pos[None, :] > pos[:, None], float("-inf")).softmax(-1)
        expected.append(weights[:, :, 2 * L:, :n].sum(-1).mean().item())
    got = first_token_attention(model, x, Pattern("causal"), n, L)
    assert got == pytest.approx(expected, abs=1e-5)
    assert first_token_attention(model, x, Pattern("causal"), 40, L) == pytest.approx([1.0] * 2)
    window = Pattern("lambda", n_global=0, n_local=L)
    assert first_token_attention(model, x, window, n, L) == [0.0, 0.0]


@pytest.mark.needs("01", "02")
def test_every_mode_equals_vanilla_inside_the_window():
    """A text no longer than L and each method's window is read identically by every mode: the
    fixed scalings at s = 1 (at s > 1 they change even a short text, as their papers say), the
    dynamic ones at any setting."""
    model, x = tiny(), texts(3, 17)
    vanilla = nll_by_position(model, x, Pattern("causal"))
    for name, pattern in modes(16, n_global=2, read_len=64, window=16, scale=1.0).items():
        torch.testing.assert_close(nll_by_position(model, x, pattern), vanilla, msg=name)
    shortened = modes(16, n_global=2, read_len=64)  # s = 4, Self-Extend's window W = 8
    for name in ("pi", "ntk", "self_extend"):
        assert not torch.equal(nll_by_position(model, x, shortened[name]), vanilla), name


@pytest.mark.needs("01", "02")
def test_rerope_clips_every_distance_at_the_window_and_keeps_every_key():
    """ReRoPE (Su 2023), written out pair by pair: key j is scored at distance i - j inside the
    window w and at exactly w beyond it, and every key j <= i stays visible."""
    from test_attention import reference, rotated_dot
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 9, 8) for _ in range(3))
    w = 3
    dot = lambda i, j: rotated_dot(q[..., i:i + 1, :], k[..., j:j + 1, :], min(i - j, w), 0)
    out = attention(q, k, v, torch.arange(9), Pattern("lambda", n_global=EVERY_KEY, n_local=w))
    torch.testing.assert_close(out, reference(q, k, v, dot, lambda i, j: j <= i), atol=1e-5,
                               rtol=1e-4)


@pytest.mark.needs("01", "02")
def test_evaluation_has_the_published_shape():
    r = evaluate_length(tiny(), 8, TEXT, n_texts=2, passkey_lengths=[16, 20], depths=[0, 1],
                        n_keys=2)
    assert r["buckets"] == ["[0,4)", "[4,8)", "[8,16)", "[16,32)", "[32,64)", "[64,128)"]
    assert [(a, b) for a, b in buckets(8)][-1] == (64, 128)
    methods = {"rerope", "pi", "ntk", "dynamic_ntk", "yarn", "self_extend", "streaming_llm"}
    assert set(r["nll"]) == {"vanilla", "lambda", "lambda_no_limit", "window", *methods}
    assert all(len(v) == 6 for v in r["nll"].values())
    assert r["passkey"]["lengths"] == [16, 20] and len(r["passkey"]["lambda"]) == 2
    assert all(0 <= a <= 1 for a in r["passkey"]["vanilla"])
    assert set(r["passkey_by_depth"]) == {"vanilla", "lambda", *methods}
    assert (r["scale"], r["self_extend_window"], r["self_extend_group"]) == (16, 4, 31)
    for name in r["passkey_by_depth"]:  # one cell per (length, depth), as passkey_by_depth
        assert [len(row) for row in r["passkey_digits"][name]] == [2, 2]
        assert all(d >= e for ds, es in zip(r["passkey_digits"][name],
                                            r["passkey_by_depth"][name]) for d, e in zip(ds, es))
    assert {k: len(v) for k, v in r["first_token_attention"].items()} == dict.fromkeys(r["nll"], 2)
    json.dumps(r)


@pytest.mark.tools
def test_the_figure_is_drawn(tmp_path):
    """The lesson's figure command (`eval.py --task length RUN --plot PNG`) on a made-up result."""
    pytest.importorskip("matplotlib", reason="the plot extra: pip install -e '.[plot]'")
    r = {"train_len": 8, "curve": {"vanilla": [2.0, 2.5], "lambda": [2.0, 2.1]},
         "passkey": {"lengths": [8, 16], "depths": [0.0, 1.0]},
         "passkey_by_depth": {"vanilla": [[1.0, 1.0], [0.0, 0.5]], "lambda": [[1.0, 1.0], [0, 1]]}}
    plot_curve(r, tmp_path / "length.png")
    assert (tmp_path / "length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.needs("01", "03")
def test_a_length_run_records_its_task_and_is_never_overwritten(tmp_path):
    cfg = TrainConfig(steps=4, batch_size=4, warmup=2)
    small = longtext.LongTextConfig(vocab_size=64)
    train_length(tmp_path / "a", train_len=16, train_cfg=cfg, text_cfg=small, progress=False)
    model, L, text, _ = load_length_run(tmp_path / "a")
    assert L == 16 and text == small and model.cfg.vocab_size == 64
    with pytest.raises(ValueError, match="already holds a trained run"):
        train_length(tmp_path / "a", train_len=16, train_cfg=cfg, text_cfg=small, progress=False)


@pytest.fixture(scope="module")
def length_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "length"
    code, _, err = run("train.py", "--task", "length", "--steps", "2", "--batch-size", "2",
                       "--out", str(out), "--quiet")
    trained(code, err)
    return out


@pytest.mark.parametrize("flags, words", [
    (["--n-local", "0"], ["n_local", ">= 1", "got 0"]),
    (["--n-global", "-1"], ["n_global", ">= 0", "got -1"]),
    (["--depths", "1.5"], ["depth", "[0, 1]", "1.5"]),
    (["--passkey-lengths", "0"], ["length", "got 0"]),
    (["--passkey-lengths", "100000000"], ["32 passkey prompts of 100000000 tokens", "--keys"]),
    (["--scale", "0"], ["scale s", "> 0", "got 0.0"]),
    (["--scale", "inf"], ["scale s", "finite", "got inf"]),
    (["--group", "0"], ["group size G", ">= 1", "got 0"]),
    (["--window", "1024"], ["window W=1024", "shorter than the text read (1024 tokens)"]),
    (["--modes", "lambda", "yarm"], ["unknown length mode(s) yarm", "yarn"]),
])
@pytest.mark.tools
def test_eval_length_bad_input(length_run, flags, words):
    assert_one_line_error(*run("eval.py", "--task", "length", str(length_run), *flags)[::2], *words)


@pytest.mark.tools
def test_eval_refuses_a_run_of_the_other_task(length_run):
    assert_one_line_error(*run("eval.py", str(length_run))[::2], "'length' run", "--task length")


@pytest.mark.parametrize("flags, words", [(["--length", "0"], ["--length", "'0'"]),
                                          (["--length", "abc"], ["--length", "'abc'"]),
                                          (["--objective", "bico"], ["--objective"])])
@pytest.mark.tools
def test_train_length_bad_input(flags, words):
    assert_one_line_error(*run("train.py", "--task", "length", *flags)[::2], *words)
