"""Guided backpropagation: vizlib against captum's GuidedBackprop, at equal output.

Both sides compute the guided-backprop map of the given classes, (N, 3, H, W). captum
runs on the bare network with the normalisation in front (`captum_network`), as a
captum user would. That both agree to 1e-6 is asserted before anything is timed, with
captum given the memory layout vizlib's wrapper uses (`in_fast_layout`).
"""

import warnings

import torch
from captum.attr import GuidedBackprop

from benchmarks.harness import Comparison, captum_network, in_fast_layout, photographs, same_output
from vizlib.course_data import make_shapes
from vizlib.guided_backprop import guided_backprop
from vizlib.models import course_model, random_imagenet_model


def _pair(model, images, classes):
    oracle = GuidedBackprop(captum_network(model))

    def attribute(inputs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # captum warns on every call that it sets hooks
            return oracle.attribute(inputs.clone().requires_grad_(True), target=classes)

    reference = ("captum GuidedBackprop", lambda: attribute(images))
    candidate = ("vizlib.guided_backprop", lambda: guided_backprop(model, images, classes))
    same_output(("captum GuidedBackprop, same layout", lambda: attribute(in_fast_layout(images))), candidate)
    return reference, candidate


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(64, "held_out", seed=0)
    yield Comparison("guided backprop, course model, 64 images 64px", *_pair(model, images, labels),
                     goal="speed-up >= 1.0")

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photos = photographs(224)
    classes = torch.arange(8) * 100
    yield Comparison("guided backprop, random SqueezeNet, 8 images 224px", *_pair(squeezenet, photos, classes),
                     goal="speed-up >= 1.2")
