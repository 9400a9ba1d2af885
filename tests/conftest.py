"""Grading by pytest: `pytest --grade` prints, per lesson, tests passed / total and points;
`--grade-json=PATH` writes the same, test by test, for an autograder.

Covers: the two options; a failure caused by an unwritten solution region shown as one line;
the summary, one point per test (each checks one claim of its lesson);
each test's outcome with the lesson whose NotImplementedError stopped it (so that a student
version can be checked: .ci/check_assignment.py) and the lessons it also `needs`; leaving tests
marked `tools` out of every lesson; refusing a -m expression that names a lesson pytest does not
know, with the list of lessons (pytest 9 refuses any unknown marker in -m under --strict-markers;
older ones, which `pytest>=7` admits, would select nothing and exit 5), and refusing to test a
tinyrev other than this repository's.
Leaves out: which tests belong to which lesson (their lessonNN markers) and the tests themselves.
"""

import json
import re
from pathlib import Path

import pytest

import tinyrev

STUB = re.compile(r"NotImplementedError: Lesson (\d\d)")


def pytest_addoption(parser):
    group = parser.getgroup("grading")
    group.addoption("--grade", action="store_true",
                    help="print per lesson: tests passed / total and points")
    group.addoption("--grade-json", metavar="PATH", help="write the grading, test by test, as JSON")


def lesson_titles(config) -> dict:
    """{"01": "the decoder and RoPE ...", ...} from the registered lessonNN markers."""
    lines = (re.match(r"lesson(\d\d): (.*)", m) for m in config.getini("markers"))
    return {m[1]: m[2] for m in lines if m}


def pytest_configure(config):
    # plain `pytest` in a student version, with the solution installed, would grade the solution
    found, here = Path(tinyrev.__file__).resolve().parent, (config.rootpath / "tinyrev").resolve()
    if found != here:
        raise pytest.UsageError(f"these tests would run tinyrev from {found}, not {here}; "
                                "run `python -m pytest` here, or `pip install -e .` here first")
    expression = config.option.markexpr or ""
    known = lesson_titles(config)
    for name in re.findall(r"\blesson\w*", expression):
        if name[len("lesson"):] not in known:
            raise pytest.UsageError(f"-m {expression!r}: unknown lesson marker {name!r}; known: "
                                    + ", ".join(f"lesson{k}" for k in known))
    report = config.option.grade_json
    if report and not Path(report).resolve().parent.is_dir():
        raise pytest.UsageError(f"--grade-json={report}: its folder does not exist; create it "
                                "or give a path in an existing folder")
    if config.option.grade or report:
        config.pluginmanager.register(Grader(known), "tinyrev-grader")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A test marked `tools` may sit in a lesson's file (the lesson's bad input, say) yet runs no
    code a student writes: -m naming a lesson leaves it out (unless it names tools too), and it is
    never graded."""
    expression = config.option.markexpr or ""
    if not re.search(r"\blesson\d\d\b", expression) or re.search(r"\btools\b", expression):
        return
    tools = [item for item in items if item.get_closest_marker("tools")]
    if tools:
        config.hook.pytest_deselected(items=tools)
        items[:] = [item for item in items if not item.get_closest_marker("tools")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test stopped by an unwritten solution region fails in one line that names the region and
    its lesson, instead of a page of traceback; every other failure keeps its traceback."""
    report = (yield).get_result()
    error = call.excinfo.value if call.excinfo else None
    if report.failed and isinstance(error, NotImplementedError) and STUB.match(
            f"NotImplementedError: {error}"):
        report.longrepr = f"NotImplementedError: {error} (unwritten)"


class Grader:
    def __init__(self, titles):
        self.titles, self.tests, self.broken = titles, {}, []

    def pytest_collection_finish(self, session):
        for item in session.items:
            if item.get_closest_marker("tools"):
                continue
            # the closest lesson marker: one on the test itself before its module's
            lesson = next((m.name[len("lesson"):] for m in item.iter_markers()
                           if m.name[len("lesson"):] in self.titles), None)
            if lesson:
                needs = sorted({n for m in item.iter_markers("needs") for n in m.args})
                self.tests[item.nodeid] = {"lesson": lesson, "needs": needs, "outcome": "skipped",
                                           "error": None, "stopped_by": []}

    def pytest_collectreport(self, report):
        if report.failed:
            self.broken.append(report.nodeid)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        test = self.tests.get(item.nodeid)
        if test is None or report.skipped:
            return
        if report.failed:
            test["outcome"] = "failed"
            test["error"] = test["error"] or (call.excinfo.typename if call.excinfo else "failed")
            stopped = set(test["stopped_by"]) | set(STUB.findall(str(report.longrepr)))
            test["stopped_by"] = sorted(stopped)
        elif report.when == "call" and test["outcome"] == "skipped":
            test["outcome"] = "passed"

    def summary(self) -> dict:
        lessons = {}
        for test in self.tests.values():
            s = lessons.setdefault(test["lesson"], {"title": self.titles[test["lesson"]],
                                                    "passed": 0, "total": 0, "needs": set(),
                                                    "needing": 0})
            s["total"] += 1
            s["passed"] += test["outcome"] == "passed"
            s["needs"] |= set(test["needs"])
            s["needing"] += bool(test["needs"])
        for s in lessons.values():
            s.update(points=s["passed"], max_points=s["total"], needs=sorted(s["needs"]))
        return {"lessons": dict(sorted(lessons.items())), "collection_errors": self.broken,
                "tests": self.tests}

    def pytest_terminal_summary(self, terminalreporter, config):
        result = self.summary()
        if config.option.grade_json:
            with open(config.option.grade_json, "w") as f:
                json.dump(result, f, indent=1)
        if not config.option.grade:
            return
        write = terminalreporter.write_line
        terminalreporter.section("grading: one point per test")
        for number, s in result["lessons"].items():
            lessons = "lesson" + "s" * (len(s["needs"]) > 1) + " " + ", ".join(s["needs"])
            also = f"   ({s['needing']} of them also need {lessons})" if s["needs"] else ""
            write(f"lesson {number}  {s['passed']:3d} / {s['total']:3d} tests  "
                  f"{s['points']:3d} / {s['max_points']:3d} points   {s['title']}{also}")
        for nodeid in result["collection_errors"]:
            write(f"not collected, so not graded: {nodeid}")
