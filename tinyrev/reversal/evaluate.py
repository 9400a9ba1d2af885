"""Scoring a trained model on the reversal tests, and printing results side by side.

Covers: decoding accuracy (greedy unless asked otherwise; correct when the completion starts
with the target) and the
log-prob margin, log p(target | prompt) - log p(another person's target | same prompt), each
asked in the objective's query form (`Objective.query`: a causal prompt, a prefix, a blank to
infill, or the prompt read both ways). A test whose items carry no other answer (a facts folder
without that twin file) gets no margin: None. Also the effective log-prob of the right answer in
each direction, which lesson 05 reads off these runs (`answer_asymmetry`), and the results as a
table and as figures (bars by objective, the learning curve).
Leaves out: the training dynamics' own models (dynamics/), and the length measurements.
"""

import statistics
from collections import defaultdict
from dataclasses import replace

import torch
from torch.nn.utils.rnn import pad_sequence

from ..decoding import GREEDY, Decoding
from ..model import generate
from ..objectives import OBJECTIVES, Objective, get
from ..tokenizer import PAD

CONTAINS_SLACK = 8  # tokens decoded past the answer's length, for accuracy_contains
TITLES = {"accuracy": "accuracy (%)", "accuracy_contains": "contains (%)",
          "logprob_margin": "log-prob margin"}


def answer_logprob(model, objective: Objective, questions, answers):
    """Sum of log p(answer tokens) for each row of `questions` (B, T), teacher-forced after the
    objective's query: each answer token at the position where greedy decoding would put it.
    Differentiable (lesson 06 fits an edit through it); scoring calls it under no_grad."""
    # BEGIN SOLUTION lesson03: teacher-forced log p of each answer after its query, padding excluded
    q = objective.query(questions)
    idx, pos, span = q.idx, q.pos, q.span_pos
    ans = pad_sequence([torch.tensor(a) for a in answers], batch_first=True,
                       padding_value=PAD).to(questions.device)
    L = ans.shape[1]
    step = torch.arange(1, L + 1, device=questions.device)
    if span is None:
        pos = torch.cat((pos, pos[:, -1:] + step), 1)
    else:  # inside a span the position stays at the blank and the offset grows
        pos = torch.cat((pos, pos[:, -1:].expand(-1, L)), 1)
        span = torch.cat((span, 1 + step.expand(len(ans), L)), 1)
    logits = model(torch.cat((idx, ans), 1), pos, q.pattern, span_pos=span)
    logp = logits[:, idx.shape[1] - 1:-1].float().log_softmax(-1)
    token_logp = logp.gather(-1, ans[..., None]).squeeze(-1)
    return (token_logp * (ans != PAD)).sum(1)
    # END SOLUTION


@torch.no_grad()
def reversal_scores(model, data, objective: Objective, device="cpu", margins: bool = True,
                    decoding: Decoding = GREEDY) -> dict:
    """{"accuracy": {test: share}, "accuracy_contains": ..., "logprob_margin": {test: nats}},
    each asked in `objective`'s form.

    accuracy: the decoded completion starts with the whole target. accuracy_contains: the target
    appears anywhere in the first len(target) + CONTAINS_SLACK decoded tokens, up to the answer's
    stop token: the looser way Lv et al. score, kept beside the strict one to compare with them.
    margins=False skips the log-prob margins (None): the learning curve needs only accuracy.
    decoding: how answers are decoded (greedy by default; a beam ends at the answer's stop token).
    """
    model.eval()
    decoding = replace(decoding, stop=objective.stop)
    out = {"accuracy": {}, "accuracy_contains": {}, "logprob_margin": {}}
    for test, items in data.tests.items():
        groups = defaultdict(list)  # questions of one length decode together, without padding
        for it in items:
            groups[len(objective.question(it))].append(it)
        correct, contained, gaps = 0, 0, []
        for group in groups.values():
            questions = torch.tensor([objective.question(it) for it in group], device=device)
            q = objective.query(questions)
            L = max(len(it.target) for it in group) + CONTAINS_SLACK
            decoded = generate(model, q.idx, L, pos=q.pos, span_pos=q.span_pos,
                               pattern=q.pattern, decoding=decoding).tolist()
            for words, it in zip(decoded, group):
                correct += words[:len(it.target)] == it.target
                words = words[:words.index(objective.stop)] if objective.stop in words else words
                contained += _contains(words, it.target)
            if margins and items[0].other is not None:
                good = answer_logprob(model, objective, questions, [it.target for it in group])
                bad = answer_logprob(model, objective, questions, [it.other for it in group])
                gaps += (good - bad).tolist()
        out["accuracy"][test] = correct / len(items)
        out["accuracy_contains"][test] = contained / len(items)
        out["logprob_margin"][test] = statistics.fmean(gaps) if gaps else None
    return out


