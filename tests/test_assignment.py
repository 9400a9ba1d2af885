"""The student-version generator (tinyrev/assignment.py): regions out, everything else whole, and
its refusals. Tools: graded by no lesson. Most cases use a small repository made in tmp_path."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinyrev.tools.assignment import write_assignment

pytestmark = pytest.mark.tools
ROOT = Path(__file__).resolve().parents[1]

SOURCE = '''\
def double(x):
    """Twice x."""
    # BEGIN SOLUTION lesson01: twice x
    y = x + x
    return y
    # END SOLUTION


class Half:
    def __call__(self, x):
        if x:
            # BEGIN SOLUTION lesson02: half of x
            return x / 2
            # END SOLUTION
        return 0
'''


def repo(tmp_path, source=SOURCE):
    root = tmp_path / "repo"
    (root / "tinyrev").mkdir(parents=True)
    (root / "lessons").mkdir()
    (root / "pyproject.toml").write_text('markers = [\n    "lesson01: one (lessons/01_one.md)",\n'
                                         '    "lesson02: two (lessons/02_two.md)",\n]\n')
    (root / "tinyrev" / "mod.py").write_text(source)
    (root / "lessons" / "01_one.md").write_text("# One\n")
    (root / "runs").mkdir()  # a run directory is never copied
    (root / "runs" / "ckpt.pt").write_bytes(b"\0")
    return root


def load(path):
    scope = {}
    exec(path.read_text(), scope)
    return scope


def test_regions_become_not_implemented_and_the_rest_is_copied(tmp_path):
    counts = write_assignment(tmp_path / "out", repo(tmp_path))
    assert counts == {"01": 1, "02": 1}
    out = tmp_path / "out"
    assert (out / "lessons" / "01_one.md").read_text() == "# One\n" and not (out / "runs").exists()
    scope = load(out / "tinyrev" / "mod.py")
    with pytest.raises(NotImplementedError, match="^Lesson 01: twice x — see lessons/01_one.md$"):
        scope["double"](3)
    with pytest.raises(NotImplementedError, match="Lesson 02: half of x"):
        scope["Half"]()(4)
    assert scope["Half"]()(0) == 0  # code outside a region is untouched


def test_only_the_named_lessons_are_stripped(tmp_path):
    write_assignment(tmp_path / "out", repo(tmp_path), only=["02"])
    scope = load(tmp_path / "out" / "tinyrev" / "mod.py")
    assert scope["double"](3) == 6
    with pytest.raises(NotImplementedError, match="Lesson 02"):
        scope["Half"]()(4)


def test_the_repository_itself_strips_to_a_package_that_compiles(tmp_path):
    """(In a student version there is nothing left to strip: then it is copied as it is.)"""
    counts = write_assignment(tmp_path / "student")
    marked = {line.split("lesson")[1][:2] for path in (ROOT / "tinyrev").rglob("*.py")
              if "tools" not in path.parts
              for line in path.read_text().splitlines() if "# BEGIN SOLUTION lesson" in line}
    assert set(counts) == marked
    for path in (tmp_path / "student" / "tinyrev").rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    assert (tmp_path / "student" / "tests" / "conftest.py").read_text() == \
        (ROOT / "tests" / "conftest.py").read_text()


BAD_MARKERS = {
    "nested": ("def f():\n    # BEGIN SOLUTION lesson01: a\n    # BEGIN SOLUTION lesson01: b\n",
               "mod.py:3: BEGIN SOLUTION inside the region opened at line 2"),
    "never ended": ("def f():\n    # BEGIN SOLUTION lesson01: a\n    x = 2\n",
                    "mod.py:2: BEGIN SOLUTION without an END"),
    "end alone": ("x = 1\n# END SOLUTION\n", "mod.py:2: END SOLUTION without a BEGIN"),
    "unknown lesson": ("def f():\n    # BEGIN SOLUTION lesson09: a\n    x = 1\n",
                       "mod.py:2: unknown lesson09; pyproject.toml registers lesson01, lesson02"),
    "malformed": ("# BEGIN SOLUTION: a\nx = 1\n", "mod.py:1: malformed marker"),
    "at module level": ("# BEGIN SOLUTION lesson01: a\nx = 1\n# END SOLUTION\n",
                        "mod.py:1: a region must lie inside a function's body"),
    "mid-expression": ("def f():\n    return (1,\n    # BEGIN SOLUTION lesson01: a\n    2,\n"
                       "    # END SOLUTION\n    )\n", "mod.py:3: its student version would not compile"),
    "leaves its block": ("def f():\n    # BEGIN SOLUTION lesson01: a\n    x = 1\ny = 2\n",
                         "mod.py:4: the region opened at line 2 leaves its block"),
}


@pytest.mark.parametrize("case", BAD_MARKERS)
def test_bad_markers_are_named_by_file_and_line(tmp_path, case):
    source, message = BAD_MARKERS[case]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        write_assignment(tmp_path / "out", repo(tmp_path, source))
    assert not (tmp_path / "out").exists()  # nothing is written before every region is checked


def one_line_error(*args):
    p = subprocess.run([sys.executable, "-m", "tinyrev.tools.assignment", *args], cwd=ROOT,
                       capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_refuses_a_non_empty_out_dir_and_one_inside_the_repository(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert "exists and is not empty" in one_line_error(str(tmp_path / "full"))
    assert "lies inside the repository" in one_line_error(str(ROOT / "student"))
    assert "--lessons: invalid choice: '07'" in one_line_error(str(tmp_path / "new"), "--lessons", "07")
    assert not (ROOT / "student").exists()


def test_unknown_lesson_on_the_pytest_command_line_is_refused():
    p = subprocess.run([sys.executable, "-m", "pytest", "-m", "lesson09", "--co", "-q"], cwd=ROOT,
                       capture_output=True, text=True)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "unknown lesson marker 'lesson09'" in out and "Traceback" not in out


def test_an_unwritten_region_fails_in_one_line(tmp_path):
    """In the student version, each test stopped by an unwritten region prints one line naming
    it; a real failure (here none) would keep its traceback."""
    write_assignment(tmp_path / "student", only=["01"])
    p = subprocess.run([sys.executable, "-m", "pytest", "-m", "lesson01", "-p", "no:cacheprovider",
                        "-q"], cwd=tmp_path / "student", capture_output=True, text=True)
    # one report line per test (the summary's FAILED lines, cut or not by the terminal's width,
    # come on top)
    unwritten = [line for line in p.stdout.splitlines()
                 if line.startswith("NotImplementedError: Lesson 01: ")]
    failed = re.search(r"(\d+) failed", p.stdout)
    assert p.returncode == 1 and failed and len(unwritten) == int(failed.group(1)) >= 13, \
        p.stdout[-2000:]
    assert all(line.endswith("(unwritten)") for line in unwritten)
    # per test: its one line, a header and a FAILED line in the summary; no traceback anywhere
    assert "Traceback" not in p.stdout and len(p.stdout.splitlines()) <= 3 * len(unwritten) + 5
