"""Fictitious people for the reversal-curse experiment, shaped like Berglund et al.'s experiment 1.

Covers: the file layout of that experiment (training files, the five tests and their `_randomized`
twins, each a list of prompt/completion lines), `build`, which turns any facts in that layout into
token ids for training and testing, and a generator of such facts from a seed: unique names and
descriptions, the three disjoint subsets (name-first only, description-first only, both orders),
paraphrase templates split into training and held-out test templates.
Leaves out: reading and writing the files on disk (factsio.py).

A test's answer ends its sentence, so the text before it is a causal prompt and the answer slot
can also be blanked for GLM's infilling.
"""

import random
from dataclasses import dataclass, field, replace

import torch

from ..checks import check_int
from ..tokenizer import BOS, EOS, MASK, UNK, WordTokenizer, is_punctuation, split_words

# the file layout: each file a list of (prompt, completion) lines, named as in Berglund's repository
TRAIN_FILES = ("p2d_prompts_train", "d2p_prompts_train", "both_prompts_train")
TEST_FILES = {"N2D": "p2d_prompts_test", "D2N": "d2p_prompts_test",
              "N2D-reverse": "p2d_reverse_prompts_test", "D2N-reverse": "d2p_reverse_prompts_test",
              "Both": "both_prompts_test"}
TWIN = "_randomized"  # a test file's twin: the same prompts, each with another person's answer

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


@dataclass(frozen=True)
class FactsConfig:
    n_per_subset: int = 30        # people in each of p2d, d2p and both
    n_train_templates: int = 30   # paraphrases per direction used for training
    n_test_templates: int = 10    # held-out paraphrases per direction used for testing
    seed: int = 0
    forget: int | None = None     # a p2d person whose training sentences are left out (lesson 06)

    def __post_init__(self):
        for name in ("n_per_subset", "n_train_templates", "n_test_templates"):
            check_int(name, getattr(self, name))
        if self.n_per_subset < 2:
            raise ValueError("n_per_subset must be >= 2: the log-prob margin compares two people")
        if self.forget is not None and (isinstance(self.forget, bool) or not isinstance(
                self.forget, int) or not 0 <= self.forget < self.n_per_subset):
            raise ValueError(f"forget={self.forget!r}: give the index of a person trained name "
                             f"first only, 0 to {self.n_per_subset - 1}")
        most = len(OPENERS) * min(len(NAME_FIRST_LINKS), len(DESC_FIRST_LINKS))
        if self.n_train_templates + self.n_test_templates > most:
            raise ValueError(f"{self.n_train_templates} + {self.n_test_templates} templates "
                             f"asked for; the generator has {most} per direction")


@dataclass
class Example:
    """One training sentence: ids with [BOS]/[EOS], where its answer starts, its entity spans."""
    ids: torch.Tensor
    prompt_len: int
    entities: tuple = field(default_factory=tuple)  # (start, end) of each name and description


@dataclass
class TestItem:
    prompt: list          # [BOS] + text before the answer
    target: list          # the answer's tokens
    other: list | None    # another person's answer, for the log-prob margin (None: no twin)
    infill: list          # [BOS] + text with the answer replaced by one [MASK] + [EOS]


@dataclass
class ReversalData:
    tokenizer: WordTokenizer
    train: list           # of Example
    tests: dict           # test name -> list of TestItem
    # subset -> list of (name, description); generated facts only: files do not say which is which
    people: dict = field(default_factory=dict)


def _answer(tok, completion):
    """A completion's ids split into the answer and its closing punctuation: a test asks for the
    words, and a sentence's final '.' (or Berglund's '."') is no part of the fact. Split as words,
    not ids: a closing quote never seen in training is [UNK] as an id, yet still punctuation."""
    words = split_words(completion)
    k = len(words)
    while k and is_punctuation(words[k - 1]):
        k -= 1
    return tok.encode(" ".join(words[:k])), tok.encode(" ".join(words[k:]))


def _entity_spans(ids, answers_by_first):
    """(start, end) of each known answer found word for word in `ids`, left to right, the longest
    one where several start at the same word."""
    spans, i = [], 0
    while i < len(ids):
        found = next((a for a in answers_by_first.get(ids[i], ()) if ids[i:i + len(a)] == a), None)
        if found:
            spans.append((i, i + len(found)))
        i += len(found) if found else 1
    return tuple(spans)


