"""Facts folders: the reversal experiment's data as files, in Berglund et al.'s experiment-1 format.

Covers: reading a folder of JSONL files, one {"prompt": ..., "completion": ...} object per line,
into the records that `facts.build` turns into training and test data, with one clear error for
each way a folder can be wrong; writing records back out (`train.py --write-facts`); and
`python -m tinyrev.reversal.factsio DIR`, which prints what a model would be trained and tested on.
Leaves out: tokenizing (facts.build), and the other files of Berglund's folder (validation
prompts, which the paper uses for fine-tuning choices tinyrev does not make).
"""

import json
import re
import sys
from pathlib import Path

from .facts import TEST_FILES, TRAIN_FILES, TWIN, build, describe
from ..checks import check_folder
from ..tokenizer import check_plain

REQUIRED = TRAIN_FILES + tuple(TEST_FILES.values())


def _read_lines(path: Path) -> list:
    """[(line number, prompt, completion)] of one JSONL file; blank lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except OSError as e:
        raise ValueError(f"cannot read {path} ({e.strerror})") from None
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {n} is not valid JSON ({e.msg})") from None
        except RecursionError:
            raise ValueError(f"{path} line {n} nests too deeply to be a prompt/completion "
                             "line") from None
        if not isinstance(obj, dict):
            raise ValueError(f'{path} line {n} is a JSON {type(obj).__name__}, not an object '
                             'like {"prompt": "...", "completion": "..."}')
        for key in ("prompt", "completion"):
            if key not in obj:
                raise ValueError(f'{path} line {n} has no "{key}"; every line needs '
                                 '{"prompt": "...", "completion": "..."}')
            if not isinstance(obj[key], str):
                raise ValueError(f'{path} line {n}: "{key}" must be a string, got '
                                 f"{type(obj[key]).__name__}")
            try:
                check_plain(obj[key])
            except ValueError as e:
                raise ValueError(f'{path} line {n}, "{key}": {e}') from None
        lines.append((n, obj["prompt"], obj["completion"]))
    return lines


def read(folder) -> dict:
    """The records of a facts folder: {file name without .jsonl: [(prompt, completion), ...]}.

    The three training files and the five test files are required; a test's `_randomized` twin
    is optional, and where it is missing that is said once and the test's log-prob margin skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"no facts folder at {folder}" if not folder.exists() else
                         f"{folder} is a file; --facts wants a folder of .jsonl files")
    for name in REQUIRED:
        if (folder / f"{name}.jsonl").is_dir():
            raise ValueError(f"{folder / name}.jsonl is a folder; it should be a file of lines")
        if not (folder / f"{name}.jsonl").is_file():
            raise ValueError(f"{folder} has no {name}.jsonl; a facts folder needs "
                             f"{', '.join(REQUIRED)} (each .jsonl)")
    lines = {name: _read_lines(folder / f"{name}.jsonl") for name in REQUIRED}
    if not any(lines[name] for name in TRAIN_FILES):
        raise ValueError(f"{folder}: the training files ({', '.join(TRAIN_FILES)}) hold no lines")
    for name in TEST_FILES.values():
        if not lines[name]:
            raise ValueError(f"{folder / name}.jsonl holds no lines; every test needs at least one")
    for name in REQUIRED:
        for n, _, completion in lines[name]:
            if not re.search(r"\w", completion):
                raise ValueError(f"{folder / name}.jsonl line {n}: the completion {completion!r} "
                                 "holds no word; every fact needs an answer")

    no_twin = []
    for test, name in TEST_FILES.items():
        path = folder / f"{name}{TWIN}.jsonl"
        if not path.is_file():
            no_twin.append(test)
            continue
        twins = lines[name + TWIN] = _read_lines(path)
        if len(twins) != len(lines[name]):
            raise ValueError(f"{path} has {len(twins)} lines and {name}.jsonl {len(lines[name])}; "
                             "a twin gives each test line, in order, another person's answer")
        for (n, prompt, _), (_, asked, _) in zip(twins, lines[name]):
            if prompt != asked:
                raise ValueError(f"{path} line {n}: its prompt differs from {name}.jsonl's; a "
                                 "twin repeats each test prompt with another person's answer")
    if no_twin:
        print(f"{folder}: no {TWIN} twin for {', '.join(no_twin)}; "
              "the log-prob margin of those tests is skipped")
    return {name: [(p, c) for _, p, c in got] for name, got in lines.items()}


def write(records: dict, folder):
    """Write records as a facts folder (UTF-8 JSONL), refusing to overwrite any file."""
    folder = Path(folder)
    check_folder(folder, "the facts folder")
    taken = [name for name in records if (folder / f"{name}.jsonl").exists()]
    if taken:
        raise ValueError(f"{folder} already holds {taken[0]}.jsonl; write the facts to another "
                         "folder (nothing was overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in records.items():
        text = "".join(json.dumps({"prompt": p, "completion": c}, ensure_ascii=False) + "\n"
                       for p, c in lines)
        (folder / f"{name}.jsonl").write_text(text, encoding="utf-8")


if __name__ == "__main__":  # python -m tinyrev.reversal.factsio DIR
    from ..cli import run

    def main():
        if len(sys.argv) != 2 or not sys.argv[1].strip():
            raise ValueError("usage: python -m tinyrev.reversal.factsio FACTS_DIR")
        print(describe(build(read(sys.argv[1]))))

    run(main, "tinyrev.reversal.factsio")
