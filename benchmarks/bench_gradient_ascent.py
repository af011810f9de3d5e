"""Gradient ascent: what the regularisers cost on top of the forward and backward pass.

Reference: bare forward and backward passes to the input (the class score's gradient),
the least any gradient-ascent step must do. Candidate: `class_visualisation` with the
default regularised settings for 224 px (jitter, L2 penalty towards grey, Adam update,
clamping, clipping of small values and of small contributions every step, Gaussian blur
every 4th step), run for
one blur period of 4 steps against 4 bare passes, so the per-step ratio includes the
blur's share and the set-up of the loop. Both on randomly initialised SqueezeNet 1.1,
one 224-px photograph.
"""

import torch

from benchmarks.harness import Comparison
from vizlib.gradient_ascent import class_visualisation, settings_for
from vizlib.images import load_sample_image
from vizlib.models import random_imagenet_model

STEPS = 4  # one blur period of the default settings (blur every 4 steps)


def comparisons():
    model = random_imagenet_model("squeezenet1_1", seed=0)
    image = load_sample_image("chelsea", size=224)
    settings = settings_for(model, steps=STEPS)

    def forward_backward():
        for _ in range(STEPS):
            pixels = image.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(model(pixels)[:, 1].sum(), pixels)
        return grad

    def regularised_step():
        return class_visualisation(model, [1], settings=settings, init=image, show_progress=False).images

    yield Comparison(
        "gradient ascent, random SqueezeNet, 1 image 224px",
        (f"{STEPS}x forward+backward", forward_backward), (f"{STEPS} regularised steps", regularised_step),
        goal="speed-up >= 0.83 (regularisers add < 20%)", repeats=7,
    )
