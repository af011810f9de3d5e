"""Feature visualisation: what the parameterisation and the transformations cost on top of the network.

Reference: bare forward and backward passes of 224-px photographs to their pixels (a class
score's gradient), the least any step of an image optimisation must do; one image, and a batch
of four. Candidate: `visualise` with a class objective and every default, drawing as many
images: a Fourier spectrum scaled by 1/f, decorrelated colour and a sigmoid, Lucid's
transformation chain (pad, jitter, scale, rotate, jitter, then a cut to the model's 224 px, each
applied in turn), the Adam update and the set-up of the loop. Both on randomly initialised
SqueezeNet 1.1, the same number of steps.
"""

import torch

from benchmarks.harness import Comparison
from vizlib.feature_visualisation import class_score, visualise
from vizlib.images import load_sample_image
from vizlib.models import random_imagenet_model

STEPS = 4


def _on_threads(threads, function):
    """`function` run with torch on `threads` threads (None: as it is), the setting restored after."""
    if threads is None:
        return function

    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return function()
        finally:
            torch.set_num_threads(before)

    return run


def comparisons():
    model = random_imagenet_model("squeezenet1_1", seed=0)
    names = ("chelsea", "coffee", "rocket", "astronaut")
    photographs = torch.cat([load_sample_image(name, size=224) for name in names])
    # one image, and four: notebook 18 draws its channels four to a batch. On one thread too: what the
    # parameterisation and the chain add as work, apart from how well their operations share the cores
    for n, threads in ((1, None), (4, None), (1, 1), (4, 1)):
        images = photographs[:n]
        classes = 1 if n == 1 else list(range(n))

        def forward_backward(images=images):
            for _ in range(STEPS):
                pixels = images.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(model(pixels)[:, 1].sum(), pixels)
            return grad

        def feature_visualisation_steps(classes=classes):
            return visualise(model, class_score(classes), steps=STEPS, show_progress=False).images

        where = "" if threads is None else f", {threads} thread"
        yield Comparison(
            f"feature visualisation, random SqueezeNet, {n} image{'s' if n > 1 else ''} 224px{where}",
            (f"{STEPS}x forward+backward", _on_threads(threads, forward_backward)),
            (f"{STEPS} steps: Fourier, colour, chain", _on_threads(threads, feature_visualisation_steps)),
            goal="speed-up >= 0.77 (parameterisation and chain add < 30%)", repeats=15,
        )
