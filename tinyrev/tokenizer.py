"""A word-level tokenizer: lower-cased words and punctuation marks, one id each.

Covers: splitting text, building a vocabulary from a corpus, encoding and decoding, the special
tokens every objective uses (never read from text: `check_plain`), and [UNK] for words a
vocabulary has never seen. Leaves out: subwords (BPE). A model trained from scratch on a few
thousand sentences has no use for them, and whole words keep every printed example readable.
"""

import re

SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[MASK]", "[START]", "[END]")
PAD, BOS, EOS, MASK, START, END = range(len(SPECIALS))
# [UNK] is not among SPECIALS: a vocabulary that needs it carries it after its words, so that
# data without unknown words keeps every id (and every result) it had before [UNK] existed
UNK = "[UNK]"
# an apostrophe belongs to a word only inside it ("world's"); quoting marks are tokens of their own
_WORD = re.compile(r"\[[A-Z]+\]|\w+(?:'\w+)*|[^\w\s]")


def split_words(text: str) -> list[str]:
    """'Daphne, the Author.' -> ['daphne', ',', 'the', 'author', '.']"""
    return [w if w in SPECIALS or w == UNK else w.lower() for w in _WORD.findall(text)]


def check_plain(text: str, allow=()):
    """Refuse control tokens typed as text: [BOS], [MASK], [UNK]... are placed by the code (the
    objectives, the tokenizer), never read from a prompt or a facts file, unless `allow` names
    one (an infilling prompt holds the [MASK] it asks about)."""
    for w in split_words(text):
        if (w in SPECIALS or w == UNK) and w not in allow:
            allowed = f"; here only {', '.join(allow)} may be written" if allow else ""
            raise ValueError(f"{text!r} holds {w}, a control token ({', '.join(SPECIALS)}, "
                             f"{UNK}): the code places those, text may not{allowed}")


def is_punctuation(word: str) -> bool:
    return re.search(r"\w", word) is None


class WordTokenizer:
    def __init__(self, words):
        """`words`: the vocabulary in id order after the specials (as stored in checkpoints)."""
        self.itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def from_texts(cls, texts, unknown=()) -> "WordTokenizer":
        """The words of `texts`, sorted; [UNK] after them if any of the `unknown` texts needs it."""
        words = sorted({w for t in texts for w in split_words(t)})
        known = set(words)
        needs_unk = any(w not in known for t in unknown for w in split_words(t))
        return cls(words + [UNK] * needs_unk)

    @property
    def words(self) -> list[str]:
        return self.itos[len(SPECIALS):]

    def __len__(self):
        return len(self.itos)

    def encode(self, text: str, allow=()) -> list[int]:
        """Ids of the words of `text`. A word outside the vocabulary becomes [UNK] where the
        vocabulary has it, and is an error where it does not; a control token is an error
        unless `allow` names it (`check_plain`)."""
        check_plain(text, allow)
        unk = self.stoi.get(UNK)
        ids = []
        for w in split_words(text):
            i = self.stoi.get(w, unk)
            if i is None:
                raise ValueError(f"the word {w!r} is not in the vocabulary of {len(self)} words "
                                 "(the words of the training data)")
            ids.append(i)
        return ids

    def decode(self, ids) -> str:
        return " ".join(self.itos[int(i)] for i in ids)
