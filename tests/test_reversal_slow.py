"""The reproduction itself (slow, about 6 minutes on 2 cores): `pytest -m slow`.

Runs the README's main job as written, `train.py --objective ntp bico-entity --jobs 2` (default
configuration, seed 0, one thread per run), then checks the curse (NTP: same direction learned,
reverse at about zero), its relief (bico-entity: each reverse test at least 20 points above NTP,
the trained direction still learned), and that the README's seed-0 row of the reversal table is
what this code gives now: a figure left behind by a change to the code fails here. Then lesson
06's edits on the NTP run: they take, stay local, and leave the reversed question unanswered.
On CPU a run is exactly reproducible for one torch build and thread count; the comparison with
the README allows 3 points for another build or processor.
"""

import json
import re
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


def test_bico_entity_relieves_the_curse_when_decoded_causally(results):
    ntp, ours = results["ntp"]["accuracy"], results["bico-entity"]["accuracy"]
    for test in ("N2D-reverse", "D2N-reverse"):
        assert ours[test] - ntp[test] >= 0.2, (test, ntp, ours)
    assert ours["N2D"] >= 0.9 and ours["D2N"] >= 0.9, ours  # and it still learns the facts


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_readme_seed_0_row_matches_a_fresh_run(results, objective):
    """The README's "Every seed" table: `| objective | N2D-rev / D2N-rev of seed 0 | ...`."""
    readme = (ROOT / "README.md").read_text()
    row = re.search(rf"^\| {re.escape(objective)} \| (\d+) / (\d+) \|", readme, re.MULTILINE)
    assert row, f"no seed-0 row for {objective} in the README's table"
    acc = results[objective]["accuracy"]
    fresh = (100 * acc["N2D-reverse"], 100 * acc["D2N-reverse"])
    for test, printed, now in zip(("N2D-reverse", "D2N-reverse"), row.groups(), fresh):
        assert abs(int(printed) - now) <= 3, f"README says {printed} % for {objective} {test}; " \
                                             f"a fresh run gives {now:.1f} %"


def test_an_edit_rewrites_a_fact_forwards_and_not_backwards(main_job):
    """Lesson 06 on the main job's NTP run: the trace finds where the facts are recalled, and 20
    rank-one edits each take, stay local, and cannot be asked backwards (about a minute)."""
    out = main_job / "edit.json"
    done = subprocess.run([sys.executable, "eval.py", "--task", "editing",
                           str(main_job / "ntp-s0"), "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())
    assert r["trace_best_recovery"] >= 0.5 and r["n_edits"] == 20, r
    new = r["new"]
    assert new["efficacy"] >= 0.9 and new["specificity"] >= 0.9 and new["reverse"] <= 0.1, r
