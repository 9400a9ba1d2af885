"""Count lines of code in tinyrev/: python .ci/loc.py

A line counts when it holds code: blank lines, comments and docstrings do not. This is the figure
the README quotes for each file.
"""

import ast
import io
import pathlib
import tokenize

NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}


def code_lines(path: pathlib.Path) -> int:
    src = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in NOT_CODE:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parents[1] / "tinyrev"
    counts = {str(p.relative_to(root)): code_lines(p) for p in sorted(root.rglob("*.py"))}
    for name, n in counts.items():
        print(f"{name:26s} {n:4d}")
    core = ("rope.py", "attention.py", "model.py", "trainer.py")
    print(f"{'rope + attention + model + trainer':34s} {sum(counts[c] for c in core):4d}")
    print(f"{'total':26s} {sum(counts.values()):4d}")
