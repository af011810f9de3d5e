"""Counts, sizes and indices: positive ints, positive numbers and ints in a range, refused with one wording."""

import numpy as np
import pytest
import torch

from vizlib.counts import check_index, check_int_in_range, check_positive, check_positive_int


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


@pytest.mark.parametrize("value", [0, 3, 63, np.int32(5), torch.tensor(7), torch.tensor([9])])
def test_indices_in_range_pass_as_ints(value):
    checked = check_index(value, 64, "channel")
    assert checked == int(value) and type(checked) is int


@pytest.mark.parametrize("value, error", [
    (64, ValueError), (-1, ValueError), (1.0, TypeError), (True, TypeError), ("2", TypeError),
    (torch.tensor(2.0), TypeError),
])
def test_index_out_of_range_names_the_range_and_the_layer(value, error):
    with pytest.raises(error, match=r"^channel must be an int from 0 to 63 \(layer 'conv3'\), got "):
        check_index(value, 64, "channel", context=" (layer 'conv3')")


def test_int_in_range_without_an_upper_bound_and_an_empty_range():
    assert check_int_in_range(10 ** 6, "padding", 0) == 10 ** 6
    with pytest.raises(ValueError, match=r"^padding must be an int >= 0, got -1$"):
        check_int_in_range(-1, "padding", 0)
    with pytest.raises(ValueError, match="there is no unit to choose"):
        check_index(0, 0, "unit")
