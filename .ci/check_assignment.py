"""The solution and the student version stay in step: python .ci/check_assignment.py [options]

Covers: `--solution GRADE_JSON` (from `pytest --grade-json` on the repository): every lesson at
full marks. Then the student version, generated fresh into a temporary directory by `python -m
tinyrev.tools.assignment`: every module imports, nothing fails to be collected, and every graded test of
every lesson fails with a solution region's NotImplementedError, never passing and never failing
otherwise; a test stopped by another lesson's region must say it `needs` that lesson, and may need
only earlier ones. `--independence` strips all lessons but one, lesson by lesson: that lesson's
tests must then pass, except those that `need` another, which must fail by that lesson's regions
alone; and each test that needs others must pass with exactly its lesson and those written, so a
student who did them is never told a lesson is wrong. The first two take about half a minute on 2
cores (a test stopped by a region fails at once); the needs run their tests in full.
Leaves out: the slow reproductions, which CI runs on the solution only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tinyrev.tools.assignment import lessons  # noqa: E402  (the repository's own, not an installed one)


def run(*args, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the copy's tinyrev, not the installed one
    p = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and p.returncode:
        sys.exit(f"check_assignment: {' '.join(args)} failed in {cwd}:\n{p.stdout}{p.stderr}")
    return p


def student(tmp: Path, only=()) -> Path:
    out = tmp / ("student" + "".join(f"-{n}" for n in only))
    run("-m", "tinyrev.tools.assignment", str(out), *(["--lessons", *only] if only else []), cwd=ROOT)
    return out


def grade(copy: Path, expression: str, tests=()) -> dict:
    report = copy.parent / f"{copy.name}.json"
    p = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", expression, f"--grade-json={report}",
            *tests, cwd=copy, check=False)
    if not report.exists():
        sys.exit(f"check_assignment: pytest graded nothing in {copy}:\n{p.stdout}{p.stderr}")
    result = json.loads(report.read_text())
    if result["collection_errors"]:
        sys.exit(f"check_assignment: not collected in {copy}: {result['collection_errors']}")
    return result


def check_solution(path):
    for number, s in json.loads(Path(path).read_text())["lessons"].items():
        if s["passed"] != s["total"]:
            sys.exit(f"check_assignment: the solution scores {s['passed']} / {s['total']} "
                     f"on lesson {number}")
    print(f"solution: every lesson at full marks ({path})")


def check_student(tmp: Path, known: dict):
    copy = student(tmp)
    modules = sorted(".".join(p.relative_to(copy).with_suffix("").parts)
                     for p in (copy / "tinyrev").rglob("*.py"))
    imported = run("-c", "import importlib, tinyrev; [importlib.import_module(m) for m "
                   f"in {modules!r}]; print(tinyrev.__file__)", cwd=copy).stdout.strip()
    if not imported.startswith(str(copy)):
        sys.exit(f"check_assignment: imported {imported}, not the student version in {copy}")
    result = grade(copy, " or ".join(f"lesson{n}" for n in known))
    bad, counts = [], {n: 0 for n in known}
    for nodeid, t in result["tests"].items():
        counts[t["lesson"]] += 1
        if t["outcome"] != "failed" or not t["stopped_by"]:
            bad.append(f"{nodeid}: {t['outcome']} ({t['error']}), not a NotImplementedError")
        elif set(t["stopped_by"]) - {t["lesson"]} - set(t["needs"]):
            bad.append(f"{nodeid}: stopped by lesson {t['stopped_by']}, needs only {t['needs']}")
        if any(n >= t["lesson"] for n in t["needs"]):  # the course is read in order
            bad.append(f"{nodeid}: a lesson {t['lesson']} test needs lesson {t['needs']}")
    bad += [f"lesson {n}: no graded test" for n, c in counts.items() if not c]
    if bad:
        sys.exit("check_assignment: the student version is out of step:\n" + "\n".join(bad))
    print(f"student version: {len(modules)} modules import; {len(known)} lessons, "
          + ", ".join(f"{n}: {c}" for n, c in counts.items())
          + " tests, each failing with NotImplementedError")
    return result["tests"]


def check_independence(tmp: Path, known: dict, tests: dict):
    bad = []
    for number in known:
        copy = student(tmp, [n for n in known if n != number])
        for nodeid, t in grade(copy, f"lesson{number}")["tests"].items():
            ok = (t["outcome"] == "passed") if not t["needs"] else \
                (t["outcome"] == "failed" and set(t["stopped_by"]) <= set(t["needs"]))
            if not ok:
                bad.append(f"{nodeid}: {t['outcome']} ({t['error']}, stopped by {t['stopped_by']}) "
                           f"with only lesson {number} done; needs {t['needs']}")
        print(f"lesson {number} alone: checked")
    groups = defaultdict(list)  # (lesson, the lessons it needs) -> its tests
    for nodeid, t in tests.items():
        if t["needs"]:
            groups[t["lesson"], tuple(t["needs"])].append(nodeid)
    for (number, needs), nodeids in sorted(groups.items()):
        stripped = [n for n in known if n not in (number, *needs)]
        if not stripped:  # every lesson written: the solution, already graded
            continue
        for nodeid, t in grade(student(tmp, stripped), f"lesson{number}", nodeids)["tests"].items():
            if t["outcome"] != "passed":
                bad.append(f"{nodeid}: {t['outcome']} ({t['error']}, stopped by {t['stopped_by']}) "
                           f"with exactly lessons {number} and {', '.join(needs)} done")
        print(f"lesson {number} with {', '.join(needs)}: {len(nodeids)} tests checked")
    if bad:
        sys.exit("check_assignment: a test's `needs` is wrong:\n" + "\n".join(bad))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--solution", metavar="GRADE_JSON", help="`pytest --grade-json` of the solution")
    p.add_argument("--independence", action="store_true", help="also strip one lesson at a time")
    args = p.parse_args()
    if args.solution:
        check_solution(args.solution)
    known = lessons(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        tests = check_student(Path(tmp), known)
        if args.independence:
            check_independence(Path(tmp), known, tests)


if __name__ == "__main__":
    main()
