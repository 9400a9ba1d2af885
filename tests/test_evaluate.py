"""Lesson 03: each way of asking (causal prompt, prefix, ABI blank, BICO's question read both
ways) agrees between decoding and scoring; the table and figure of the results."""

import json

import pytest
import torch

from tinyrev.objectives import get
from tinyrev.reversal.evaluate import answer_logprob, complete, reversal_scores, table
from tinyrev.reversal.facts import FactsConfig, generate as make_data
from tinyrev.attention import Pattern
from tinyrev.model import KVCache, ModelConfig, Transformer, generate
from tinyrev.tokenizer import PAD

pytestmark = pytest.mark.lesson03

DATA = make_data(FactsConfig(n_per_subset=3, n_train_templates=2, n_test_templates=1))


@pytest.mark.parametrize("objective", ["ntp", "prefix", "abi", "bico"])
@pytest.mark.needs("01", "02")
def test_teacher_forced_scoring_agrees_with_cached_decoding(objective):
    """Greedy decoding (KV cache, one token at a time) and teacher-forced scoring (one pass) must
    place every answer token at the same position: then each greedy token is also the most
    likely one when scored. A position or span-offset mismatch breaks this."""
    torch.manual_seed(0)
    V = len(DATA.tokenizer)
    model = Transformer(ModelConfig(vocab_size=V, dim=32, n_layers=2, n_heads=2,
                                    span_positions=16 if objective == "abi" else 0)).eval()
    item = DATA.tests["N2D"][0]
    objective = get(objective)
    questions = torch.tensor([objective.question(item)])
    q = objective.query(questions)
    answer = generate(model, q.idx, 4, pos=q.pos, span_pos=q.span_pos, pattern=q.pattern)[0].tolist()
    for k in range(4):
        if answer[k] == PAD:  # scoring skips padding, so a PAD answer cannot be compared
            continue
        candidates = [answer[:k] + [t] for t in range(1, V)]
        scores = answer_logprob(model, objective, questions.expand(V - 1, -1), candidates)
        assert scores.argmax().item() + 1 == answer[k]


@pytest.mark.needs("01", "02")
def test_bico_decodes_from_a_cache_of_unrotated_keys():
    """A question read both ways, then answered left to right: decoding with the cache BICO
    gets (keys stored before rotation) equals recomputing everything with the question as the
    bidirectional prefix at every step."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=40, dim=32, n_layers=2, n_heads=2)).eval()
    seq = torch.randint(0, 40, (3, 5))
    question = Pattern("bico", prefix_len=5)
    new = generate(model, seq, 4, pattern=question)
    assert not KVCache.for_pattern(2, question).rotated
    for _ in range(4):
        seq = torch.cat((seq, model(seq, pattern=question)[:, -1].argmax(-1, keepdim=True)), 1)
    assert torch.equal(new, seq[:, 5:])


@pytest.mark.needs("01", "02")
def test_complete_blanks_the_end_for_abi_and_stops_at_end_token():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=len(DATA.tokenizer), dim=32, n_layers=2, n_heads=2,
                                    span_positions=16))
    out = complete(model, DATA.tokenizer, get("abi"), "the", max_new_tokens=3)
    assert isinstance(out, str) and "[END]" not in out and len(out.split()) <= 3


@pytest.mark.tools
def test_table_shows_mean_and_std_over_seeds():
    runs = [{"objective": "ntp", "accuracy": {"N2D": a}} for a in (0.5, 1.0)]
    text = table(runs)
    assert "75.0 ± 35.4" in text and text.splitlines()[1].endswith("2")
    # rows come in the objectives' own order, not the order runs were named (a glob's)
    shuffled = [{"objective": o, "accuracy": {"N2D": 1.0}} for o in ("reverse", "abi", "ntp")]
    assert [line.split()[0] for line in table(shuffled).splitlines()[1:]] == ["ntp", "abi",
                                                                             "reverse"]


@pytest.mark.needs("01", "02")
def test_contains_is_never_stricter_than_starts_with():
    """A completion that starts with its target also contains it, so the authors' looser metric
    is at least the strict one, test by test; both are shares of the same items."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=len(DATA.tokenizer), dim=32, n_layers=2, n_heads=2))
    # the property holds for any model, an untrained one included
    r = reversal_scores(model, DATA, get("ntp"))
    assert set(r) == {"accuracy", "accuracy_contains", "logprob_margin"}
    assert None not in r["logprob_margin"].values()  # generated facts have another answer
    assert set(reversal_scores(model, DATA, get("ntp"), margins=False)["logprob_margin"]
               .values()) == {None}
    for test, strict in r["accuracy"].items():
        assert 0 <= strict <= r["accuracy_contains"][test] <= 1


@pytest.mark.tools
def test_contains_finds_the_target_anywhere_and_only_whole():
    from tinyrev.reversal.evaluate import _contains
    assert _contains([9, 4, 5, 6], [5, 6]) and _contains([5, 6], [5, 6])
    assert not _contains([5], [5, 6]) and not _contains([5, 9, 6], [5, 6])


@pytest.mark.tools
def test_the_lesson_figure_draws_reverse_accuracy_by_objective(tmp_path):
    """The lesson's figure command (`eval.py RUN... --plot PNG`) on made-up results."""
    pytest.importorskip("matplotlib", reason="the plot extra: pip install -e '.[plot]'")
    from tinyrev.reversal.evaluate import plot_reverse
    results = [{"objective": o, "accuracy": {"N2D-reverse": a, "D2N-reverse": a / 2}}
               for o, a in (("ntp", 0.0), ("ntp", 0.02), ("bico", 0.3))]
    plot_reverse(results, tmp_path / "reverse.png")
    assert (tmp_path / "reverse.png").stat().st_size > 10_000


@pytest.mark.needs("01", "02")
def test_a_bico_run_keeps_both_ways_of_asking_and_its_curve(tmp_path):
    """results.json: the scores asked both ways, the causal decode beside them, and a curve with
    a point per checkpoint whose last point is the final accuracy."""
    from tinyrev.reversal.experiment import train_reversal
    from tinyrev.trainer import TrainConfig
    cfg = TrainConfig(steps=4, batch_size=8, warmup=1, ckpt_every=1)
    r = train_reversal(get("bico"), tmp_path, train_cfg=cfg, device="cpu", progress=False,
                       facts_cfg=FactsConfig(n_per_subset=2, n_train_templates=2,
                                             n_test_templates=1))
    assert r["form"] == "bidirectional" and set(r["accuracy_causal"]) == set(r["accuracy"])
    assert [p["step"] for p in r["curve"]] == [1, 2, 3, 4]
    assert r["curve"][-1]["accuracy"] == r["accuracy"]
    assert json.loads((tmp_path / "results.json").read_text()) == r
    labels = [line.split("  ")[0] for line in table([r]).splitlines()[1:]]
    assert labels == ["bico", "bico, causal"]


@pytest.mark.tools
def test_a_form_the_model_never_learned_is_refused():
    with pytest.raises(ValueError, match="cannot be asked by infilling"):
        get("ntp").asked("infill")
    assert get("ntp").asked("bidirectional").query(torch.ones(1, 3, dtype=torch.long)).pattern \
        .name == "bico"