def _contains(words: list, target: list) -> bool:
    n = len(target)
    return any(words[i:i + n] == target for i in range(len(words) - n + 1))


@torch.no_grad()
def complete(model, tokenizer, objective: Objective, text: str, max_new_tokens: int = 12,
             device="cpu", decoding: Decoding = GREEDY) -> str:
    """Completion of `text` (greedy unless `decoding` says otherwise), asked the way
    `objective` was trained.

    For infilling (ABI) the text is Part A: it should hold a [MASK] where the answer goes (one is
    appended when it has none), and the answer is the span decoded after [START], up to [END].
    """
    model.eval()
    blank = ("[MASK]",) if objective.form == "infill" else ()  # Part A holds the blank it asks
    ids = objective.question_of(tokenizer.encode(text, allow=blank))
    q = objective.query(torch.tensor([ids], device=device))
    out = generate(model, q.idx, max_new_tokens, pos=q.pos, span_pos=q.span_pos,
                   pattern=q.pattern, decoding=replace(decoding, stop=objective.stop))
    words = out[0].tolist()
    stop = objective.stop
    return tokenizer.decode(words[:words.index(stop)] if stop in words else words)


@torch.no_grad()
def answer_asymmetry(model, data, objective: Objective, device="cpu", templates: int = 3) -> dict:
    """Effective log-prob of the right answer, trained direction against reverse, in a reversal run.

    For person i asked with a held-out template: log p(answer_i | prompt_i) minus the mean over
    every person j of that subset of log p(answer_j | prompt_i). With one-token answers this is
    exactly lesson 05's centred logit (dynamics/experiment.py, `effective`); the normaliser of p
    cancels in the difference. Each template
    costs n² scored answers per test, so only the first `templates` held-out ones are asked.
    """
    model.eval()
    out, n = {}, len(data.people["p2d"])  # every subset holds n people
    for test in ("N2D", "D2N", "N2D-reverse", "D2N-reverse"):
        items = data.tests[test]
        k = len(items) // n  # items run person by person, template by template
        answers = [items[i * k].target for i in range(n)]
        scores = []
        for template in range(min(k, templates)):
            group = items[template::k]
            questions = torch.tensor([objective.question(g) for g in group],
                                     device=device).repeat_interleave(n, dim=0)
            lp = answer_logprob(model, objective, questions, answers * n).view(n, n)
            scores.append(lp.diagonal() - lp.mean(dim=1))
        out[test] = torch.cat(scores).mean().item()
    return {"w_forward": (out["N2D"] + out["D2N"]) / 2,
            "w_reverse": (out["N2D-reverse"] + out["D2N-reverse"]) / 2, "per_test": out}


DIRECTIONS = {"N2D": "trained name first, asked name first",
              "D2N": "trained description first, asked description first",
              "N2D-reverse": "trained name first only, asked description first: the curse",
              "D2N-reverse": "trained description first only, asked name first: the curse",
              "Both": "trained both ways"}


def known_answer(data, text: str):
    """(test, right answer) of the first test question whose prompt is `text`, or None."""
    try:
        ids = data.tokenizer.encode(text)
    except ValueError:
        return None
    for test, items in data.tests.items():
        for it in items:
            if it.prompt[1:] == ids:  # the prompt without its [BOS]
                return test, data.tokenizer.decode(it.target)
    return None


