"""Counts and sizes checked: a clear error for anything that is not a positive int or number.

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
