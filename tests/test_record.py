"""The measurement record: every results table in the README and the lessons is what its
committed files in lessons/record/ give, so a number typed by hand, or left behind by a new run,
fails here. Render again with `python -m tinyrev.tools.record`."""

import re

import pytest

from tinyrev.tools import record

pytestmark = pytest.mark.tools


def test_every_document_table_is_what_the_record_gives():
    assert record.stale() == [], "render the tables again: python -m tinyrev.tools.record"


def test_every_record_table_is_shown_somewhere_and_every_file_is_used():
    shown = {name for d in record.DOCUMENTS for name in re.findall(r"<!-- record: ([\w-]+) -->",
                                                                    d.read_text())}
    assert shown == set(record.TABLES)
    used = {file for files, _ in record.TABLES.values() for file in files}
    assert used == {p.name for p in record.RECORD.glob("*.json")}


def test_a_number_changed_by_hand_is_found(tmp_path):
    doc = next(d for d in record.DOCUMENTS if "<!-- record: reversal-accuracy -->" in d.read_text())
    start = doc.read_text().index("<!-- record: reversal-accuracy -->")
    text = doc.read_text()
    digit = start + re.search(r"\| \d", text[start:]).end() - 1
    edited = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:]
    (tmp_path / "doc.md").write_text(edited)
    assert record.stale([tmp_path / "doc.md"]) == [tmp_path / "doc.md"]
    assert record.render(edited) == text


def test_an_unknown_table_is_named():
    with pytest.raises(ValueError, match="unknown record table 'nope'"):
        record.render("<!-- record: nope -->\n<!-- end record -->")


def test_every_seed_puts_each_run_in_its_own_row():
    """A run asked two ways (its own and beam search) lands in two rows, each with its own
    numbers, the causal decode of a BICO run in the ', causal' row."""
    acc = lambda a: {"N2D-reverse": a, "D2N-reverse": a / 2}
    runs = [{"objective": "bico", "seed": 0, "accuracy": acc(0.5), "accuracy_causal": acc(0.1)},
            {"objective": "bico", "seed": 0, "accuracy": acc(0.6), "accuracy_causal": acc(0.2),
             "decoding": {"beam": 4}}]
    lines = record.every_seed(runs).splitlines()[2:]
    assert lines == ["| bico | 50 / 25 |", "| bico, causal | 10 / 5 |",
                     "| bico, beam 4 | 60 / 30 |", "| bico, causal, beam 4 | 20 / 10 |"]


def test_the_bench_table_names_the_tokens_each_row_timed():
    """The first stretch starts at token 1, not at n/2: the prompt is one token."""
    run = lambda speed: {"length": [1024, 2048], "tokens_per_s": [speed, speed],
                         "cache_bytes": [2 ** 20, 2 ** 21]}
    lines = record.bench({"decode": {"full": run(100.0), "lambda": run(150.0),
                                     "streaming_llm": run(140.0)}}).splitlines()
    assert lines[2].startswith("| [1, 1024) | 100 | 150 | 1.50x | 140 | 1.00 |")
    assert lines[3].startswith("| [1024, 2048) |")


def test_length_seeds_reports_each_modes_worst_bucket_past_the_training_length():
    nll = {"vanilla": [1.0, 2.0, 2.2, 3.0], "window": [1.0, 2.0, 2.4, 2.2]}
    r = {"seed": 1, "train_len": 4, "nll": nll, "first_token_attention": {m: [0.5] for m in nll},
         "passkey": {"lengths": [16, 64], "vanilla": [1.0, 0.25]}}
    lines = record.length_seeds(r).splitlines()[2:]
    assert lines == ["| vanilla, seed 1 | 1.500 | 0.500 | 100 | 25 |",
                     "| window, seed 1 | 1.200 | 0.500 | — | — |"]
