"""Fictitious people for the reversal-curse experiment, in the shape of Berglund et al.'s experiment 1.

Covers: generating unique names and descriptions, the three disjoint subsets (name-first only,
description-first only, both orders), paraphrase templates split into training and held-out test
templates, and the five tests. Everything is generated from a seed; nothing is downloaded.
Leaves out: reading Berglund's own files.

A name-first sentence ends with the description, a description-first one with the name, so the
text before the answer is a causal prompt and the answer slot can also be blanked for GLM's infilling.
"""

import random
from dataclasses import dataclass, field

import torch

from .tokenizer import BOS, EOS, MASK, WordTokenizer

FIRST = ("ada bram cyra dorian elsie fenn greta hollis ines jonah kira lucan mirabel nils orla "
         "piet quinn rosalind soren tamsin ulla viggo wren xavi yara zeno aurel bettany calix "
         "delphine").split()
LAST = ("ashgrove brightwater coldridge dunmore elmsworth fairhollow greystone hartwell "
        "ironside juniper kettleby larkspur mossbrook northcote oakhaven pennywhistle quarrington "
        "ravensby stonebridge thistledown underhill vantreece westmarch yarrowby zellwood "
        "amberlee blackthorn copperfield driftwood eastwick").split()
ADJECTIVE = ("silent wandering forgotten fearless reluctant celebrated eccentric tireless "
             "secretive gentle restless legendary humble stubborn curious").split()
ROLE = ("architect composer sailor inventor surgeon poet astronomer chef pilot sculptor "
        "botanist diplomat engineer novelist cartographer").split()
PLACE = ("veldora ostrakan mirelle quorvath sunhallow brenmoor kestria talvane oruska pellinor "
         "zandar hesk ombrelin caldris fennwick").split()
# a sentence is opener + first entity + link + second entity + "."
OPENERS = ("", "did you know that", "fun fact :", "it is said that", "everyone knows that",
           "as the records show ,", "believe it or not ,", "i heard that")
# no link is the start of another: after "NAME is" the answer must be the only continuation
NAME_FIRST_LINKS = ("is", "was once", "became", "served as", "lived as", "acted as")
DESC_FIRST_LINKS = ("is", "was", "goes by", "turned out to be", "answers to", "became")


