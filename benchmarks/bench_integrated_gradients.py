"""Integrated Gradients: vizlib against captum's IntegratedGradients at 32 steps, at equal output.

Both sides use the Gauss-Legendre rule, a black baseline and the same batching of path
points (captum's internal_batch_size = vizlib's batch_size); captum runs on the bare network
with the normalisation in front (`captum_network`). That they agree is asserted first.
"""

import warnings

import torch
from captum.attr import IntegratedGradients

from benchmarks.harness import Comparison, captum_network, in_fast_layout, photographs, same_output
from vizlib.course_data import make_shapes
from vizlib.integrated_gradients import integrated_gradients
from vizlib.models import course_model, random_imagenet_model

STEPS = 32


def _pair(model, images, classes, batch_size):
    oracle = IntegratedGradients(captum_network(model))

    def attribute(inputs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return oracle.attribute(inputs, baselines=torch.zeros_like(inputs), target=classes, n_steps=STEPS,
                                    method="gausslegendre", internal_batch_size=batch_size)

    reference = ("captum IntegratedGradients", lambda: attribute(images))
    candidate = ("vizlib integrated_gradients", lambda: integrated_gradients(
        model, images, classes, steps=STEPS, batch_size=batch_size, show_progress=False))
    same_output(("captum IntegratedGradients, same layout", lambda: attribute(in_fast_layout(images))), candidate,
                atol=1e-5)
    return reference, candidate


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(16, "held_out", seed=0)
    yield Comparison(f"Integrated Gradients {STEPS} steps, course model, 16 images 64px",
                     *_pair(model, images, labels, batch_size=128), goal="speed-up >= 1.0", repeats=5)

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photos = photographs(224)[:2]
    yield Comparison(f"Integrated Gradients {STEPS} steps, random SqueezeNet, 2 images 224px",
                     *_pair(squeezenet, photos, torch.tensor([0, 500]), batch_size=16), goal="speed-up >= 1.0",
                     repeats=3)
