"""DeepDream (Mordvintsev et al. 2015): amplify whatever a layer already sees in an image.

Gradient ascent on 1/2 ||a||^2 for the activations a of one layer, whose
gradient with respect to a is a itself: every feature the layer detects is
pushed to fire harder. The step is normalised by the gradient's mean absolute
value, the image is jittered by a random roll each step, and the work runs over
octaves: small scales first, so large structures form, then finer ones, carrying
the added detail up from octave to octave.
"""

import torch
import torch.nn.functional as F

from vizlib.config import progress
from vizlib.counts import check_positive, check_positive_int
from vizlib.hooks import forward_to
from vizlib.optim import jitter, normalised_step
from vizlib.wrapper import checks_inputs, get_layer


@checks_inputs("images")
def layer_energy(model, images, layer):
    """1/2 ||a||^2 / size: the mean squared activation of `layer`, per image (no gradient)."""
    with torch.no_grad():
        return forward_to(model, images, layer).flatten(1).pow(2).mean(1) / 2


@checks_inputs("images")
def dream_step(model, images, layer, step_size, max_jitter=0, generator=None):
    """One normalised ascent step on the layer's energy; returns new images in [0, 1]."""
    pixels = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        # BEGIN SOLUTION
        activations = forward_to(model, jitter(pixels, max_jitter, generator), layer)
        energy = activations.pow(2).sum() / 2  # d energy / d activations = activations
        (grad,) = torch.autograd.grad(energy, pixels)
        per_pixel = grad.shape[1:].numel()  # the L1-normalised step: grad / mean |grad|
        step = normalised_step(grad, step_size * per_pixel, norm=1)
        # END SOLUTION
    return (images + step).clamp(0, 1)


@checks_inputs("images")
def deepdream(model, images, layer, *, octaves=3, octave_scale=1.4, steps=10, step_size=0.01, max_jitter=8,
              seed=0, show_progress=None):
    """Dream `images` (N, 3, H, W) at `layer`; returns images of the same size, in [0, 1].

    octaves: number of scales, the smallest 1/octave_scale^(octaves-1) of the input;
    steps: ascent steps per octave; step_size: mean absolute pixel change per step.
    """
    name, _ = get_layer(model, layer)
    octaves, steps = check_positive_int(octaves, "octaves"), check_positive_int(steps, "steps")
    if octave_scale <= 1:
        raise ValueError(f"octave_scale must be above 1, got {octave_scale}")
    step_size = check_positive(step_size, "step_size")
    generator = torch.Generator().manual_seed(seed)
    height, width = images.shape[-2:]
    sizes = [
        (max(8, round(height / octave_scale**k)), max(8, round(width / octave_scale**k)))
        for k in reversed(range(octaves))
    ]
    detail = torch.zeros_like(images[..., : sizes[0][0], : sizes[0][1]])
    bar = progress(total=octaves * steps, desc=f"dreaming {name}", enabled=show_progress, leave=False)
    for size in sizes:
        base = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        dream = (base + detail).clamp(0, 1)
        for _ in range(steps):
            dream = dream_step(model, dream, name, step_size, max_jitter, generator)
            bar.update()
        detail = dream - base
    bar.close()
    return dream.detach()
