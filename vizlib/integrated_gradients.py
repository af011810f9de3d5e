"""Integrated Gradients (Sundararajan et al. 2017) and Gradient x Input.

A saliency map is the gradient at one image. Integrated Gradients averages the gradient
along the straight path from a *baseline* image x' (black, grey, blurred, noise) to the
image x, and multiplies by the distance travelled:

    IG_i(x) = (x_i - x'_i) * integral_0^1 dS_c/dx_i (x' + a (x - x')) da

By the fundamental theorem of calculus along the path, the attributions add up to the
score difference S_c(x) - S_c(x') ("completeness"), whatever the network. The integral
is a weighted sum over `steps` points of the path, by one of the rules in `RULES` (the
same names and points as captum's `IntegratedGradients`); the points go through the
model `batch_size` at a time, so memory stays bounded whatever `steps` is. Every rule's
weights add up to 1, so a constant gradient is integrated exactly; captum's trapezoid
rule gives its n points the weights of n + 1 (the sum is (n - 1) / n), which this
module does not copy.

Gradient x Input, (x - x') times the gradient at x alone, is the one-point version.
"""

import numpy as np
import torch

from vizlib.arguments import DEFAULT_BATCH_SIZE, check_batch_size, resolve_classes
from vizlib.config import progress
from vizlib.counts import check_positive_int
from vizlib.images import GREY, check_images, noise_like
from vizlib.optim import gaussian_blur, score_gradient
from vizlib.wrapper import checks_inputs

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
BASELINES = ("black", "grey", "blur", "noise")
BLUR_SIGMA = 5.0  # pixels: the course's shapes lose their outlines; a coloured blob of their size stays


def path_rule(steps, rule="gausslegendre"):
    """Points a_1..a_steps in [0, 1] and weights w_1..w_steps: integral_0^1 g(a) da ~ sum_k w_k g(a_k)."""
    steps = check_positive_int(steps, "steps")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    k = np.arange(steps, dtype=np.float64)
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1) / 2, weights / 2
    elif rule == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("the trapezoid rule needs at least 2 steps (both ends of the path)")
        alphas = k / (steps - 1)
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
    else:
        offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
        alphas, weights = (k + offset) / steps, np.full(steps, 1 / steps)
    return torch.from_numpy(alphas), torch.from_numpy(weights)


def make_baselines(images, kind="black", *, seed=0):
    """The baseline image for each image: "black", "grey" (0.5), "blur" (Gaussian, sigma 5 px) or
    "noise" (uniform in [0, 1], seeded), or a tensor of the images' shape checked and returned."""
    check_images(images)
    if isinstance(kind, torch.Tensor):
        check_images(kind, name="baselines")
        if kind.shape != images.shape:
            raise ValueError(f"baselines of shape {tuple(kind.shape)} do not match the images {tuple(images.shape)}")
        return kind.to(images.device, images.dtype)
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "grey":
        return torch.full_like(images, GREY)
    if kind == "blur":
        return gaussian_blur(images.detach(), BLUR_SIGMA).clamp(0, 1)
    if kind == "noise":
        return noise_like(images, seed)
    raise ValueError(f"baselines must be one of {', '.join(BASELINES)} or a tensor like the images, got {kind!r}")


@checks_inputs("images", "baselines")
def integrated_gradients(model, images, classes=None, *, baselines="black", steps=32, rule="gausslegendre",
                         batch_size=DEFAULT_BATCH_SIZE, seed=0, show_progress=None):
    """Integrated Gradients (N, 3, H, W) of the unnormalised class scores.

    classes: None (each image's predicted class), one int for all, or one index per image.
    baselines: a name in BASELINES (a "noise" baseline is drawn with `seed`) or a tensor.
    The steps x N path points are evaluated `batch_size` at a time.
    """
    check_batch_size(batch_size)
    alphas, weights = path_rule(steps, rule)
    baselines = make_baselines(images, baselines, seed=seed)
    classes = resolve_classes(model, images, classes)
    images = images.detach()
    n = len(images)
    alphas = alphas.to(images.device, images.dtype)
    weights = weights.to(images.device, images.dtype)
    summed = torch.zeros_like(images)
    pairs = torch.arange(steps * n, device=images.device)      # pair p: path point p // n of image p % n
    for chunk in progress(pairs.split(batch_size), desc="Integrated Gradients", enabled=show_progress, leave=False):
        point, image = chunk // n, chunk % n
        # BEGIN SOLUTION
        a = alphas[point].view(-1, 1, 1, 1)
        path_images = baselines[image] + a * (images[image] - baselines[image])
        grad = score_gradient(model, path_images, classes[image]).gradients
        summed.index_add_(0, image, weights[point].view(-1, 1, 1, 1) * grad)
        # END SOLUTION
    return (images - baselines) * summed


@checks_inputs("images", "baselines")
def gradient_x_input(model, images, classes=None, *, baselines="black", batch_size=DEFAULT_BATCH_SIZE, seed=0):
    """(x - x') times the gradient at x (N, 3, H, W); with a black baseline, the classic gradient x input."""
    check_batch_size(batch_size)
    baselines = make_baselines(images, baselines, seed=seed)
    classes = resolve_classes(model, images, classes)
    grads = [score_gradient(model, chunk, part).gradients
             for chunk, part in zip(images.split(batch_size), classes.split(batch_size))]
    if not grads:
        return torch.zeros_like(images)
    return (images.detach() - baselines) * torch.cat(grads)


@checks_inputs("images", "baselines")
def score_differences(model, images, baselines, classes=None):
    """S_c(x) - S_c(x') per image (N,): what completeness says the attributions add up to."""
    classes = resolve_classes(model, images, classes)
    with torch.no_grad():
        ends = model(torch.cat([images, baselines])).gather(1, classes.repeat(2)[:, None])[:, 0]
    return ends[:len(images)] - ends[len(images):]


@checks_inputs("images", "baselines")
def completeness_error(model, images, attributions, classes=None, *, baselines="black", seed=0):
    """|sum of attributions - (S_c(x) - S_c(x'))| per image (N,), relative to |S_c(x) - S_c(x')|."""
    baselines = make_baselines(images, baselines, seed=seed)
    if attributions.shape != images.shape:
        raise ValueError(f"attributions of shape {tuple(attributions.shape)} "
                         f"do not match the images {tuple(images.shape)}")
    difference = score_differences(model, images, baselines, classes)
    total = attributions.flatten(1).sum(1)
    return (total - difference).abs() / difference.abs().clamp_min(1e-12)
