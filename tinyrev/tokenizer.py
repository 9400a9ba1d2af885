"""A word-level tokenizer: lower-cased words and punctuation marks, one id each.

Covers: splitting text, building a vocabulary from a corpus, encoding and decoding, the special
tokens every objective uses. Leaves out: subwords (BPE). A model trained from scratch on a few
thousand sentences has no use for them, and whole words keep every printed example readable.
"""

import re

SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[MASK]", "[START]", "[END]")
PAD, BOS, EOS, MASK, START, END = range(len(SPECIALS))
_WORD = re.compile(r"\[[A-Z]+\]|[\w']+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """'Daphne, the Author.' -> ['daphne', ',', 'the', 'author', '.']"""
    return [w if w in SPECIALS else w.lower() for w in _WORD.findall(text)]


class WordTokenizer:
    def __init__(self, words):
        """`words`: the vocabulary in id order after the specials (as stored in checkpoints)."""
        self.itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def from_texts(cls, texts) -> "WordTokenizer":
        return cls(sorted({w for t in texts for w in split_words(t)}))

    @property
    def words(self) -> list[str]:
        return self.itos[len(SPECIALS):]

    def __len__(self):
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        ids = []
        for w in split_words(text):
            if w not in self.stoi:
                raise ValueError(f"the word {w!r} is not in the vocabulary of {len(self)} words "
                                 "(the words of the training data)")
            ids.append(self.stoi[w])
        return ids

    def decode(self, ids) -> str:
        return " ".join(self.itos[int(i)] for i in ids)
