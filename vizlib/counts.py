"""Counts, sizes and indices checked: a clear error for anything that is not a whole number in its range.

A module of its own, below `vizlib.wrapper` and `vizlib.arguments`, so that both can use it.
"""

import numbers


def check_positive_int(value, name):
    """`value` as an int, or a clear error unless it is a whole number of at least 1 (bool is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_positive(value, name):
    """`value` as a float, or a clear error unless it is a real number above 0 (NaN is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_int_in_range(value, name, low, high=None, *, context=""):
    """`value` as an int, or a clear error unless it is a whole number from `low` to `high` (no upper
    bound when None). numpy integers and one-element tensors count; bool does not. `context` ends
    the message, e.g. " (layer 'features.relu2' has 64 channels)"."""
    if hasattr(value, "numel") and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    span = f"from {low} to {high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int {span}{context}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an int {span}{context}, got {value!r}")
    return int(value)


def check_index(value, count, name, *, context=""):
    """`value` as an int, or a clear error unless it indexes one of `count` things (0 to count - 1)."""
    if count < 1:
        raise ValueError(f"there is no {name} to choose{context}")
    return check_int_in_range(value, name, 0, count - 1, context=context)
