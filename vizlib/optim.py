"""Pieces shared by every technique that differentiates or optimises pixels (notebooks 06-14).

- `score_gradient`: class scores and their gradient with respect to the input image.
- `normalised_step`: a step of fixed length along the gradient, per image.
- `total_variation`: the smoothness penalty of feature inversion and style transfer.
- `jitter`, `gaussian_blur`: the image regularisers of gradient ascent and DeepDream.
- `optimise_image`: the loop that runs them all, with a progress bar and a divergence check;
  it also optimises a parameterised image (a module that draws the images from its own
  tensors, notebook 18) through a chain of random transformations.

Gradients are taken with `torch.autograd.grad` with respect to the pixels only,
so a model's parameters, flags and `.grad` fields are never touched.
"""

import math
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from torch import nn

from vizlib.arguments import check_classes
from vizlib.config import progress
from vizlib.counts import check_positive, check_positive_int
from vizlib.images import check_images
from vizlib.wrapper import checks_inputs


@dataclass(frozen=True)
class ScoreGradient:
    """Class scores and how each pixel moves them."""

    scores: torch.Tensor      # (N,) unnormalised class scores (logits)
    gradients: torch.Tensor   # (N, 3, H, W) d score / d pixel


@checks_inputs("images")
def score_gradient(model, images, classes):
    """Unnormalised class scores and their gradient with respect to the images: `ScoreGradient`."""
    classes = check_classes(model, classes, len(images)).to(images.device)
    pixels = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        # BEGIN SOLUTION
        scores = model(pixels).gather(1, classes[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(scores.sum(), pixels)
        # END SOLUTION
    return ScoreGradient(scores.detach(), grad)


def normalised_step(grad, step_size, *, norm=2):
    """`step_size * grad / ||grad||` per image (p-norm over all of an image's pixels).

    A gradient that is exactly zero has no direction to step in: that is a clear
    error rather than a division by zero that would fill the image with NaN.
    """
    flat = grad.flatten(1)
    lengths = flat.norm(p=norm, dim=1)
    zero = (lengths == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(
            f"the gradient is exactly zero for image(s) {zero}: nothing to step along "
            "(is the objective constant in the pixels, e.g. all units dead after a ReLU?)"
        )
    return step_size * grad / lengths.view(-1, *([1] * (grad.dim() - 1)))


def total_variation(images, *, reduction="sum"):
    """Sum (or mean) of squared differences between vertical and horizontal neighbours.

    Squared rather than absolute differences keep it differentiable everywhere.
    """
    # BEGIN SOLUTION
    vertical = (images[..., 1:, :] - images[..., :-1, :]).pow(2)
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).pow(2)
    # END SOLUTION
    if reduction == "sum":
        return vertical.sum() + horizontal.sum()
    if reduction == "mean":
        return vertical.mean() + horizontal.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def jitter(images, max_shift, generator=None):
    """Roll the images by one random offset in [-max_shift, max_shift] per axis (wraps around)."""
    if max_shift <= 0:
        return images
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    return torch.roll(images, shifts=(dy, dx), dims=(-2, -1))


def gaussian_blur(images, sigma):
    """Blur with a Gaussian of standard deviation `sigma` pixels (kernel 2*ceil(3 sigma)+1)."""
    if sigma <= 0:
        return images
    size = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(images, kernel_size=[size, size], sigma=[sigma, sigma])


@dataclass(frozen=True)
class OptimisationResult:
    images: torch.Tensor    # (N, 3, H, W) in [0, 1], after the last step
    losses: tuple           # the loss at each step


class DivergenceError(FloatingPointError):
    """The objective became NaN or infinite during an optimisation."""


def optimise_image(
    objective, init, *, steps, lr, optimizer="adam", parameterisation="clamp", max_jitter=0,
    blur_every=0, blur_sigma=0.5, callback=None, seed=0, desc="optimising", show_progress=None,
    line_search=False, transform=None,
):
    """Minimise `objective(images) -> scalar` over images in [0, 1], starting from `init`.

    optimizer: "adam", "sgd", "normalised" (steps of length lr along -grad/||grad||),
    or "lbfgs". parameterisation: "clamp" (optimise pixels, clamp into [0, 1] after each
    step) or "sigmoid" (optimise logits z, images = sigmoid(z): always in range, which
    suits L-BFGS). Each evaluation sees the images rolled by a random jitter of up to
    `max_jitter` pixels; every `blur_every` steps the images are blurred. `callback(step,
    images, grad)` may edit the images in place (no gradient) for further regularisers;
    `grad` is the objective's gradient with respect to the (unjittered) images at the
    step's last evaluation, before the update.
    A non-finite loss stops with DivergenceError naming the step.
    line_search=True (L-BFGS only) lets each step search along its direction for a
    point that satisfies the strong Wolfe conditions (up to 20 evaluations), instead
    of taking the step `lr` blindly; it assumes a deterministic objective (no jitter).
    `transform(images, generator)`, if given, runs after the jitter at each evaluation
    (a chain of random transformations, vizlib.feature_visualisation).

    `init` may also be a parameterised image: an `nn.Module` whose `forward()` draws the
    images in [0, 1] from its own tensors (a spectrum, say). Its parameters are then what
    is optimised; there is nothing to clamp, blur or edit, so `parameterisation`,
    `blur_every`, `callback` and the "normalised" optimiser do not apply to it.
    """
    steps, lr = check_positive_int(steps, "steps"), check_positive(lr, "lr")
    if parameterisation not in ("clamp", "sigmoid"):
        raise ValueError(f"parameterisation must be 'clamp' or 'sigmoid', got {parameterisation!r}")
    generator = torch.Generator().manual_seed(seed)
    drawn = isinstance(init, nn.Module)
    if drawn:
        if parameterisation != "clamp" or blur_every or callback is not None or optimizer == "normalised":
            raise ValueError("a parameterised image (init is a module) is optimised through its own tensors: "
                             "parameterisation, blur_every, callback and optimizer='normalised' do not apply")
        variables = [p for p in init.parameters() if p.requires_grad]
        if not variables:
            raise ValueError("the parameterised image has no tensor that requires grad")
        with torch.no_grad():
            check_images(init(), name="init()")
    else:
        check_images(init, name="init")
        if parameterisation == "sigmoid":
            variable = torch.logit(init.detach().clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
        else:
            variable = init.detach().clone().requires_grad_(True)
        variables = [variable]

    def images_of(v):
        if drawn:
            return init()
        return torch.sigmoid(v) if parameterisation == "sigmoid" else v

    def set_images(images):  # write edited images back into the optimised variable
        variable.copy_(torch.logit(images.clamp(1e-3, 1 - 1e-3)) if parameterisation == "sigmoid" else images)

    optimizers = {
        "adam": lambda: torch.optim.Adam(variables, lr=lr),
        "sgd": lambda: torch.optim.SGD(variables, lr=lr),
        "lbfgs": lambda: torch.optim.LBFGS(variables, lr=lr, max_iter=1, history_size=20, **(
            {"line_search_fn": "strong_wolfe", "max_eval": 20} if line_search else {})),
        "normalised": lambda: None,
    }
    if optimizer not in optimizers:
        raise ValueError(f"optimizer must be one of {', '.join(optimizers)}, got {optimizer!r}")
    if line_search and optimizer != "lbfgs":
        raise ValueError(f"line_search applies to optimizer='lbfgs' only, got {optimizer!r}")
    opt = optimizers[optimizer]()
    losses = []
    bar = progress(range(steps), desc=desc, enabled=show_progress, leave=False)

    last = {}  # the gradient with respect to the images, for the callback
    for step in bar:
        def closure():
            images = images_of(variables[0])
            seen = jitter(images, max_jitter, generator)
            loss = objective(seen if transform is None else transform(seen, generator))
            if not torch.isfinite(loss):
                raise DivergenceError(f"the loss became {loss.item()} at step {step}: lower the learning rate")
            if drawn or parameterisation == "clamp":    # the variable is the images, or there is no callback
                grads = torch.autograd.grad(loss, variables)
                last["grad"] = None if drawn else grads[0]
            else:                                       # sigmoid: the images' gradient too, for the callback
                last["grad"], *grads = torch.autograd.grad(loss, [images, *variables])
            for v, grad in zip(variables, grads):
                v.grad = grad
            return loss

        with torch.enable_grad():
            if optimizer == "normalised":
                loss = closure()
                with torch.no_grad():
                    variable -= normalised_step(variable.grad, lr)
            elif optimizer == "lbfgs":
                loss = opt.step(closure)
            else:
                loss = closure()
                opt.step()
        losses.append(loss.item())
        with torch.no_grad():
            if not drawn and parameterisation == "clamp":
                variable.clamp_(0, 1)
            if blur_every and (step + 1) % blur_every == 0:
                set_images(gaussian_blur(images_of(variable), blur_sigma))
            if callback is not None:
                images = images_of(variable).clone()
                callback(step, images, last["grad"].detach().clone())
                set_images(images)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
    with torch.no_grad():
        final = images_of(variables[0])
    return OptimisationResult(final.detach().clamp(0, 1), tuple(losses))
