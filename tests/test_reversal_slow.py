"""The reproduction itself (slow, about 6 minutes on 2 cores): `python -m pytest -m slow`.

Runs the README's main job as written, `train.py --objective ntp bico-entity --jobs 2` (default
configuration, seed 0, one thread per run), then checks what holds on any processor, since one
seed's digits move with a processor's rounding: the curse (NTP learns the facts and answers
about none reversed, however it is asked) and its relief (bico-entity, asked the way it trained,
answers each reverse test far above NTP and above its own causal decode, with margins every
one of the five seeds in the README's table clears). The documents' numbers are kept true
another way: they are rendered from recorded results (tests/test_record.py). Then lesson 06's
edits on the NTP run: they take, stay local, and leave the reversed question unanswered.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
OBJECTIVES = ("ntp", "bico-entity")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def main_job(tmp_path_factory, request):
    out = tmp_path_factory.mktemp("slow") / "main"
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(
        "running the README's main job: ntp and bico-entity side by side, seed 0 (about 5 minutes "
        "on 2 cores)...")
    done = subprocess.run([sys.executable, "train.py", "--objective", *OBJECTIVES, "--jobs", "2",
                           "--out", str(out), "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def results(main_job):
    return {o: json.loads((main_job / f"{o}-s0" / "results.json").read_text()) for o in OBJECTIVES}


def test_ntp_learns_the_facts_but_not_their_reverse(results):
    acc = results["ntp"]["accuracy"]
    assert acc["N2D"] >= 0.9 and acc["D2N"] >= 0.9 and acc["Both"] >= 0.9, acc
    assert acc["N2D-reverse"] <= 0.05 and acc["D2N-reverse"] <= 0.05, acc


def test_reading_ntp_both_ways_uncovers_nothing(main_job, tmp_path):
    """The question read both ways adds no knowledge: NTP's reverse answers stay at about 0."""
    out = tmp_path / "ntp-both.json"
    done = subprocess.run([sys.executable, "eval.py", str(main_job / "ntp-s0"), "--form",
                           "bidirectional", "--json", str(out)], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    acc = json.loads(out.read_text())[0]["accuracy"]
    assert acc["N2D"] >= 0.9 and acc["N2D-reverse"] <= 0.05 and acc["D2N-reverse"] <= 0.05, acc


def test_bico_entity_asked_both_ways_relieves_the_curse(results):
    ntp, ours = results["ntp"]["accuracy"], results["bico-entity"]
    for test in ("N2D-reverse", "D2N-reverse"):
        assert ours["accuracy"][test] - ntp[test] >= 0.3, (test, ntp, ours["accuracy"])
        assert ours["accuracy"][test] > ours["accuracy_causal"][test], (test, ours)
        assert ours["accuracy_causal"][test] - ntp[test] >= 0.1, (test, ntp, ours)
    assert ours["accuracy"]["N2D"] >= 0.9 and ours["accuracy"]["D2N"] >= 0.9, ours


def test_the_curve_ends_at_the_final_scores(results):
    for r in results.values():
        assert [p["step"] for p in r["curve"]] == [250, 500, 750, 1000]
        assert r["curve"][-1]["accuracy"] == r["accuracy"]


def test_an_edit_rewrites_a_fact_forwards_and_not_backwards(main_job):
    """Lesson 06 on the main job's NTP run: the trace finds where the facts are recalled; 20
    rank-one edits each take, stay local, and cannot be asked backwards; MEMIT writes the 20 at
    once; fine-tuning every weight disturbs the other facts far more (about a minute)."""
    out = main_job / "edit.json"
    done = subprocess.run([sys.executable, "eval.py", "--task", "editing",
                           str(main_job / "ntp-s0"), "--method", "rome", "memit", "finetune",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())
    assert r["trace_best_recovery"] >= 0.5 and r["n_edits"] == 20, r
    rome, memit, tuned = (r["methods"][m]["new"] for m in ("rome", "memit", "finetune"))
    assert rome["efficacy"] >= 0.9 and rome["specificity"] >= 0.9 and rome["reverse"] <= 0.1, r
    assert memit["efficacy"] >= 0.9 and memit["reverse"] <= 0.1, r
    assert tuned["specificity"] <= rome["specificity"] - 0.2, r  # seeds 0, 1: 35 and 34 %
