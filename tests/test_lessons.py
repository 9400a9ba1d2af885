"""The lessons and the README point at real things: every file, module, command, function and
test they cite exists, so a student following a pointer never lands on nothing."""

import importlib.util
import re
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.tools
ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "lessons").glob("*.md")) + [ROOT / "README.md"]
FILES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("**/*.py")
               if not {".venv", "build", ".git"} & set(p.relative_to(ROOT).parts))
TESTS = "\n".join((ROOT / name).read_text() for name in FILES if name.startswith("tests/"))


def cited(pattern):
    return sorted({(doc.name, m) for doc in DOCS for m in re.findall(pattern, doc.read_text())})


def resolve(path):
    return [f for f in FILES if f == path or f.endswith("/" + path)]


def test_every_cited_python_file_exists():
    missing = [(doc, p) for doc, p in cited(r"`((?:[a-z_]+/)*[a-z_0-9]+\.py)`") if not resolve(p)]
    assert not missing, missing


def test_every_cited_function_is_in_the_file_named_beside_it():
    """`file.py` (`name`, `Class.method`, ...): each name is defined in that file."""
    missing = []
    for doc, (path, names) in cited(r"`((?:[a-z_]+/)*[a-z_0-9]+\.py)` \(([^)]*)\)"):
        source = "\n".join((ROOT / f).read_text() for f in resolve(path))
        for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_.]*)`", names):
            if name.endswith(".py"):
                continue  # another file named beside it, checked by the test above
            if not re.search(rf"^\s*(def|class) {name.split('.')[-1]}\b|^{name} =", source,
                             re.MULTILINE):
                missing.append((doc, path, name))
    assert not missing, missing


def test_every_cited_module_exists():
    missing = [(doc, m) for doc, m in cited(r"python -m (tinyrev(?:\.[a-z_]+)+)")
               if importlib.util.find_spec(m) is None]
    assert not missing, missing


def test_every_cited_test_exists():
    missing = [(doc, name) for doc, name in cited(r"\b(test_[a-z0-9_]+)")
               if not re.search(rf"\bdef {name}\b", TESTS) and f"tests/{name}.py" not in FILES]
    assert not missing, missing


def test_every_figure_is_linked_committed_and_made_by_a_named_command():
    lessons = {doc.name: doc.read_text() for doc in DOCS if doc.parent.name == "lessons"}
    links = {(name, link) for name, text in lessons.items()
             for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)}
    assert not [x for x in links if not (ROOT / "lessons" / x[1]).is_file()], links
    for figure in sorted((ROOT / "lessons" / "figures").glob("*.png")):
        path = f"lessons/figures/{figure.name}"
        commands = [line for text in lessons.values() for line in text.splitlines()
                    if path in line and "python" in line]
        assert commands, f"{path}: no lesson names the command that makes it"


def test_the_figures_command_draws_every_mechanism_figure(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib", reason="the plot extra: pip install -e '.[plot]'")
    from tinyrev.tools import figures
    monkeypatch.setattr("sys.argv", ["figures", str(tmp_path)])
    figures.main()
    for name in figures.DRAWINGS:
        assert (tmp_path / name).stat().st_size > 10_000, name
        assert (ROOT / "lessons" / "figures" / name).is_file(), f"{name} is not committed"
    assert capsys.readouterr().out.count("wrote") == len(figures.DRAWINGS)


def test_rope_figure_curves_are_mirror_images():
    from tinyrev.tools.figures import rope_scores
    offsets, curves = rope_scores()
    assert offsets[0] == -offsets[-1]
    torch.testing.assert_close(curves["reverse"], curves["forward"].flip(0))
    assert not torch.allclose(curves["forward"], curves["forward"].flip(0))  # not symmetric itself
