"""What the command lines share: one-line errors, exit codes, and argument types checked up front.

Covers: an argument parser whose errors are one line and which takes `--debug`; argument types
(a positive integer, a seed, a non-empty string, a result file that may be written); and `run`,
which turns bad input, a failed write and any unexpected error into `prog: error: ...` with exit
code 2 instead of a traceback (`--debug` shows the traceback).
Leaves out: the programs' own flags.
"""

import argparse
import os
import sys
from pathlib import Path

from .checkpoint import CHECKPOINT, CLAIM

SEEDS = 2 ** 63  # torch.Generator.manual_seed takes a seed below this


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true",
                          help="on an unexpected error, show the whole traceback")

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def refuse_unused(self, args, reads: set, mode: str):
        """One line for a flag given in a mode that does nothing with it: `reads` names the
        flags (their dests) that `mode`, e.g. "with --task length", reads."""
        for action in self._actions:
            value = getattr(args, action.dest, None)
            if action.dest in reads | {"help", "debug"} or value == action.default or \
                    (value == [] and action.nargs == "*"):
                continue
            flag = action.option_strings[-1] if action.option_strings else action.metavar
            self.error(f"{flag} does nothing {mode}; drop it")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip():
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < SEEDS:
        raise argparse.ArgumentTypeError(f"a seed is an integer in [0, 2**63); got {text!r}")
    return value


def nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def output_file(text: str) -> Path:
    """A file to write results to, checked before any work is done: its folder exists and can be
    written, it is not a folder, and it is not a file train.py wrote (a run's checkpoint, claim or
    results, a table of runs), whatever links lead to it."""
    path = Path(nonempty(text))
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give the path of a file")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: the folder {path.parent} does not exist")
    try:
        real = path.resolve(strict=False)  # the file a write would replace
    except RuntimeError:  # a loop of symbolic links
        raise argparse.ArgumentTypeError(f"{path} is a loop of symbolic links") from None
    if real.name.startswith((CHECKPOINT, CLAIM)) or \
            (real.name == "results.json" and (real.parent / CHECKPOINT).exists()) or \
            (real.name == "table.json" and any(real.parent.glob(f"*/{CHECKPOINT}"))):
        where = "" if real == path.absolute() else f" (it leads to {real})"
        raise argparse.ArgumentTypeError(f"{path}{where} is a file train.py wrote in "
                                         f"{real.parent}; writing there would replace it")
    if not os.access(path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"{path}: the folder {path.parent} cannot be written")
    return path


def run(main, prog: str):
    """Call main(); report bad input, numerical failure, a failed read or write and any other
    error as one line with exit code 2 (`--debug`: the traceback instead), Ctrl-C as a hint."""
    try:
        main()
    except (ValueError, FloatingPointError) as e:
        fail(prog, e)
    except OSError as e:
        fail(prog, f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; a run keeps its last checkpoint, if one was due yet "
              f"(every 250 steps by default): continue it with --resume RUN_DIR", file=sys.stderr)
        sys.exit(130)  # the shell's code for Ctrl-C
    except Exception as e:
        if "--debug" in sys.argv:
            raise
        fail(prog, f"unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)")


def fail(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)  # as argparse does for bad flags
