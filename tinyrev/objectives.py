"""Training objectives: each turns a list of examples into one model call and its targets.

Covers: NTP, prefix LM, GLM's autoregressive blank infilling (ABI), BICO and reverse training.
Leaves out: the model and the loop; the loss is the same cross-entropy for every objective, taken
where `targets` is not IGNORE. Targets are aligned with inputs: output i is scored on targets[i].

Every objective draws its randomness from the `torch.Generator` it is handed, so a run with the
same seed builds the same batches, and a resumed run continues the same sequence.
"""

from dataclasses import dataclass, field

import torch
from torch.nn.utils.rnn import pad_sequence

from .tokenizer import END, MASK, PAD, START

IGNORE = -100  # cross_entropy's ignore_index
OBJECTIVES = ("ntp", "prefix", "abi", "bico", "reverse")


@dataclass
class Batch:
    """Everything one forward pass needs: model(idx, pos, pattern, key_mask=, span_pos=, **options)."""
    idx: torch.Tensor                 # (B, T) input tokens
    targets: torch.Tensor             # (B, T) token to predict at each position, or IGNORE
    pos: torch.Tensor                 # (T,) or (B, T) RoPE positions
    pattern: str = "causal"
    options: dict = field(default_factory=dict)
    key_mask: torch.Tensor | None = None
    span_pos: torch.Tensor | None = None

    def to(self, device):
        move = lambda x: x.to(device) if torch.is_tensor(x) else x
        return Batch(move(self.idx), move(self.targets), move(self.pos), self.pattern,
                     {k: move(v) for k, v in self.options.items()}, move(self.key_mask),
                     move(self.span_pos))


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
    b.targets = b.targets.masked_fill(~scored, IGNORE)
    b.pattern, b.options = "prefix", {"prefix_len": P}
    return b
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
    return Batch(idx, _pad(as_tensors(tgt), IGNORE), _pad(as_tensors(pos), 0), "abi",
                 {"part_a_len": torch.tensor(part_a)}, key_mask=idx != PAD,
                 span_pos=_pad(as_tensors(span), 0))
    # END SOLUTION


def bico(examples, gen, ratio: float = 0.15) -> Batch:
    """BICO: half the steps plain NTP; the other half autoregressive mask denoising, bidirectional.

    Denoising: each word is replaced by a placeholder ([MASK]) with probability `ratio`;
    placeholders are hidden from every query (key_mask), and output i predicts the original
    token at input i + 1 when that token was masked: NTP's shift, so the same head serves both.
    """
    # BEGIN SOLUTION lesson03: the coin, then hidden words predicted one position early
    if torch.rand((), generator=gen) < 0.5:
        return ntp(examples, gen)
    seqs = _pad(e.ids for e in examples)
    words = seqs > END  # specials ([BOS], [EOS], padding) are never masked
    noise = torch.rand(seqs.shape, generator=gen).masked_fill(~words, 2.0)
    # at least one masked word per row, so no row is without a target
    masked = (noise < ratio) | (noise == noise.min(dim=1, keepdim=True).values)
    masked &= words
    idx = seqs.masked_fill(masked, MASK)
    targets = torch.full_like(seqs, IGNORE)
    targets[:, :-1] = seqs[:, 1:].masked_fill(~masked[:, 1:], IGNORE)
    return Batch(idx, targets, torch.arange(idx.shape[1]), "bico",
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


def get(name: str):
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return globals()[name]
