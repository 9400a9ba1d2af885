"""Checks every config shares: one for integers, one for the memory a batch may take.

Covers: `check_int`, which refuses a bool, a float or a number below the least allowed value,
naming the value and what is allowed; `check_batch`, the memory a batch may take, checked before
training rather than met as an allocation error during it.
Leaves out: everything else a config validates (ranges of floats, relations between fields),
which each config says in its own words.
"""


def check_int(name: str, value, least: int = 1) -> int:
    """`value` if it is an int >= `least`; else a ValueError naming `name`, the value and the rule.

    bool is refused although Python counts it as an int: `n_local=True` is a mistake, not a 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}; got {value!r}")
    return value


MAX_BATCH_TOKENS = 1 << 18  # about 4 GB of activations at the default width: fits, or fails now
MAX_SENTENCE = 1024         # the reversal facts are sentences; long texts are the length task's


def check_batch(batch_size: int, longest: int):
    """Refuse, before training, a batch whose activations could not fit in memory: better one
    line now than an allocation error after minutes of training."""
    if batch_size * longest > MAX_BATCH_TOKENS:
        raise ValueError(f"a batch of {batch_size} sequences of up to {longest} tokens is "
                         f"{batch_size * longest} tokens, over the {MAX_BATCH_TOKENS} a batch may "
                         "hold; lower --batch-size")
