"""Lesson 03: each objective's batch: targets, masks, positions, and what stays hidden."""

import pytest
import torch

from tinyrev import objectives as O
from tinyrev.reversal.facts import FactsConfig, generate
from tinyrev.model import ModelConfig, Transformer
from tinyrev.tokenizer import END, MASK, PAD, START

pytestmark = pytest.mark.lesson03


@pytest.fixture(scope="module")
def data():
    return generate(FactsConfig(n_per_subset=4, n_train_templates=3, n_test_templates=2))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_ntp_targets_are_the_next_tokens(data):
    ex = data.train[:4]
    b = O.ntp(ex, gen())
    assert b.pattern.name == "causal" and b.pos.tolist() == list(range(b.idx.shape[1]))
    for r, e in enumerate(ex):
        n = len(e.ids) - 1
        assert torch.equal(b.idx[r, :n], e.ids[:-1]) and torch.equal(b.targets[r, :n], e.ids[1:])
        assert (b.targets[r, n:] == O.IGNORE).all()


def test_prefix_scores_only_the_answer(data):
    ex = data.train[:4]
    b = O.prefix(ex, gen())
    for r, e in enumerate(ex):
        scored = (b.targets[r] != O.IGNORE).nonzero().flatten()
        assert scored[0] == e.prompt_len - 1  # the prompt's last token predicts the answer's first
        assert torch.equal(b.targets[r, scored], e.ids[e.prompt_len:])
    assert torch.equal(b.pattern.prefix_len, torch.tensor([e.prompt_len for e in ex]))


@pytest.mark.parametrize("n", [1, 5, 17, 40])
def test_spans_do_not_overlap_and_cover_the_goal(n):
    g = gen(n)
    for _ in range(50):
        spans = O.sample_spans(n, g)
        assert spans == sorted(spans) and all(length >= 1 for _, length in spans)
        covered = [i for s, length in spans for i in range(s, s + length)]
        assert len(covered) == len(set(covered)) and 0 <= min(covered) and max(covered) < n
        assert len(covered) >= max(1, round(0.15 * n))


def test_abi_part_b_fills_the_blanks_of_part_a(data):
    ex = data.train[:6]
    b = O.abi(ex, gen())
    for r, e in enumerate(ex):
        a_len = int(b.pattern.part_a_len[r])
        idx, tgt, pos, span = (t[r].tolist() for t in (b.idx, b.targets, b.pos, b.span_pos))
        a = idx[:a_len]
        assert all(t == O.IGNORE for t in tgt[:a_len]) and set(span[:a_len]) == {0}
        assert pos[:a_len] == list(range(a_len))
        fills, i = {}, a_len
        while i < len(idx) and idx[i] == START:  # walk the spans of Part B
            j = i + 1
            while tgt[j - 1] != END:
                j += 1
            assert set(pos[i:j]) == {pos[i]} and a[pos[i]] == MASK
            assert span[i:j] == list(range(1, j - i + 1))
            assert tgt[i:j] == idx[i + 1:j] + [END]
            fills[pos[i]] = idx[i + 1:j]
            i = j
        assert all(t == PAD for t in idx[i:])
        rebuilt = [w for k, t in enumerate(a) for w in (fills[k] if t == MASK else [t])]
        assert rebuilt == e.ids.tolist()


def bico_batch(data, seed=0):
    g = gen(seed)
    while True:
        b = O.bico(data.train[:8], g)
        if b.pattern.name == "bico":
            return b


def test_bico_mixes_denoising_and_ntp_steps(data):
    g = gen(0)
    kinds = [O.bico(data.train[:4], g).pattern.name for _ in range(200)]
    assert 70 < kinds.count("bico") < 130 and set(kinds) == {"bico", "causal"}


def test_bico_targets_are_the_masked_tokens_one_step_ahead(data):
    b = bico_batch(data)
    ex = O._pad(e.ids for e in data.train[:8])
    masked = b.idx == MASK
    assert masked.any(1).all()  # every row has something to predict
    has_target = b.targets != O.IGNORE
    assert torch.equal(has_target[:, :-1], masked[:, 1:])
    assert torch.equal(b.targets[:, :-1][has_target[:, :-1]], ex[:, 1:][masked[:, 1:]])


