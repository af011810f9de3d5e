"""Saliency maps: vizlib against captum's Saliency, at equal output.

captum runs on the bare network with the normalisation in front (`captum_network`),
as a captum user would run it. It returns the absolute gradient per colour channel;
the reference takes the max over the channels after it, so both sides produce the
same (N, H, W) maps. That they agree is asserted before anything is timed, with
captum given the memory layout vizlib's wrapper uses (`in_fast_layout`).
"""

import torch
from captum.attr import Saliency

from benchmarks.harness import Comparison, captum_network, in_fast_layout, photographs, same_output
from vizlib.course_data import make_shapes
from vizlib.models import course_model, random_imagenet_model
from vizlib.saliency import saliency


def _pair(model, images, classes):
    oracle = Saliency(captum_network(model))

    def attribute(inputs):
        return oracle.attribute(inputs.clone().requires_grad_(True), target=classes, abs=True).amax(dim=1)

    reference = ("captum Saliency + max over channels", lambda: attribute(images))
    candidate = ("vizlib.saliency", lambda: saliency(model, images, classes, batch_size=len(images)))
    same_output(("captum Saliency, same layout", lambda: attribute(in_fast_layout(images))), candidate)
    return reference, candidate


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(64, "held_out", seed=0)
    yield Comparison("saliency, course model, 64 images 64px", *_pair(model, images, labels),
                     goal="speed-up >= 1.0", repeats=10)

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photos = photographs(224)
    classes = torch.arange(8) * 100
    yield Comparison("saliency, random SqueezeNet, 8 images 224px", *_pair(squeezenet, photos, classes),
                     goal="speed-up >= 1.2", repeats=10)
