"""Training objectives: each turns a list of examples into one model call and its targets, and
says how a model it trained is asked a question.

Covers: NTP, prefix LM, GLM's autoregressive blank infilling (ABI), BICO as published and with
whole entities masked (bico-entity), and reverse training,
each an `Objective`: its batches, and its query form (a causal prompt, the prompt as a prefix,
a blank to infill, or the prompt read both ways), which decoding and scoring both use.
Leaves out: the model and the loop; the loss is the same cross-entropy for every objective, taken
where `targets` is not IGNORE. Targets are aligned with inputs: output i is scored on targets[i].

Every objective draws its randomness from the `torch.Generator` it is handed, so a run with the
same seed builds the same batches, and a resumed run continues the same sequence.
"""

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

import torch
from torch.nn.utils.rnn import pad_sequence

from .attention import CAUSAL, Pattern
from .tokenizer import BOS, END, EOS, MASK, PAD, START

IGNORE = -100  # cross_entropy's ignore_index
SPAN_POSITIONS = 64  # ABI's learned span offsets: more than any sentence here is long
FORMS = ("causal", "prefix", "infill", "bidirectional")  # how a trained model is asked


@dataclass
class Batch:
    """Everything one forward pass needs: model(idx, pos, pattern, key_mask=, span_pos=)."""
    idx: torch.Tensor                 # (B, T) input tokens
    targets: torch.Tensor             # (B, T) token to predict at each position, or IGNORE
    pos: torch.Tensor                 # (T,) or (B, T) RoPE positions
    pattern: Pattern = CAUSAL
    key_mask: torch.Tensor | None = None
    span_pos: torch.Tensor | None = None

    def to(self, device):
        move = lambda x: x.to(device) if torch.is_tensor(x) else x
        return Batch(move(self.idx), move(self.targets), move(self.pos), self.pattern.to(device),
                     move(self.key_mask), move(self.span_pos))


def _pad(seqs, value=PAD):
    return pad_sequence(list(seqs), batch_first=True, padding_value=value)


def ntp(examples, gen) -> Batch:
    """Next-token prediction: causal mask, every next token is a target."""
    # BEGIN SOLUTION lesson03: inputs, next-token targets (padding ignored), positions
    seqs = _pad(e.ids for e in examples)
    idx, targets = seqs[:, :-1], seqs[:, 1:]
    return Batch(idx, targets.masked_fill(targets == PAD, IGNORE), torch.arange(idx.shape[1]))
    # END SOLUTION


def prefix(examples, gen) -> Batch:
    """Prefix LM: the prompt attends both ways within itself; loss only on what follows it."""
    # BEGIN SOLUTION lesson03: the NTP batch scored only after each prompt, under the prefix mask
    b = ntp(examples, gen)
    P = torch.tensor([e.prompt_len for e in examples])
    # output i predicts token i + 1, so the first scored output is the prefix's last token
    scored = torch.arange(b.idx.shape[1])[None, :] >= P[:, None] - 1
    return replace(b, targets=b.targets.masked_fill(~scored, IGNORE),
                   pattern=Pattern("prefix", prefix_len=P))
    # END SOLUTION


def sample_spans(n: int, gen, ratio: float = 0.15, mean: float = 3.0):
    """GLM's span sampling: Poisson(mean) lengths until `ratio` of n tokens is covered,
    placed uniformly at random without overlap. Returns sorted (start, length) pairs."""
    # BEGIN SOLUTION lesson03: Poisson span lengths up to the goal, placed at random without overlap
    goal, lengths = max(1, round(ratio * n)), []
    while sum(lengths) < goal:
        want = int(torch.poisson(torch.tensor(mean), generator=gen).clamp(min=1))
        lengths.append(min(want, n - sum(lengths)))
    k, free = len(lengths), n - sum(lengths)
    # stars and bars: pick which k of the (free + k) slots hold spans, the rest hold free tokens
    slots = torch.randperm(free + k, generator=gen)[:k].sort().values.tolist()
    return [(s - i + sum(lengths[:i]), lengths[i]) for i, s in enumerate(slots)]
    # END SOLUTION


