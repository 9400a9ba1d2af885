"""One check for the integers every config and function takes, with one form of message.

Covers: `check_int`, which refuses a bool, a float or a number below the least allowed value,
naming the value and what is allowed. Leaves out: everything else a config validates (ranges of
floats, relations between fields), which each config says in its own words.
"""


def check_int(name: str, value, least: int = 1) -> int:
    """`value` if it is an int >= `least`; else a ValueError naming `name`, the value and the rule.

    bool is refused although Python counts it as an int: `n_local=True` is a mistake, not a 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}; got {value!r}")
    return value
