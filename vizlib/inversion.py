"""Feature inversion (Mahendran & Vedaldi 2015): which images does a layer think are the same?

Given an image x0 and a layer, search for an image x whose features at that layer
match f(x0), starting from noise:

    minimise  ||f(x) - f(x0)||^2 / ||f(x0)||^2  +  tv_weight * TV(x) / pixels

The total-variation term (vizlib.optim.total_variation) prefers smooth images, the
natural-image prior of the paper. What survives in the reconstruction is what the
layer keeps; what changes freely is what it has thrown away.
"""

import torch
from torch import nn

from vizlib.counts import check_positive_int
from vizlib.hooks import forward_to
from vizlib.images import noise_like
from vizlib.optim import optimise_image, total_variation
from vizlib.wrapper import checks_inputs, get_layer, network


@checks_inputs("images", "reference")
def relative_feature_error(model, images, layer, reference):
    """||f(x) - f(x0)|| / ||f(x0)|| per image at `layer` (no gradient)."""
    with torch.no_grad():
        features = forward_to(model, images, layer).flatten(1)
        target = forward_to(model, reference, layer).flatten(1)
    return (features - target).norm(dim=1) / target.norm(dim=1)


def default_layers(model, count=4):
    """`count` ReLU layers spread evenly from the first to the last: shallow to deep (one: the last)."""
    count = check_positive_int(count, "count")
    relus = [name for name, module in network(model).named_modules() if isinstance(module, nn.ReLU)]
    if len(relus) <= count or count == 1:
        return relus[-count:]
    step = (len(relus) - 1) / (count - 1)
    return [relus[round(i * step)] for i in range(count)]


@checks_inputs("images", "init")
def invert(model, images, layer, *, steps=200, lr=0.05, tv_weight=1.0, max_jitter=0, seed=0, init=None,
           show_progress=None):
    """Reconstruct `images` from their features at `layer`; returns an OptimisationResult.

    Starts from `vizlib.images.noise_like(images, seed)` (or `init`). `tv_weight` scales the total
    variation per pixel against the relative feature error; 0 turns the prior off.
    """
    name, _ = get_layer(model, layer)
    if tv_weight < 0:
        raise ValueError(f"tv_weight must be >= 0, got {tv_weight}")
    with torch.no_grad():
        target = forward_to(model, images, name).detach()
    target_norm = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)
    pixels = images.shape[1:].numel()
    if init is None:
        init = noise_like(images, seed)

    def objective(candidate):
        # BEGIN SOLUTION
        features = forward_to(model, candidate, name)
        feature_loss = (features - target).flatten(1).pow(2).sum(1) / target_norm
        return feature_loss.sum() + tv_weight * total_variation(candidate) / pixels
        # END SOLUTION

    return optimise_image(
        objective, init, steps=steps, lr=lr, max_jitter=max_jitter, seed=seed,
        desc=f"inverting {name}", show_progress=show_progress,
    )
