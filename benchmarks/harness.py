"""Side-by-side timing: a candidate against a named reference, in one process.

Each `Comparison` times a reference and a candidate alternately (so drifts in
machine load hit both), repeats, and reports medians and the speed-up
reference / candidate. Ratios, not absolute times, are what carry from one
machine to another. `same_output` checks that both sides compute the same thing
before anything is timed.
"""

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torchvision.transforms import Normalize

from vizlib.wrapper import FAST_MEMORY_FORMAT


@dataclass
class Comparison:
    name: str                            # what is compared, e.g. "occlusion, course model"
    reference: tuple[str, Callable]      # (label, zero-argument function)
    candidate: tuple[str, Callable]
    goal: str = ""                       # e.g. "speed-up >= 1.0"
    repeats: int = 5


@dataclass
class Result:
    comparison: Comparison
    reference_seconds: float
    candidate_seconds: float

    @property
    def speedup(self):
        return self.reference_seconds / self.candidate_seconds


def run(comparison, *, clock=time.perf_counter, warmup=1):
    """Time both sides alternately `repeats` times after `warmup` untimed calls each."""
    (_, reference), (_, candidate) = comparison.reference, comparison.candidate
    for _ in range(warmup):
        reference()
        candidate()
    times = {"reference": [], "candidate": []}
    for _ in range(comparison.repeats):
        for side, fn in (("reference", reference), ("candidate", candidate)):
            start = clock()
            fn()
            times[side].append(clock() - start)
    return Result(comparison, statistics.median(times["reference"]), statistics.median(times["candidate"]))


def format_table(results):
    header = ("benchmark", "reference", "ref ms", "candidate", "cand ms", "speed-up", "goal")
    rows = [header] + [
        (
            r.comparison.name,
            r.comparison.reference[0], f"{r.reference_seconds * 1e3:.1f}",
            r.comparison.candidate[0], f"{r.candidate_seconds * 1e3:.1f}",
            f"{r.speedup:.2f}x", r.comparison.goal,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def same_output(reference, candidate, *, atol=1e-6):
    """(label, fn) pairs whose outputs agree within `atol`, else an AssertionError; returns them."""
    (reference_label, reference_fn), (candidate_label, candidate_fn) = reference, candidate
    difference = (reference_fn() - candidate_fn()).abs().max().item()
    if difference > atol:
        raise AssertionError(f"{candidate_label} and {reference_label} differ by {difference:.3g}")
    return reference, candidate


def photographs(size=224):
    """The first eight offline photographs (vizlib.datasets.PHOTOGRAPHS), (8, 3, size, size): the
    ImageNet-sized inputs of the benchmarks."""
    from vizlib.datasets import PHOTOGRAPHS
    from vizlib.images import load_sample_image

    return torch.cat([load_sample_image(name, size=size) for name in PHOTOGRAPHS[:8]])


def captum_network(model):
    """What a captum user attributes: the bare network of a VizModel with torchvision's Normalize in front.

    The reference then runs as captum runs outside the course, not through vizlib's wrapper
    (whose fast memory format would speed up the reference too). Same weights, no copy.
    """
    normalise = Normalize(model.mean.flatten().tolist(), model.std.flatten().tolist())
    return nn.Sequential(normalise, model.net).eval()


def in_fast_layout(images):
    """The images in the memory format vizlib's wrapper feeds the network on their device.

    A reference fed these is what to check vizlib's output against: where a max-pooling
    window holds tied maxima (as the flat colours of the course images give), the layout
    decides which input the gradient flows to. Both routes are valid gradients; they differ.
    """
    return images.to(memory_format=FAST_MEMORY_FORMAT.get(images.device.type, torch.preserve_format))
