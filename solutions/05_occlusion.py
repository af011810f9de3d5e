"""Reference solutions to the exercises of notebook 05 (instructor only; the student release leaves this folder out)."""

import math
import time

import torch

from vizlib.datasets import images_for_model
from vizlib.models import course_model
from vizlib.occlusion import largest_drop_points, occlusion, window_starts

SEED = 0
WINDOW, STRIDE = 8, 8  # the notebook's window; a stride of a whole window keeps these runs quick on a CPU


def claim_set(n=12):
    """New held-out images, as in the notebook's claim (fast size)."""
    model = course_model()
    images, labels, masks = images_for_model(model, n, seed=2024)
    return model, images.to(model.device), labels.to(model.device), masks


def hit_rate(result, masks):
    points = largest_drop_points(result).cpu()
    return masks[torch.arange(len(masks)), points[:, 0], points[:, 1]].float().mean().item()


def exercise_1():
    """Black, grey and white fill."""
    model, images, labels, masks = claim_set()
    results = {fill: occlusion(model, images, labels, window=WINDOW, stride=STRIDE, fill=fill, batch_size=64,
                               show_progress=False) for fill in (0.0, 0.5, 1.0)}
    rates = {fill: hit_rate(r, masks) for fill, r in results.items()}
    grey = results[0.5].maps.flatten(1).cpu()
    correlation = {fill: torch.stack([torch.corrcoef(torch.stack([a, b]))[0, 1] for a, b in
                                      zip(results[fill].maps.flatten(1).cpu(), grey)]).mean().item()
                   for fill in (0.0, 1.0)}
    print(f"hit rates by fill {rates}; mean correlation of the map with the grey-fill map {correlation}")
    assert min(rates.values()) > 0.6, "the peak stays on the object whatever the fill"
    assert min(correlation.values()) > 0.85, "the maps barely change with the fill on the course model"


def exercise_2():
    """Probability against logit maps on confident predictions."""
    model, images, labels, _ = claim_set()
    logit = occlusion(model, images, labels, window=WINDOW, stride=STRIDE, batch_size=64, show_progress=False)
    prob = occlusion(model, images, labels, window=WINDOW, stride=STRIDE, batch_size=64, score="probability",
                     show_progress=False)
    confident = prob.scores > 0.99
    # share of windows whose drop is under 5% of that image's largest drop: "flat"
    flat = lambda grid: (grid.abs() < 0.05 * grid.flatten(1).abs().max(1).values[:, None, None]).float()  # noqa: E731
    flat_prob = flat(prob.grid[confident]).mean().item()
    flat_logit = flat(logit.grid[confident]).mean().item()
    print(f"{int(confident.sum())} confident images: flat windows, probability {flat_prob:.0%}, logit {flat_logit:.0%}")
    assert confident.sum() >= 5 and flat_prob > flat_logit + 0.15


def exercise_3():
    """Forward passes for 224 px, window 16, stride 8 and 4; timing against batch size."""
    counts = {}
    for stride in (8, 4):
        per_side = math.ceil((224 - 16) / stride) + 1  # the notebook's formula, written out
        assert per_side == len(window_starts(224, 16, stride))
        counts[stride] = per_side ** 2
    print(f"forward passes per image: stride 8 -> {counts[8]}, stride 4 -> {counts[4]} "
          f"({counts[4] / counts[8]:.2f}x)")
    assert counts[8] == 729 and 3.5 < counts[4] / counts[8] < 4.0, "halving the stride about quadruples the count"
    model, images, labels, _ = claim_set(2)
    for batch_size in (8, 64):
        start = time.perf_counter()
        occlusion(model, images, labels, window=WINDOW, stride=STRIDE, batch_size=batch_size, show_progress=False)
        print(f"batch_size {batch_size}: {time.perf_counter() - start:.2f} s for {len(images)} images")


def exercise_4():
    """Occluding for a wrong class."""
    model, images, labels, masks = claim_set()
    wrong = (labels + 1) % len(model.class_names)
    inside = masks.to(images.device).float()
    drops = {}
    for name, classes in (("true", labels), ("wrong", wrong)):
        maps = occlusion(model, images, classes, window=WINDOW, stride=STRIDE, batch_size=64,
                         show_progress=False).maps
        drops[name] = ((maps * inside).flatten(1).sum(1) / inside.flatten(1).sum(1)).mean().item()
    print(f"mean drop on the object: true class {drops['true']:.2f}, wrong class {drops['wrong']:.2f}")
    assert drops["true"] > 0 > drops["wrong"], "hiding the object helps a wrong class"


def colour_outlier_points(images):
    """A baseline that looks at the pixels only: the pixel whose colour is farthest from the image's median colour."""
    median = images.flatten(2).median(2).values[:, :, None, None]
    distance = (images - median).norm(dim=1).flatten(1)
    index = distance.argmax(1)
    return torch.stack([index // images.shape[-1], index % images.shape[-1]], 1)


def exercise_5():
    """A baseline that reads the pixels (the most unusual colour) against the centre and occlusion."""
    model, images, labels, masks = claim_set(24)
    result = occlusion(model, images, labels, window=WINDOW, stride=STRIDE, batch_size=64, show_progress=False)
    points = colour_outlier_points(images).cpu()
    rows = torch.arange(len(masks))
    colour = masks[rows, points[:, 0], points[:, 1]].float().mean().item()
    centre = masks[:, 32, 32].float().mean().item()
    occluded = hit_rate(result, masks)
    print(f"hit rates: centre {centre:.1%}, colour outlier {colour:.1%}, occlusion {occluded:.1%}")
    assert occluded >= 1.4 * max(centre, colour), "occlusion beats both baselines by far"
