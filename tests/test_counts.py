"""Counts and sizes: positive ints and positive numbers, refused with one wording everywhere."""

import numpy as np
import pytest
import torch

from vizlib.counts import check_positive, check_positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3), torch.tensor(2).item()])
def test_positive_ints_pass_as_ints(value):
    checked = check_positive_int(value, "steps")
    assert checked == int(value) and type(checked) is int


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError), ("4", TypeError), (None, TypeError),
])
def test_positive_int_refuses_with_one_wording(value, error):
    with pytest.raises(error, match=rf"^steps must be a positive int, got {value!r}$"):
        check_positive_int(value, "steps")


def test_positive_number():
    assert check_positive(0.25, "lr") == 0.25 and check_positive(3, "lr") == 3.0
    assert type(check_positive(3, "lr")) is float
    for value, error in ((0, ValueError), (-1e-9, ValueError), (float("nan"), ValueError), (False, TypeError),
                         ("1", TypeError)):
        with pytest.raises(error, match="lr must be a positive number"):
            check_positive(value, "lr")
