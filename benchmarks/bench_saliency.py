"""Saliency maps: vizlib against captum's Saliency, at equal output.

captum returns the absolute gradient per colour channel; the reference takes the
max over the channels after it, so both sides produce the same (N, H, W) maps,
and that is asserted before anything is timed.
"""

import torch
from captum.attr import Saliency

from benchmarks.harness import Comparison
from vizlib.course_data import make_shapes
from vizlib.images import load_sample_image
from vizlib.models import course_model, random_imagenet_model
from vizlib.saliency import saliency


def _pair(model, images, classes):
    oracle = Saliency(model)

    def reference():
        inputs = images.clone().requires_grad_(True)
        return oracle.attribute(inputs, target=classes, abs=True).amax(dim=1)

    def candidate():
        return saliency(model, images, classes, batch_size=len(images))

    difference = (reference() - candidate()).abs().max().item()
    if difference > 1e-6:
        raise AssertionError(f"vizlib and captum saliency maps differ by {difference:.3g}")
    return ("captum Saliency + max over channels", reference), ("vizlib.saliency", candidate)


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(64, "held_out", seed=0)
    yield Comparison("saliency, course model, 64 images 64px", *_pair(model, images, labels),
                     goal="speed-up >= 1.0", repeats=10)

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photos = torch.cat([load_sample_image(name, size=224) for name in
                        ("astronaut", "chelsea", "coffee", "rocket", "china", "flower", "camera", "brick")])
    classes = torch.arange(8) * 100
    yield Comparison("saliency, random SqueezeNet, 8 images 224px", *_pair(squeezenet, photos, classes),
                     goal="speed-up >= 1.0", repeats=10)