@pytest.mark.needs("01", "02")
def test_bico_never_lets_a_masked_token_be_seen(data):
    """Swap what sits under the placeholders: no prediction made from a visible query may move."""
    b = bico_batch(data)
    assert not b.key_mask[b.idx == MASK].any()
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=len(data.tokenizer), dim=32, n_layers=2, n_heads=2))
    swapped = b.idx.clone()
    swapped[b.idx == MASK] = 7  # any ordinary word: the key mask must hide it all the same
    out = lambda idx: model(idx, b.pos, "bico", key_mask=b.key_mask)
    predictors = (b.targets != O.IGNORE) & (b.idx != MASK)
    torch.testing.assert_close(out(b.idx)[predictors], out(swapped)[predictors])


def test_entity_masking_hides_every_word_of_one_entity_and_no_special(data):
    """At entity_prob = 1 every denoising row has all of one entity masked (and at least one of
    its two entities whole); [BOS], [EOS] and padding are never masked."""
    g = gen(3)
    for _ in range(20):
        b = O.bico(data.train[:8], g, entity_prob=1.0)
        if b.pattern.name != "bico":
            continue
        masked = b.idx == MASK
        for r, e in enumerate(data.train[:8]):
            assert any(masked[r, s:t].all() for s, t in e.entities), (r, e.entities)
        ex = O._pad(e.ids for e in data.train[:8])
        assert not masked[ex <= END].any()


def test_entity_prob_zero_builds_exactly_published_bico(data):
    """The variant is a parameter of the same function: at 0 it draws no extra randomness."""
    g1, g2 = gen(4), gen(4)
    for _ in range(10):
        a, b = O.bico(data.train[:8], g1), O.bico(data.train[:8], g2, entity_prob=0.0)
        assert torch.equal(a.idx, b.idx) and torch.equal(a.targets, b.targets)
        assert a.pattern.name == b.pattern.name


def test_entity_placeholders_stay_invisible_to_every_query(data):
    g = gen(2)
    b = next(x for x in (O.get("bico-entity")(data.train[:8], g) for _ in range(20))
             if x.pattern.name == "bico")
    assert not b.key_mask[b.idx == MASK].any()


@pytest.mark.tools
def test_an_entity_probability_outside_0_1_is_named(data):
    with pytest.raises(ValueError, match="entity_prob=1.5 is outside \\[0, 1\\]"):
        O.bico(data.train[:2], gen(0), entity_prob=1.5)


def test_reverse_keeps_entities_whole(data):
    e = data.train[0]
    words = data.tokenizer.decode(O.reverse_entities(e)).split()
    name, desc = (data.tokenizer.decode(e.ids[s:t]).split() for s, t in e.entities)
    assert words[0] == "[BOS]" and words[-1] == "[EOS]" and words[1] == "."
    text = " ".join(words)
    assert " ".join(name) in text and " ".join(desc) in text
    assert text.index(" ".join(desc)) < text.index(" ".join(name))  # order of entities flipped


def test_same_generator_same_batches(data):
    for name in O.OBJECTIVES:
        a, b = O.get(name)(data.train[:8], gen(5)), O.get(name)(data.train[:8], gen(5))
        assert torch.equal(a.idx, b.idx) and torch.equal(a.targets, b.targets)


@pytest.mark.tools
def test_unknown_objective_is_named():
    with pytest.raises(ValueError, match="unknown objective 'nope'; choose one of ntp, prefix"):
        O.get("nope")


@pytest.mark.tools
def test_an_objective_with_an_unknown_query_form_is_refused():
    with pytest.raises(ValueError, match="form 'sideways' is not one of"):
        O.Objective("x", O.ntp, "sideways")


def table_rows(text):
    """{label: cells} of one `tools.batches.layout` table."""
    return {line[:12].strip(): line[12:].split() for line in text.splitlines()[1:]}


def test_the_batch_layouts_show_what_each_objective_trains_on(data):
    from tinyrev.tools.batches import layout
    example = next(e for e in data.train if e.entities)
    itos = data.tokenizer.itos
    abi = table_rows(layout("abi", example, itos))
    blank = abi["input"].index("[MASK]")
    start = abi["input"].index("[START]")  # Part B: at the blank's position, offsets 1, 2, ...
    assert set(abi["position"][start:]) == {abi["position"][blank]}
    assert abi["span offset"][start:] == [str(k) for k in range(1, len(abi["input"]) - start + 1)]
    bico = table_rows(layout("bico", example, itos))
    hidden = [t for t, k in enumerate(bico["visible key"]) if k == "·"]
    assert hidden and all(bico["input"][t] == "[MASK]" for t in hidden)
    scored = [t + 1 for t, x in enumerate(bico["target"]) if x != "·"]
    assert scored == hidden  # output t is scored on the word hidden at t + 1, and only there
