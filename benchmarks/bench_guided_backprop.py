"""Guided backpropagation: vizlib against captum's GuidedBackprop, at equal output.

Both sides compute the guided-backprop map of the given classes, (N, 3, H, W);
that they agree to 1e-6 is asserted before anything is timed.
"""

import warnings

import torch
from captum.attr import GuidedBackprop

from benchmarks.harness import Comparison, photographs, same_output
from vizlib.course_data import make_shapes
from vizlib.guided_backprop import guided_backprop
from vizlib.models import course_model, random_imagenet_model


def _pair(model, images, classes):
    oracle = GuidedBackprop(model)

    def reference():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # captum warns on every call that it sets hooks
            return oracle.attribute(images.clone().requires_grad_(True), target=classes)

    def candidate():
        return guided_backprop(model, images, classes)

    return same_output(("captum GuidedBackprop", reference), ("vizlib.guided_backprop", candidate))


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(64, "held_out", seed=0)
    yield Comparison("guided backprop, course model, 64 images 64px", *_pair(model, images, labels),
                     goal="speed-up >= 1.0")

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photos = photographs(224)
    classes = torch.arange(8) * 100
    yield Comparison("guided backprop, random SqueezeNet, 8 images 224px", *_pair(squeezenet, photos, classes),
                     goal="speed-up >= 1.0")
