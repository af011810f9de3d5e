"""Feature visualisation: what the parameterisation and the transformations cost on top of the network.

Reference: bare forward and backward passes of one 224-px image to its pixels (a class score's
gradient), the least any step of an image optimisation must do. Candidate: `visualise` with a
class objective and every default: a Fourier spectrum scaled by 1/f, decorrelated colour and a
sigmoid, Lucid's transformation chain (pad, jitter, scale, rotate, jitter, then a cut to the
model's 224 px: one resampling), the Adam update and the set-up of the loop. Both on randomly
initialised SqueezeNet 1.1, the same number of steps.
"""

import torch

from benchmarks.harness import Comparison
from vizlib.feature_visualisation import class_score, visualise
from vizlib.images import load_sample_image
from vizlib.models import random_imagenet_model

STEPS = 4


def comparisons():
    model = random_imagenet_model("squeezenet1_1", seed=0)
    image = load_sample_image("chelsea", size=224)

    def forward_backward():
        for _ in range(STEPS):
            pixels = image.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(model(pixels)[:, 1].sum(), pixels)
        return grad

    def feature_visualisation_steps():
        return visualise(model, class_score(1), steps=STEPS, show_progress=False).images

    yield Comparison(
        "feature visualisation, random SqueezeNet, 1 image 224px",
        (f"{STEPS}x forward+backward", forward_backward),
        (f"{STEPS} steps: Fourier, colour, chain", feature_visualisation_steps),
        goal="speed-up >= 0.77 (parameterisation and chain add < 30%)", repeats=7,
    )
