"""Saliency maps: vizlib against captum's Saliency, at equal output.

captum returns the absolute gradient per colour channel; the reference takes the
max over the channels after it, so both sides produce the same (N, H, W) maps,
and that is asserted before anything is timed.
"""

import torch
from captum.attr import Saliency

from benchmarks.harness import Comparison, photographs, same_output
from vizlib.course_data import make_shapes
from vizlib.models import course_model, random_imagenet_model
from vizlib.saliency import saliency


def _pair(model, images, classes):
    oracle = Saliency(model)

    def reference():
        inputs = images.clone().requires_grad_(True)
        return oracle.attribute(inputs, target=classes, abs=True).amax(dim=1)

    def candidate():
        return saliency(model, images, classes, batch_size=len(images))

    return same_output(("captum Saliency + max over channels", reference), ("vizlib.saliency", candidate))


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(64, "held_out", seed=0)
    yield Comparison("saliency, course model, 64 images 64px", *_pair(model, images, labels),
                     goal="speed-up >= 1.0", repeats=10)

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photos = photographs(224)
    classes = torch.arange(8) * 100
    yield Comparison("saliency, random SqueezeNet, 8 images 224px", *_pair(squeezenet, photos, classes),
                     goal="speed-up >= 1.0", repeats=10)
