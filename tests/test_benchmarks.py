"""The benchmark harness: its arithmetic on a fake clock (no timing in tests), and the captum side it builds."""

import itertools

import pytest
import torch

from benchmarks.harness import (
    Comparison, captum_network, format_table, in_fast_layout, photographs, run, same_output,
)
from vizlib.wrapper import VizModel


def test_medians_and_speedup_from_alternating_calls():
    calls = []
    comparison = Comparison(
        "demo", ("slow", lambda: calls.append("ref")), ("fast", lambda: calls.append("cand")), repeats=3
    )
    # clock readings: each call's start and end; reference takes 4, 6, 5 s and candidate 1, 2, 3 s
    ticks = itertools.accumulate([0, 4, 0, 1, 0, 6, 0, 2, 0, 5, 0, 3])
    result = run(comparison, clock=lambda: next(ticks), warmup=1)
    assert calls == ["ref", "cand"] * 4  # one warm-up each, then alternating
    assert result.reference_seconds == 5 and result.candidate_seconds == 2
    assert result.speedup == 2.5
    table = format_table([result])
    assert "2.50x" in table and "slow" in table and "fast" in table


def test_same_output_passes_equal_sides_through_and_refuses_different_ones():
    reference, candidate = ("ones", lambda: torch.ones(3)), ("almost ones", lambda: torch.ones(3) + 1e-8)
    assert same_output(reference, candidate) == (reference, candidate)
    with pytest.raises(AssertionError, match=r"off and ones differ by 0\.001"):
        same_output(reference, ("off", lambda: torch.ones(3) + 1e-3))


def test_photographs_are_eight_course_images():
    photos = photographs(32)
    assert photos.shape == (8, 3, 32, 32) and 0 <= photos.min() and photos.max() <= 1
    assert len({tuple(photo.flatten()[:50].tolist()) for photo in photos}) == 8     # eight different pictures


def test_captums_network_is_the_bare_network_behind_torchvisions_normalize(course):
    network = captum_network(course)
    assert network[1] is course.net and not any(isinstance(m, VizModel) for m in network.modules())
    images = photographs(64)
    with torch.no_grad():
        torch.testing.assert_close(network(images), course(images), rtol=1e-5, atol=1e-5)


def test_the_fast_layout_is_the_one_the_wrapper_feeds_the_network(course):
    images = photographs(16)
    assert in_fast_layout(images).is_contiguous(memory_format=torch.channels_last)   # on the CPU
    assert torch.equal(in_fast_layout(images), images)
