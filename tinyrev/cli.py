"""What train.py and eval.py share as command-line programs: one-line errors and exit codes.

Covers: an argument parser whose errors are one line, argument types, and a wrapper that turns
the package's ValueErrors into `prog: error: ...` with exit code 2 instead of a traceback.
Leaves out: the programs' own flags.
"""

import argparse
import sys


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip():
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def run(main, prog: str):
    """Call main(); report bad input and numerical failure as one line, Ctrl-C as a hint."""
    try:
        main()
    except (ValueError, FloatingPointError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)  # as argparse does for bad flags
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; the last checkpoint is kept, continue with --resume RUN_DIR",
              file=sys.stderr)
        sys.exit(130)  # the shell's code for Ctrl-C