def abi(examples, gen) -> Batch:
    """GLM's autoregressive blank infilling.

    Part A: the sentence with each sampled span replaced by one [MASK]; bidirectional.
    Part B: the spans in random order, each as [START] span -> span [END]; loss only here.
    Positions (GLM's 2-D scheme adapted to RoPE): the first position is the index in Part A,
    every Part B token taking its [MASK]'s index, and goes to RoPE; the second is the offset
    inside the span (0 in Part A, 1, 2, ... in Part B) and goes to a learned embedding. So RoPE
    tells a span token where its blank is, and the embedding tells it how far into the span it is.
    """
    # BEGIN SOLUTION lesson03: Part A with a [MASK] per span, then Part B, two positions each
    rows = []
    for e in examples:
        ids = e.ids.tolist()
        body = ids[1:-1]  # [BOS] and [EOS] are never blanked
        a, mask_at, prev = ids[:1], [], 0
        spans = sample_spans(len(body), gen)
        for s, length in spans:
            a += body[prev:s]
            mask_at.append(len(a))
            a.append(MASK)
            prev = s + length
        a += body[prev:] + ids[-1:]
        idx, tgt, pos, span = a[:], [IGNORE] * len(a), list(range(len(a))), [0] * len(a)
        for k in torch.randperm(len(spans), generator=gen).tolist():
            s, length = spans[k]
            idx += [START] + body[s:s + length]
            tgt += body[s:s + length] + [END]
            pos += [mask_at[k]] * (length + 1)
            span += list(range(1, length + 2))
        rows.append((idx, tgt, pos, span, len(a)))
    idx, tgt, pos, span, part_a = (list(x) for x in zip(*rows))
    as_tensors = lambda xs: [torch.tensor(x) for x in xs]
    idx = _pad(as_tensors(idx))
    return Batch(idx, _pad(as_tensors(tgt), IGNORE), _pad(as_tensors(pos), 0),
                 Pattern("abi", part_a_len=torch.tensor(part_a)), key_mask=idx != PAD,
                 span_pos=_pad(as_tensors(span), 0))
    # END SOLUTION


def entity_mask(examples, T: int, prob: float, gen) -> torch.Tensor:
    """(B, T) bool: with probability `prob`, every word of one of the row's entities (its name or
    its description, picked at random) is True; rows without entities stay all False."""
    hide = torch.rand(len(examples), generator=gen) < prob
    which = torch.rand(len(examples), generator=gen)
    out = torch.zeros(len(examples), T, dtype=torch.bool)
    for r, e in enumerate(examples):  # a loop over sentences, not tokens: a few dozen per batch
        if hide[r] and e.entities:
            start, end = e.entities[int(which[r] * len(e.entities))]
            out[r, start:end] = True
    return out


def bico(examples, gen, ratio: float = 0.15, entity_prob: float = 0.0) -> Batch:
    """BICO: half the steps plain NTP; the other half autoregressive mask denoising, bidirectional.

    Denoising: each word is replaced by a placeholder ([MASK]) with probability `ratio`, and at
    least one word per row is (the word whose noise draw is smallest), so that no row is without
    a target; [BOS], [EOS] and padding are never masked; placeholders are hidden from
    every query (key_mask), and output i predicts the original token at input i + 1 when that
    token was masked: NTP's shift, so the same head serves both.
    entity_prob > 0 (tinyrev's variant, lesson 03): on top of that, with this probability a row
    also has one whole entity masked (`entity_mask`, called after the token noise is drawn). At
    0 it draws nothing more, so the batches are exactly published BICO's.
    """
    if not 0 <= entity_prob <= 1:
        raise ValueError(f"entity_prob={entity_prob!r} is outside [0, 1]: it is the chance that "
                         "a sentence also has a whole entity masked")
    # BEGIN SOLUTION lesson03: the coin, then hidden words predicted one position early
    if torch.rand((), generator=gen) < 0.5:
        return ntp(examples, gen)
    seqs = _pad(e.ids for e in examples)
    words = seqs > END  # specials ([BOS], [EOS], padding) are never masked
    noise = torch.rand(seqs.shape, generator=gen).masked_fill(~words, 2.0)
    # at least one masked word per row, so no row is without a target
    masked = (noise < ratio) | (noise == noise.min(dim=1, keepdim=True).values)
    if entity_prob > 0:
        masked |= entity_mask(examples, seqs.shape[1], entity_prob, gen)
    masked &= words
    idx = seqs.masked_fill(masked, MASK)
    targets = torch.full_like(seqs, IGNORE)
    targets[:, :-1] = seqs[:, 1:].masked_fill(~masked[:, 1:], IGNORE)
    return Batch(idx, targets, torch.arange(idx.shape[1]), Pattern("bico"),
                 key_mask=(idx != MASK) & (idx != PAD))
    # END SOLUTION


def reverse_entities(e):
    """Reverse the words of a sentence but keep each entity (name, description) in reading order."""
    # BEGIN SOLUTION lesson03: the words reversed, each entity kept in reading order
    ids, n = e.ids.clone(), len(e.ids) - 2
    ids[1:-1] = e.ids[1:-1].flip(0)
    for s, t in e.entities:
        # word s..t-1 lands at n+2-t..n+1-s after the flip; write it back the right way round
        ids[n + 2 - t:n + 2 - s] = e.ids[s:t]
    return ids
    # END SOLUTION


