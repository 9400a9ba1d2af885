"""Checks every config shares: one for integers, one for the memory a batch may take, one for a
folder to write into.

Covers: `check_int`, which refuses a bool, a float or a number below the least allowed value,
naming the value and what is allowed; `check_batch`, the memory a batch may take, checked before
training rather than met as an allocation error during it; `check_folder`, a path to write
into that is a file or a link leading nowhere.
Leaves out: everything else a config validates (ranges of floats, relations between fields),
which each config says in its own words.
"""

from pathlib import Path


def check_int(name: str, value, least: int = 1) -> int:
    """`value` if it is an int >= `least`; else a ValueError naming `name`, the value and the rule.

    bool is refused although Python counts it as an int: `n_local=True` is a mistake, not a 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}; got {value!r}")
    return value


def check_folder(path, what: str):
    """Refuse, before any work, a folder to write into that is a file or a broken link."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{what} {path} is a link that leads nowhere (a loop, or a missing "
                         "target); give a folder")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder")


MAX_BATCH_TOKENS = 1 << 18  # about 4 GB of activations at the default width: fits, or fails now
MAX_SENTENCE = 1024         # the reversal facts are sentences; long texts are the length task's


def check_batch(batch_size: int, longest: int):
    """Refuse, before training, a batch whose activations could not fit in memory: better one
    line now than an allocation error after minutes of training."""
    if batch_size * longest > MAX_BATCH_TOKENS:
        raise ValueError(f"a batch of {batch_size} sequences of up to {longest} tokens is "
                         f"{batch_size * longest} tokens, over the {MAX_BATCH_TOKENS} a batch may "
                         "hold; lower --batch-size")