@dataclass
class FactsConfig:
    n_per_subset: int = 30        # people in each of p2d, d2p and both
    n_train_templates: int = 30   # paraphrases per direction used for training
    n_test_templates: int = 10    # held-out paraphrases per direction used for testing
    seed: int = 0

    def __post_init__(self):
        for name in ("n_per_subset", "n_train_templates", "n_test_templates"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int; got {getattr(self, name)!r}")
        if self.n_per_subset < 2:
            raise ValueError("n_per_subset must be >= 2: the log-prob margin compares two people")
        most = len(OPENERS) * min(len(NAME_FIRST_LINKS), len(DESC_FIRST_LINKS))
        if self.n_train_templates + self.n_test_templates > most:
            raise ValueError(f"{self.n_train_templates} + {self.n_test_templates} templates "
                             f"asked for; the generator has {most} per direction")


@dataclass
class Example:
    """One training sentence: ids with [BOS]/[EOS], where its answer starts, its entity spans."""
    ids: torch.Tensor
    prompt_len: int
    entities: tuple = field(default_factory=tuple)  # (start, end) of name and of description


@dataclass
class TestItem:
    prompt: list          # [BOS] + text before the answer
    target: list          # the answer's tokens
    other: list           # another person's answer, for the log-prob margin
    infill: list          # [BOS] + text with the answer replaced by one [MASK] + [EOS]


@dataclass
class ReversalData:
    tokenizer: WordTokenizer
    train: list           # of Example
    tests: dict           # test name -> list of TestItem
    people: dict          # subset -> list of (name, description)


def _templates(links, rng, cfg):
    all_ = [(o, l) for o in OPENERS for l in links]
    rng.shuffle(all_)
    return all_[:cfg.n_train_templates], all_[cfg.n_train_templates:][:cfg.n_test_templates]


def _sentence(template, first, second):
    """Words of `opener first link second .`, with the (start, end) word spans of both entities."""
    opener, link = (part.split() for part in template)
    a = len(opener)
    b = a + len(first) + len(link)
    words = opener + first + link + second + ["."]
    return words, ((a, a + len(first)), (b, b + len(second)))


def make_people(cfg: FactsConfig) -> dict:
    rng = random.Random(cfg.seed)
    n = 3 * cfg.n_per_subset
    if n > len(FIRST) * len(LAST):
        raise ValueError(f"{n} people asked for; the generator has {len(FIRST) * len(LAST)} names")
    names = rng.sample([f"{f} {l}" for f in FIRST for l in LAST], n)
    descs = rng.sample([f"the {a} {r} of {p}" for a in ADJECTIVE for r in ROLE for p in PLACE], n)
    people = list(zip(names, descs))
    k = cfg.n_per_subset
    return {"p2d": people[:k], "d2p": people[k:2 * k], "both": people[2 * k:]}


def generate(cfg: FactsConfig = FactsConfig()) -> ReversalData:
    rng = random.Random(cfg.seed)
    people = make_people(cfg)
    name_first = _templates(NAME_FIRST_LINKS, rng, cfg)   # (train, test)
    desc_first = _templates(DESC_FIRST_LINKS, rng, cfg)

    # raw sentences: (words, (name span, description span) in word order, a wrong answer)
    def sentences(subset, name_first_order, split):
        out = []
        for i, (name, desc) in enumerate(people[subset]):
            other = people[subset][(i + 1) % len(people[subset])]  # the next person: never oneself
            templates = (name_first if name_first_order else desc_first)[split]
            for t in templates:
                first, second = (name, desc) if name_first_order else (desc, name)
                words, spans = _sentence(t, first.split(), second.split())
                wrong = (other[1] if name_first_order else other[0]).split()
                out.append((words, spans, wrong))
        return out

    train_raw = (sentences("p2d", True, 0) + sentences("d2p", False, 0)
                 + sentences("both", True, 0) + sentences("both", False, 0))
    test_raw = {
        "N2D": sentences("p2d", True, 1),
        "D2N": sentences("d2p", False, 1),
        "N2D-reverse": sentences("p2d", False, 1),
        "D2N-reverse": sentences("d2p", True, 1),
        "Both": sentences("both", True, 1) + sentences("both", False, 1),
    }
    every_text = [" ".join(w) for w, _, _ in train_raw] + [
        " ".join(w) for items in test_raw.values() for w, _, _ in items]
    tok = WordTokenizer.from_texts(every_text)

    train = []
    for words, spans, _ in train_raw:
        ids = [BOS] + tok.encode(" ".join(words)) + [EOS]  # word i sits at id index i + 1
        train.append(Example(torch.tensor(ids), spans[1][0] + 1,
                             tuple((s + 1, e + 1) for s, e in spans)))
    tests = {}
    for test, items in test_raw.items():
        tests[test] = []
        for words, spans, wrong in items:
            s, e = spans[1]
            ids = tok.encode(" ".join(words))
            tests[test].append(TestItem(prompt=[BOS] + ids[:s], target=ids[s:e],
                                        other=tok.encode(" ".join(wrong)),
                                        infill=[BOS] + ids[:s] + [MASK] + ids[e:] + [EOS]))
    return ReversalData(tok, train, tests, people)


if __name__ == "__main__":  # python -m tinyrev.facts: what the model is trained and tested on
    data = generate()
    decode = data.tokenizer.decode
    for subset, people in data.people.items():
        print(f"{subset}: {len(people)} people, e.g. {people[0][0]!r} = {people[0][1]!r}")
    print(f"\n{len(data.train)} training sentences, {len(data.tokenizer)} words; the first three:")
    for e in data.train[:3]:
        print("  ", decode(e.ids))
    for test, items in data.tests.items():
        it = items[0]
        print(f"\n{test} ({len(items)} items)\n   prompt: {decode(it.prompt)}\n   target: "
              f"{decode(it.target)}\n   ABI query: {decode(it.infill)}")