def labelled(results: list, key: str = "accuracy"):
    """(row label, run, the run's {test: value}) for each run, and for each BICO run's causal
    decode, in the order of `objectives.OBJECTIVES` whatever the order of `results`.

    A row is labelled by the objective, and by the form too where it is not the objective's own
    ("ntp, bidirectional" from `eval.py --form`), and by any decoding other than greedy ("bico,
    beam 4"). A BICO objective's accuracy is followed by its causal decode ("bico, causal"), the
    way Lv et al. ask it."""
    for r in sorted(results, key=lambda r: OBJECTIVES.index(r["objective"])):  # stable
        name = r["objective"]
        own = r.get("form", get(name).form) == get(name).form
        how = "".join(f", {k} {v}" for k, v in r.get("decoding", {}).items())
        yield (name if own else f"{name}, {r['form']}") + how, r, r[key]
        if key == "accuracy" and "accuracy_causal" in r:
            yield f"{name}, causal{how}", r, r["accuracy_causal"]


def rows(results: list, key: str = "accuracy") -> dict:
    """{row label: [each run's {test: value}]}, as `labelled` names and orders them."""
    out = defaultdict(list)
    for label, _, values in labelled(results, key):
        out[label].append(values)
    return out


def table(results: list, key: str = "accuracy") -> str:
    """Rows as `rows` gives them (mean ± std over seeds where there are several), columns per test.
    Accuracy is shown in percent, the margin in nats; a value never measured (None) as '—'."""
    grouped = rows(results, key)
    tests = list(results[0][key])
    scale = 1 if key == "logprob_margin" else 100
    width = max(20, *(len(label) + 2 for label in grouped))
    lines = [TITLES[key].ljust(width) + "".join(t.rjust(16) for t in tests) + "   seeds"]
    for label, runs in grouped.items():
        cells = [mean_std([scale * r[t] for r in runs if r.get(t) is not None]).rjust(16)
                 for t in tests]
        lines.append(label.ljust(width) + "".join(cells) + f"   {len(runs)}")
    return "\n".join(lines)


def mean_std(values: list, digits: int = 1) -> str:
    """'12.3 ± 4.5' over seeds, '12.3' for one, '—' for none: one cell of a results table."""
    if not values:
        return "—"
    cell = f"{statistics.fmean(values):.{digits}f}"
    return cell + f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else cell


def plot_reverse(results: list, path):
    """Reverse accuracy by row of the table (BICO asked both ways): a bar per test (mean over
    seeds), a dot per seed. Needs matplotlib, an optional extra."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    grouped = rows(results)
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, test in enumerate(("N2D-reverse", "D2N-reverse")):
        for i, runs in enumerate(grouped.values()):
            values = [100 * r[test] for r in runs]
            x = i + 0.4 * (k - 0.5)
            # a mean of 0 still gets a sliver, so that a zero bar reads as measured, not missing
            ax.bar(x, max(statistics.fmean(values), 0.6), 0.38, color=f"C{k}",
                   label=None if i else test)
            ax.plot([x] * len(values), values, "k.", markersize=4, clip_on=False)
    ax.set_xticks(range(len(grouped)), [label.replace(", ", ",\n") for label in grouped],
                  fontsize=8)
    ax.set(xlabel="objective (and how it is asked, where not its own way)",
           ylabel="reverse accuracy (%)", ylim=(0, 100),
           title="The reversal curse and its cures: facts asked the other way round "
           "(bars: mean over seeds; dots: each seed)")
    ax.title.set_fontsize(10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_curve(results: list, path):
    """Reverse accuracy against training steps from each run's `curve`, asked each objective's
    own way: a line per objective and reverse test, the mean over its seeds. Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_objective = defaultdict(list)
    for r in results:
        by_objective[r["objective"]].append(r)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (objective, runs) in enumerate(by_objective.items()):
        points = [{p["step"]: p["accuracy"] for p in r["curve"]} for r in runs]
        steps = sorted(set.intersection(*(set(p) for p in points)))  # scored in every run
        for test, style in zip(("N2D-reverse", "D2N-reverse"), ("-", "--")):
            mean = [statistics.fmean(100 * p[step][test] for p in points) for step in steps]
            ax.plot(steps, mean, style, color=f"C{i}", marker=".",
                    label=f"{objective}: {test} ({len(runs)} seeds)")
    ax.set(xlabel="training step", ylabel="reverse accuracy (%)", ylim=(0, 100),
           title="Reverse accuracy over training, each objective asked its own way")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
