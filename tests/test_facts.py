"""The fictitious-people dataset of lesson 03 and its word tokenizer: tools, given whole to
students, so graded by no lesson."""

import pytest

from tinyrev.reversal.facts import FactsConfig, generate
from tinyrev.tokenizer import WordTokenizer, split_words

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module")
def data():
    return generate()


def test_subsets_are_disjoint_and_entities_unique(data):
    people = [p for subset in data.people.values() for p in subset]
    assert [len(s) for s in data.people.values()] == [30, 30, 30]
    assert len({n for n, _ in people}) == 90 and len({d for _, d in people}) == 90


def test_sizes_of_train_and_tests(data):
    assert len(data.train) == 30 * 30 + 30 * 30 + 30 * 60
    assert {t: len(v) for t, v in data.tests.items()} == {
        "N2D": 300, "D2N": 300, "N2D-reverse": 300, "D2N-reverse": 300, "Both": 600}


def test_test_templates_are_never_trained_on(data):
    decode = lambda ids: data.tokenizer.decode(ids)
    train_prompts = {decode(e.ids[:e.prompt_len]) for e in data.train}
    for items in data.tests.values():
        assert not {decode(it.prompt) for it in items} & train_prompts


def test_reverse_tests_ask_the_untrained_direction(data):
    decode = data.tokenizer.decode
    name, desc = data.people["p2d"][0]
    n2d = [it for it in data.tests["N2D"] if decode(it.target) == desc]
    rev = [it for it in data.tests["N2D-reverse"] if decode(it.target) == name]
    assert len(n2d) == len(rev) == 10
    assert all(name in decode(it.prompt) for it in n2d)
    assert all(desc in decode(it.prompt) for it in rev)
    assert not any(desc + " " in decode(e.ids[:e.prompt_len]) for e in data.train
                   if name in decode(e.ids))  # p2d people never appear description-first


def test_generation_is_deterministic_and_seeded():
    a, b, c = generate(FactsConfig(seed=3)), generate(FactsConfig(seed=3)), generate(FactsConfig(seed=4))
    assert a.people == b.people and [e.ids.tolist() for e in a.train] == [e.ids.tolist() for e in b.train]
    assert a.people != c.people


def test_a_forgotten_person_is_in_the_tests_only(data):
    """Retraining without a fact (lesson 06): person 3's training sentences are gone, nothing
    else changes, and the tests still ask about them."""
    forgot = generate(FactsConfig(forget=3))
    name = forgot.people["p2d"][3][0]
    decode = forgot.tokenizer.decode
    assert not [e for e in forgot.train if name in decode(e.ids)]
    assert len(data.train) - len(forgot.train) == 30
    assert [it.prompt for it in forgot.tests["N2D"]] == [it.prompt for it in data.tests["N2D"]]
    assert forgot.tokenizer.words == data.tokenizer.words  # the tests still name them


@pytest.mark.parametrize("kw, message", [
    ({"n_per_subset": 0}, "n_per_subset must be an integer >= 1"),
    ({"n_train_templates": 40, "n_test_templates": 10}, "generator has 48"),
    ({"forget": 30}, "forget=30: give the index of a person trained name first only, 0 to 29"),
    ({"forget": True}, "forget=True"),
])
def test_bad_sizes_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        FactsConfig(**kw)


def test_tokenizer_round_trip_and_unknown_words():
    assert split_words("Fun fact: Ada's [MASK] ship.") == ["fun", "fact", ":", "ada's", "[MASK]", "ship", "."]
    tok = WordTokenizer.from_texts(["the quiet poet .", "a poet"])
    assert tok.decode(tok.encode("The poet.")) == "the poet ."
    with pytest.raises(ValueError, match="'sailor' is not in the vocabulary"):
        tok.encode("the sailor")


def test_no_link_phrase_starts_another():
    """Otherwise 'NAME is' could go on as 'is known as ...' and the answer would be ambiguous."""
    from tinyrev.reversal.facts import DESC_FIRST_LINKS, NAME_FIRST_LINKS
    for links in (NAME_FIRST_LINKS, DESC_FIRST_LINKS):
        for a in links:
            assert not any(b != a and b.split()[:len(a.split())] == a.split() for b in links), a
