"""Scoring a trained model on the reversal tests, and printing results side by side.

Covers: greedy-decoding accuracy (correct when the completion starts with the target) and the
log-prob margin, log p(target | prompt) - log p(another person's target | same prompt), each with
the query form that suits the objective: a causal prompt, or a blank to infill for ABI. A test
whose items carry no other answer (a facts folder without that twin file) gets no margin: None.
Leaves out: the length-generalization measurements.
"""

import statistics
from collections import defaultdict

import torch
from torch.nn.utils.rnn import pad_sequence

from .model import generate
from .tokenizer import BOS, END, EOS, MASK, PAD, START


def _query(objective, queries):
    """Model inputs for a group of equally long queries (B, T), ready to receive an answer.

    Causal objectives read the prompt left to right (the prefix LM with its prompt as prefix).
    ABI reads the sentence with the answer blanked as Part A and starts Part B with [START] at
    the blank's position, offset 1, exactly as in training.
    """
    B, T = queries.shape
    dev = queries.device
    pos = torch.arange(T, device=dev).expand(B, T)
    if objective != "abi":
        options = {"prefix_len": T} if objective == "prefix" else {}
        return queries, pos, None, ("prefix" if objective == "prefix" else "causal"), options
    blank = (queries == MASK).float().argmax(1, keepdim=True)  # the first [MASK] of each row
    idx = torch.cat((queries, torch.full((B, 1), START, device=dev)), 1)
    span = torch.zeros(B, T + 1, dtype=torch.long, device=dev)
    span[:, -1] = 1
    return idx, torch.cat((pos, blank), 1), span, "abi", {"part_a_len": T}


@torch.no_grad()
def _answer_logprob(model, objective, queries, answers):
    """Sum of log p(answer tokens) for each row, teacher-forced after the query."""
    # BEGIN SOLUTION lesson03: teacher-forced log p of each answer after its query, padding excluded
    idx, pos, span, pattern, options = _query(objective, queries)
    ans = pad_sequence([torch.tensor(a) for a in answers], batch_first=True,
                       padding_value=PAD).to(queries.device)
    L = ans.shape[1]
    step = torch.arange(1, L + 1, device=queries.device)
    if span is None:
        pos = torch.cat((pos, pos[:, -1:] + step), 1)
    else:  # inside a span the position stays at the blank and the offset grows
        pos = torch.cat((pos, pos[:, -1:].expand(-1, L)), 1)
        span = torch.cat((span, 1 + step.expand(len(ans), L)), 1)
    logits = model(torch.cat((idx, ans), 1), pos, pattern, span_pos=span, **options)
    logp = logits[:, idx.shape[1] - 1:-1].float().log_softmax(-1)
    token_logp = logp.gather(-1, ans[..., None]).squeeze(-1)
    return (token_logp * (ans != PAD)).sum(1)
    # END SOLUTION


@torch.no_grad()
def reversal_scores(model, data, objective: str, device="cpu"):
    """{test: accuracy} and {test: mean log-prob margin} over `data.tests`."""
    model.eval()
    accuracy, margin = {}, {}
    ask = (lambda it: it.infill) if objective == "abi" else (lambda it: it.prompt)
    for test, items in data.tests.items():
        groups = defaultdict(list)  # queries of one length decode together, without padding
        for it in items:
            groups[len(ask(it))].append(it)
        correct, margins = 0, []
        for group in groups.values():
            queries = torch.tensor([ask(it) for it in group], device=device)
            idx, pos, span, pattern, options = _query(objective, queries)
            L = max(len(it.target) for it in group)
            out = generate(model, idx, L, pos=pos, span_pos=span, pattern=pattern, **options)
            correct += sum(out[r, :len(it.target)].tolist() == it.target
                           for r, it in enumerate(group))
            if items[0].other is not None:
                good = _answer_logprob(model, objective, queries, [it.target for it in group])
                bad = _answer_logprob(model, objective, queries, [it.other for it in group])
                margins += (good - bad).tolist()
        accuracy[test] = correct / len(items)
        margin[test] = statistics.fmean(margins) if margins else None
    return accuracy, margin


@torch.no_grad()
def complete(model, tokenizer, objective: str, text: str, max_new_tokens: int = 12,
             device="cpu") -> str:
    """Greedy completion of `text`, asked the way `objective` was trained.

    For ABI the text is Part A: it should hold a [MASK] where the answer goes (one is appended
    when it has none), and the answer is the span decoded after [START], up to [END].
    """
    model.eval()
    ids = tokenizer.encode(text)
    if objective == "abi":
        ids = [BOS] + ids + ([] if MASK in ids else [MASK]) + [EOS]
    else:
        ids = [BOS] + ids
    idx, pos, span, pattern, options = _query(objective, torch.tensor([ids], device=device))
    out = generate(model, idx, max_new_tokens, pos=pos, span_pos=span, pattern=pattern, **options)
    words = out[0].tolist()
    stop = END if objective == "abi" else EOS
    return tokenizer.decode(words[:words.index(stop)] if stop in words else words)


def table(results: list, key: str = "accuracy") -> str:
    """Rows per objective (mean ± std over seeds where there are several), columns per test.
    Accuracy is shown in percent, the margin in nats; a value never measured (None) as '—'."""
    by_objective = defaultdict(list)
    for r in results:
        by_objective[r["objective"]].append(r)
    tests = list(results[0][key])
    scale = 100 if key == "accuracy" else 1
    lines = [f"{key} ({'%' if key == 'accuracy' else 'nats'})".ljust(20)
             + "".join(t.rjust(16) for t in tests) + "   seeds"]
    for objective, runs in by_objective.items():
        cells = []
        for t in tests:
            values = [scale * r[key][t] for r in runs if r[key].get(t) is not None]
            cell = f"{statistics.fmean(values):.1f}" if values else "—"
            if len(values) > 1:
                cell += f" ± {statistics.stdev(values):.1f}"
            cells.append(cell.rjust(16))
        lines.append(objective.ljust(20) + "".join(cells) + f"   {len(runs)}")
    return "\n".join(lines)