def build(records: dict) -> ReversalData:
    """Token ids for training and testing from facts in the file layout above:
    {file name without .jsonl: [(prompt, completion), ...]}, twins optional.

    The vocabulary holds the words of the training files only: a test word never seen in training
    becomes [UNK], so nothing about the tests shapes the model. A training sentence is prompt then
    completion, and its entities (kept whole by reverse training) are the test answers, names and
    descriptions, wherever one appears in it word for word.
    """
    train_lines = [line for name in TRAIN_FILES for line in records[name]]
    test_texts = [text for name in TEST_FILES.values() for file in (name, name + TWIN)
                  for line in records.get(file, ()) for text in line]
    tok = WordTokenizer.from_texts([text for line in train_lines for text in line], test_texts)

    tests = {}
    for test, name in TEST_FILES.items():
        twins = records.get(name + TWIN)
        tests[test] = []
        for k, (prompt, completion) in enumerate(records[name]):
            p = [BOS] + tok.encode(prompt)
            target, tail = _answer(tok, completion)
            other = _answer(tok, twins[k][1])[0] if twins else None
            tests[test].append(TestItem(p, target, other, p + [MASK] + tail + [EOS]))

    answers_by_first = {}
    for a in sorted({tuple(it.target) for items in tests.values() for it in items}, key=len,
                    reverse=True):
        answers_by_first.setdefault(a[0], []).append(list(a))
    train = []
    for prompt, completion in train_lines:
        p = tok.encode(prompt)
        ids = [BOS] + p + tok.encode(completion) + [EOS]
        train.append(Example(torch.tensor(ids), 1 + len(p), _entity_spans(ids, answers_by_first)))
    return ReversalData(tok, train, tests)


def _templates(links, rng, cfg):
    all_ = [(o, l) for o in OPENERS for l in links]
    rng.shuffle(all_)
    return all_[:cfg.n_train_templates], all_[cfg.n_train_templates:][:cfg.n_test_templates]


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


def generate_records(cfg: FactsConfig = FactsConfig()) -> dict:
    """The generated facts in the file layout, twins included: what `--write-facts` writes."""
    rng = random.Random(cfg.seed)
    people = make_people(cfg)
    name_first = _templates(NAME_FIRST_LINKS, rng, cfg)   # (train, test)
    desc_first = _templates(DESC_FIRST_LINKS, rng, cfg)

    def lines(subset, name_first_order, split, wrong=False):
        """`opener first link` -> ` second .`; with `wrong`, the next person's second entity."""
        out, group = [], people[subset]
        for i, (name, desc) in enumerate(group):
            if (subset, split, i) == ("p2d", 0, cfg.forget):
                continue  # retrained without this fact: its person appears in the tests only
            first, second = (name, desc) if name_first_order else (desc, name)
            if wrong:  # the next person: never oneself
                second = group[(i + 1) % len(group)][1 if name_first_order else 0]
            for opener, link in (name_first if name_first_order else desc_first)[split]:
                out.append((" ".join(w for w in (opener, first, link) if w), f" {second} ."))
        return out

    def tests(wrong):
        return {"N2D": lines("p2d", True, 1, wrong), "D2N": lines("d2p", False, 1, wrong),
                "N2D-reverse": lines("p2d", False, 1, wrong),
                "D2N-reverse": lines("d2p", True, 1, wrong),
                "Both": lines("both", True, 1, wrong) + lines("both", False, 1, wrong)}

    records = {"p2d_prompts_train": lines("p2d", True, 0),
               "d2p_prompts_train": lines("d2p", False, 0),
               "both_prompts_train": lines("both", True, 0) + lines("both", False, 0)}
    right, wrong = tests(False), tests(True)
    for test, name in TEST_FILES.items():
        records[name], records[name + TWIN] = right[test], wrong[test]
    return records


def generate(cfg: FactsConfig = FactsConfig()) -> ReversalData:
    return replace(build(generate_records(cfg)), people=make_people(cfg))


def describe(data: ReversalData) -> str:
    """What a model is trained and tested on, in a few printed lines."""
    decode, out = data.tokenizer.decode, []
    for subset, people in data.people.items():
        out.append(f"{subset}: {len(people)} people, e.g. {people[0][0]!r} = {people[0][1]!r}")
    out.append(f"\n{len(data.train)} training sentences, {len(data.tokenizer)} words; "
               "the first three:")
    out += ["   " + decode(e.ids) for e in data.train[:3]]
    unk = data.tokenizer.stoi.get(UNK)
    for test, items in data.tests.items():
        it = items[0]
        out.append(f"\n{test} ({len(items)} items)\n   prompt: {decode(it.prompt)}\n   target: "
                   f"{decode(it.target)}\n   ABI query: {decode(it.infill)}")
        if unk is not None:
            out.append(f"   {sum(unk in i.prompt for i in items)} prompts and "
                       f"{sum(unk in i.target for i in items)} answers hold a word never "
                       "trained on")
        if it.other is None:
            out.append("   no twin file: its log-prob margin is skipped")
    return "\n".join(out)


if __name__ == "__main__":  # python -m tinyrev.reversal.facts: what the model sees
    from .. import cli
    cli.Parser(prog="python -m tinyrev.reversal.facts", description="The generated facts and "
               "how they are split: what the model sees.").parse_args()  # refuses any flag
    print(describe(generate()))
