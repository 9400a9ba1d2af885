"""The student version of tinyrev: `python -m tinyrev.tools.assignment OUT_DIR [--lessons 03 ...]`.

Covers: copying the repository (its git-tracked files, or, outside git, every file but .git,
.venv, runs and caches) into a new OUT_DIR, with each solution region in tinyrev/ replaced by a
`raise NotImplementedError` that names its lesson and the lesson's file; `--lessons` strips only
the regions of the lessons named. Lessons, tests and tinyrev/tools/ are copied whole.
Leaves out: grading, which is pytest's (`pytest --grade`, tests/conftest.py).

A solution region is a whole indented block between two comment lines, the BEGIN line at the
block's own indentation:

    # BEGIN SOLUTION lessonNN: what the student writes, in a few words
    ...the reference code...
    # END SOLUTION

The student gets `raise NotImplementedError("Lesson NN: what ... — see lessons/NN_....md")` at
that indentation. Regions never nest. A lesson is known when pyproject.toml registers its pytest
marker, whose description names the lesson's file: one list for pytest and for this module.
"""

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from ..cli import Parser

ROOT = Path(__file__).resolve().parents[2]
TOOLS = "tinyrev/tools/"  # course and machine tooling: no student writes it, so never stripped
BEGIN = re.compile(r"^( *)# BEGIN SOLUTION lesson(\d\d): (.+?)\s*$")
END = re.compile(r"^ *# END SOLUTION\s*$")
LESSON_MARKER = re.compile(r'"lesson(\d\d): [^"]*\((lessons/[^)]+\.md)\)"')
NOT_COPIED = {".git", ".venv", "runs", "__pycache__", ".pytest_cache", "build"}


def lessons(root: Path) -> dict:
    """{"03": "lessons/03_reversal_curse.md", ...} from the lesson markers in pyproject.toml."""
    return dict(LESSON_MARKER.findall((root / "pyproject.toml").read_text()))


def strip(text: str, where: str, known: dict, only) -> tuple:
    """`text` with each region of a lesson in `only` (all lessons if None) replaced by its raise,
    and the lesson numbers of the regions replaced."""
    out, done, opened = [], [], None  # opened: the open region's (line, indentation, kept whole)
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        begin, end = BEGIN.match(line), END.match(line)
        if not (begin or end) and re.search(r"#\s*(BEGIN|END) SOLUTION", line):
            raise ValueError(f"{where}:{n}: malformed marker; write '# BEGIN SOLUTION lessonNN: "
                             "what to write' or '# END SOLUTION', each on its own line")
        if begin:
            indent, number, what = begin.groups()
            if opened:
                raise ValueError(f"{where}:{n}: BEGIN SOLUTION inside the region opened at line "
                                 f"{opened[0]}; regions do not nest")
            if not indent:
                raise ValueError(f"{where}:{n}: a region must lie inside a function's body; at the "
                                 "top of a module its raise would stop every import")
            if number not in known:
                raise ValueError(f"{where}:{n}: unknown lesson{number}; pyproject.toml registers "
                                 f"{', '.join('lesson' + k for k in sorted(known))}")
            opened = (n, indent, only is not None and number not in only)
            if not opened[2]:
                message = f"Lesson {number}: {what} — see {known[number]}"
                out.append(f"{indent}raise NotImplementedError({message!r})\n")
                done.append(number)
        elif end:
            if not opened:
                raise ValueError(f"{where}:{n}: END SOLUTION without a BEGIN")
            opened = None
        elif opened and line.strip() and not line.startswith(opened[1]):
            raise ValueError(f"{where}:{n}: the region opened at line {opened[0]} leaves its block "
                             "before END SOLUTION")
        elif not opened or opened[2]:
            out.append(line)
    if opened:
        raise ValueError(f"{where}:{opened[0]}: BEGIN SOLUTION without an END SOLUTION")
    return "".join(out), done


def repository_files(root: Path) -> list:
    """The files a copy holds: git's tracked ones, or a walk that skips what git would ignore."""
    if (root / ".git").exists():
        git = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
        return [p for p in git.stdout.decode().split("\0") if p and (root / p).is_file()]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in NOT_COPIED and not d.endswith(".egg-info")]
        found += [str(Path(folder, f).relative_to(root)) for f in files]
    return found


def write_assignment(out, root: Path = ROOT, only=None) -> dict:
    """Write the student version of `root` into `out`; return {lesson: regions replaced}."""
    out, root = Path(out).resolve(), root.resolve()
    if out == root or root in out.parents:
        raise ValueError(f"OUT_DIR {out} lies inside the repository {root}; choose one outside")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"OUT_DIR {out} exists and is not empty; give a new or empty directory")
    known = lessons(root)
    files, stripped, counts = repository_files(root), {}, Counter()
    for rel in files:  # every region is checked before anything is written
        if rel.startswith("tinyrev/") and rel.endswith(".py") and not rel.startswith(TOOLS):
            stripped[rel], done = strip((root / rel).read_text(), rel, known, only)
            try:
                compile(stripped[rel], rel, "exec")
            except SyntaxError as e:
                raise ValueError(f"{rel}:{e.lineno}: its student version would not compile "
                                 f"({e.msg})")
            counts.update(done)
    for rel in files:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel in stripped:
            (out / rel).write_text(stripped[rel])
        else:
            shutil.copy2(root / rel, out / rel)
    return dict(sorted(counts.items()))


def main(argv=None):
    p = Parser(prog="python -m tinyrev.tools.assignment", description=__doc__.splitlines()[0])
    p.add_argument("out", metavar="OUT_DIR", help="a new directory outside the repository")
    p.add_argument("--lessons", nargs="+", choices=sorted(lessons(ROOT)),
                   help="strip only these lessons' regions (default: every lesson's)")
    args = p.parse_args(argv)
    try:
        counts = write_assignment(args.out, only=args.lessons)
    except ValueError as e:
        p.error(str(e))
    except OSError as e:  # a folder that cannot be written, a full disk
        p.error(f"cannot write the student version to {args.out} ({e.strerror or e}: "
                f"{e.filename})")
    print(f"wrote the student version to {args.out}: "
          + ", ".join(f"lesson {k}: {n} regions" for k, n in counts.items()))


if __name__ == "__main__":
    from ..cli import run
    run(main, "python -m tinyrev.tools.assignment")  # anything unforeseen: one line too
