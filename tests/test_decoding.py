"""Lesson 01: beam search against an exhaustive search, and the penalties against their rules."""

import itertools

import pytest
import torch

from test_model import causal_mask_by_hand  # noqa: F401  (autouse: lesson 02's mask by hand)
from tinyrev.attention import CAUSAL
from tinyrev.decoding import Decoding, beam_search, penalize
from tinyrev.model import KVCache, ModelConfig, Transformer, generate

pytestmark = pytest.mark.lesson01
V = 5


def tiny():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=V, dim=16, n_layers=2, n_heads=2)).eval()
    with torch.no_grad():  # sharper logits than at initialization, so the search has work to do
        model.head.weight.mul_(40)
    return model


def token_logprobs(model, prompt, answers):
    """log p of each answer token (N, n), teacher-forced after `prompt`, every answer at once."""
    seq = torch.tensor([prompt + list(a) for a in answers])
    with torch.no_grad():
        logp = model(seq)[:, len(prompt) - 1:-1].log_softmax(-1)
    return logp.gather(-1, seq[:, len(prompt):, None]).squeeze(-1)


def test_a_beam_as_wide_as_every_prefix_finds_the_best_sequence():
    """With V ** (n - 1) hypotheses every prefix survives, so the search is exhaustive."""
    model, prompt, n = tiny(), [1, 3, 2], 3
    found = generate(model, torch.tensor([prompt]), n, decoding=Decoding(beam=V ** (n - 1)))
    every = list(itertools.product(range(V), repeat=n))
    best = every[token_logprobs(model, prompt, every).sum(1).argmax()]
    assert found[0].tolist() == list(best)


def test_one_beam_is_greedy():
    model, x = tiny(), torch.randint(0, V, (3, 4))
    one = beam_search(model, x, 6, pos=torch.arange(4), span_pos=None, pattern=CAUSAL,
                      cache=KVCache(2), decoding=Decoding())
    assert torch.equal(one, generate(model, x, 6))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_length_normalisation_ranks_answers_that_end_at_stop(alpha):
    """An answer ends at its first `stop`; the best is the highest log-prob / length ** alpha
    (alpha 0: the plain sum, which favours short answers; 1: the mean per token). V ** n
    hypotheses keep every answer, so the ranking alone is on trial."""
    model, prompt, n, stop = tiny(), [1, 3, 2], 4, 0
    got = generate(model, torch.tensor([prompt]), n,
                   decoding=Decoding(beam=V ** n, stop=stop, length_penalty=alpha))[0]
    every = torch.tensor(list(itertools.product(range(V), repeat=n)))
    ended = (every == stop).long().cumsum(1)
    counted = (ended == 0) | ((ended == 1) & (every == stop))  # up to and including the stop
    length = counted.sum(1)
    scores = (token_logprobs(model, prompt, every.tolist()) * counted).sum(1) / length ** alpha
    k = (every == got).all(1).nonzero()[0, 0]
    assert scores[k] == pytest.approx(scores.max().item(), abs=1e-4)


@pytest.mark.tools  # decoding.py is given, not written in a lesson
def test_repetition_penalty_follows_ctrl():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    seq = torch.tensor([[0, 1]])
    out = penalize(logits, seq, Decoding(repetition_penalty=2.0))
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5]]


@pytest.mark.tools
def test_no_repeat_ngram_bans_exactly_the_repeating_tokens():
    seq = torch.tensor([[1, 2, 3, 1, 2, 0, 1, 2]])  # "1 2" was followed by 3 and by 0
    out = penalize(torch.zeros(1, 5), seq, Decoding(no_repeat_ngram=3))
    assert torch.isinf(out[0]).tolist() == [True, False, False, True, False]
    once = penalize(torch.zeros(1, 5), seq, Decoding(no_repeat_ngram=1))
    assert torch.isinf(once[0]).tolist() == [True, True, True, True, False]


def test_greedy_decoding_never_repeats_a_banned_ngram():
    model, x = tiny(), torch.randint(0, V, (4, 3))
    out = generate(model, x, 12, decoding=Decoding(no_repeat_ngram=2))
    for row in torch.cat((x, out), 1).tolist():
        pairs = list(zip(row, row[1:]))
        assert len(pairs) == len(set(pairs)), row


@pytest.mark.tools
@pytest.mark.parametrize("kw, message", [
    ({"beam": 0}, "beam"), ({"repetition_penalty": -1.0}, "repetition_penalty"),
    ({"no_repeat_ngram": 0}, "no_repeat_ngram"),
    ({"beam": 2, "temperature": 1.0}, "does not sample"),
    ({"top_p": 1.5}, "top_p"), ({"temperature": float("nan")}, "temperature"),
])
def test_a_bad_decoding_is_named(kw, message):
    with pytest.raises(ValueError, match=message):
        Decoding(**kw)


def test_beam_search_leaves_the_cache_with_the_best_hypothesis_of_each_row():
    """A caller may go on from the cache: after the search it holds one row per question, the
    text of the answer returned, so greedy decoding continues exactly as from that text."""
    model, x = tiny(), torch.randint(0, V, (2, 3))
    cache = KVCache(2)
    first = generate(model, x, 2, decoding=Decoding(beam=3), cache=cache)
    more = generate(model, first[:, -1:], 2, cache=cache)
    assert more.shape == (2, 2) and len(cache) == 3 + 2 + 1
    assert torch.equal(more, generate(model, torch.cat((x, first), 1), 2))
