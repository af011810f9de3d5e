"""Deletion and insertion curves: every perturbed image batched against one forward pass per step.

The reference runs the model once per step and image, as the authors' reference code does for
one image (`CausalMetric.single_run` of the RISE code); a second reference runs it once per step
for all the images together. vizlib sends all (image, step) pairs through the model
`batch_size` at a time. All give the same curves, asserted before timing.
"""

import math

import torch

from benchmarks.harness import Comparison, photographs, same_output
from vizlib.course_data import make_shapes
from vizlib.evaluation import blurred, perturbation_curves, pixel_ranks
from vizlib.models import course_model, random_imagenet_model
from vizlib.saliency import saliency


def one_forward_per_step(model, images, maps, classes, steps, mode):
    """The curves of all images, with one forward pass per step (each pass holds every image)."""
    n, _, height, width = images.shape
    per_step = math.ceil(height * width / steps)
    ranks = pixel_ranks(maps).view(n, 1, height, width)
    start, end = (images, torch.zeros_like(images)) if mode == "deletion" else (blurred(images), images)
    curves = []
    with torch.no_grad():
        for step in range(steps + 1):
            perturbed = torch.where(ranks < step * per_step, end, start)
            curves.append(model(perturbed).softmax(1).gather(1, classes[:, None])[:, 0])
    return torch.stack(curves, 1)


def one_forward_per_step_and_image(model, images, maps, classes, steps, mode):
    return torch.cat([one_forward_per_step(model, images[i:i + 1], maps[i:i + 1], classes[i:i + 1], steps, mode)
                      for i in range(len(images))])


def _pair(model, images, classes, steps, mode, batch_size, per_image=True):
    maps = saliency(model, images, classes)
    if per_image:
        reference = ("one forward per step and image", lambda: one_forward_per_step_and_image(
            model, images, maps, classes, steps, mode))
    else:
        reference = ("one forward per step, all images", lambda: one_forward_per_step(
            model, images, maps, classes, steps, mode))
    candidate = (f"batched, batch {batch_size}", lambda: perturbation_curves(
        model, images, maps, classes, mode=mode, steps=steps, batch_size=batch_size, show_progress=False))
    return same_output(reference, candidate, atol=1e-5)


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(32, "held_out", seed=0)
    for mode in ("deletion", "insertion"):
        yield Comparison(f"{mode} curves, course model, 32 images, 16 steps", *_pair(
            model, images, labels, 16, mode, batch_size=64), goal="speed-up >= 5", repeats=5)
    yield Comparison("deletion curves, course model, 32 images, 16 steps, batched images", *_pair(
        model, images, labels, 16, "deletion", batch_size=64, per_image=False), goal="report", repeats=5)
    # The ceiling: the same 32 x 17 forward passes one image at a time, and in batches of 64, nothing else.
    copies = images.repeat(17, 1, 1, 1)
    yield Comparison("forward passes alone, course model, 544 images", (
        "one image per pass", lambda: [model(image[None]) for image in copies]), (
        "64 images per pass", lambda: [model(chunk) for chunk in copies.split(64)]),
        goal="report (ceiling of the batched curves)", repeats=5)

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photos = photographs(224)[:4]
    yield Comparison("deletion curves, random SqueezeNet, 4 images 224px, 16 steps", *_pair(
        squeezenet, photos, torch.tensor([0, 1, 2, 3]), 16, "deletion", batch_size=16), goal="report", repeats=3)