def reverse(examples, gen) -> Batch:
    """Reverse training (Golovneva et al. 2024): NTP where each sentence, with probability 1/2,
    is read backwards with its entities kept whole: a data-side cure, same model, same loss."""
    flip = torch.rand(len(examples), generator=gen) < 0.5
    flipped = [type(e)(reverse_entities(e), 0, ()) if f else e for e, f in zip(examples, flip)]
    return ntp(flipped, gen)


@dataclass(frozen=True)
class Query:
    """A group of equally long questions as model inputs, ready to receive an answer."""
    idx: torch.Tensor                 # (B, T)
    pos: torch.Tensor                 # (B, T) RoPE positions
    span_pos: torch.Tensor | None     # (B, T) offsets inside a span, or None (no infilling)
    pattern: Pattern


@dataclass(frozen=True)
class Objective:
    """A training objective: the batches it trains on and how its model is asked a question.

    form: "causal" reads the prompt left to right; "prefix" reads it as the prefix LM's
    bidirectional prefix; "infill" reads the sentence with the answer blanked as GLM's Part A and
    decodes the answer as a span after [START], exactly as ABI trains; "bidirectional" reads the
    prompt both ways with BICO's stitched rotations, as BICO's denoising steps read a sentence,
    then decodes the answer left to right after it (lesson 03, "How you ask decides what you
    find"). Each objective is asked its own way by default; `asked(form)` asks it another.
    """
    name: str
    make_batch: Callable      # (examples, torch.Generator) -> Batch
    form: str = "causal"
    needs_entities: bool = False  # without entity spans in the data it would be another objective

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"objective {self.name!r}: form {self.form!r} is not one of {FORMS}")

    def __call__(self, examples, gen) -> Batch:
        return self.make_batch(examples, gen)

    def asked(self, form: str) -> "Objective":
        """The same objective, its model asked in `form`: BICO's causal answer beside its own,
        or an NTP model read both ways. Infilling needs the span offsets only ABI trains."""
        if form == "infill" and self.form != "infill":
            raise ValueError(f"a {self.name} model cannot be asked by infilling: only abi learns "
                             "the span offsets a blank's answer is decoded with; choose one of "
                             f"{', '.join(f for f in FORMS if f != 'infill')}")
        return replace(self, form=form)

    @property
    def span_positions(self) -> int:
        """The learned span offsets its model needs (GLM's second position): infilling only."""
        return SPAN_POSITIONS if self.form == "infill" else 0

    @property
    def stop(self) -> int:
        """The token that ends an answer: [END] closes a span, [EOS] a sentence."""
        return END if self.form == "infill" else EOS

    def question(self, item) -> list:
        """The ids a test item is asked with: its prompt, or its sentence, the answer blanked."""
        return item.infill if self.form == "infill" else item.prompt

    def question_of(self, ids: list) -> list:
        """The question for text the user typed (ids without specials). Infilling wants a [MASK]
        where the answer goes; one is appended when the text has none."""
        if self.form == "infill":
            return [BOS] + ids + ([] if MASK in ids else [MASK]) + [EOS]
        return [BOS] + ids

    def query(self, questions: torch.Tensor) -> Query:
        """Model inputs for equally long questions (B, T), ready to receive an answer.

        The prefix LM reads the question as its prefix, BICO reads it as a prefix whose keys
        ahead of a query are reversely rotated. Infilling starts Part B with [START] at the
        blank's position, span offset 1, exactly as in training.
        """
        B, T = questions.shape
        dev = questions.device
        pos = torch.arange(T, device=dev).expand(B, T)
        if self.form != "infill":
            read = {"causal": CAUSAL, "prefix": Pattern("prefix", prefix_len=T),
                    "bidirectional": Pattern("bico", prefix_len=T)}[self.form]
            return Query(questions, pos, None, read)
        blank = (questions == MASK).float().argmax(1, keepdim=True)  # the first [MASK] of each row
        idx = torch.cat((questions, torch.full((B, 1), START, device=dev)), 1)
        span = torch.zeros(B, T + 1, dtype=torch.long, device=dev)
        span[:, -1] = 1
        return Query(idx, torch.cat((pos, blank), 1), span, Pattern("abi", part_a_len=T))


ENTITY_PROB = 0.5  # bico-entity: chosen by measurement (lesson 03, its record at the end)
_ALL = (Objective("ntp", ntp), Objective("prefix", prefix, "prefix"),
        Objective("abi", abi, "infill"), Objective("bico", bico, "bidirectional"),
        Objective("bico-entity", partial(bico, entity_prob=ENTITY_PROB), "bidirectional",
                  needs_entities=True),
        Objective("reverse", reverse))
OBJECTIVES = tuple(o.name for o in _ALL)


def get(name: str) -> Objective:
    for objective in _ALL:
        if objective.name == name:
            return objective
    raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
