"""Fooling images and adversarial examples: small pixel changes that change a prediction.

- `fooling_image` (Szegedy et al. 2014): climb a target class's score with
  normalised gradient steps until the model predicts that class.
- `fgsm` (Goodfellow et al. 2015): one step of size epsilon along the sign of the
  loss gradient, the worst case to first order in an L-infinity ball.
- `pgd` (Madry et al. 2018): many small signed steps, each projected back into
  the L-infinity ball of radius epsilon around the image, from a random start.
- `random_sign_noise`: the baseline, noise of the same L-infinity size that does
  not look at the model.

All of them work on course images (float (N, 3, H, W) in [0, 1]): epsilon is in
pixel units (8/255 is one grey level in 32), every result stays in [0, 1], the
inputs are never modified in place, and the model is never touched (gradients
are taken with respect to the pixels only).
"""

import numbers
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from vizlib.arguments import check_classes, predict, resolve_classes
from vizlib.config import progress
from vizlib.counts import check_positive, check_positive_int
from vizlib.images import check_images
from vizlib.optim import normalised_step
from vizlib.plotting import FONT_SIZE, as_display_array, image_picker, live_figure
from vizlib.wrapper import checks_inputs


def _check_epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(f"epsilon must be a number in [0, 1] (pixel units, e.g. 8/255), got {epsilon!r}")
    if not 0 <= epsilon <= 1:
        raise ValueError(
            f"epsilon must be in [0, 1] (pixel units, e.g. 8/255 = {8 / 255:.4f}), got {epsilon}"
        )
    return float(epsilon)


def _refuse_reached_targets(model, images, targets):
    """A target the model already predicts leaves nothing to attack: a clear error."""
    same = (predict(model, images).classes == targets).nonzero().flatten().tolist()
    if same:
        names = [model.class_names[targets[i]] for i in same]
        raise ValueError(
            f"image(s) {same} are already predicted as their target ({', '.join(names)}): "
            f"choose a target other than the current prediction (valid indices 0 to "
            f"{len(model.class_names) - 1})"
        )


def _attack_classes(model, images, classes, targeted):
    """The classes the loss is measured against, and +1 (push away) or -1 (pull towards)."""
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be True or False, got {targeted!r}")
    if not targeted:
        return resolve_classes(model, images, classes), 1.0
    if classes is None:
        raise ValueError("a targeted attack needs classes: the class each image should become")
    classes = check_classes(model, classes, len(images)).to(images.device)
    _refuse_reached_targets(model, images, classes)
    return classes, -1.0


@checks_inputs("images")
def loss_gradient(model, images, classes):
    """Gradient of the summed cross-entropy loss against `classes` with respect to the pixels.

    Summed, not averaged, so that each image's gradient does not depend on the batch size.
    classes: one int for every image, or one per image.
    """
    classes = check_classes(model, classes, len(images)).to(images.device)
    pixels = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(pixels), classes, reduction="sum")
        (grad,) = torch.autograd.grad(loss, pixels)
    return grad


@checks_inputs("images")
def fgsm(model, images, classes=None, *, epsilon, targeted=False):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size epsilon.

    classes: None (each image's predicted class), one int for every image, or one per image.
    Untargeted (default): raise the loss of `classes` (e.g. the true labels), moving
    away from them. targeted=True: lower the loss of `classes` (required), moving
    towards them; a class an image is already predicted as is an error.
    Returns the adversarial images, clamped to [0, 1], within epsilon of `images`
    in every pixel.
    """
    epsilon = _check_epsilon(epsilon)
    images = images.detach()
    classes, direction = _attack_classes(model, images, classes, targeted)
    grad = loss_gradient(model, images, classes)
    # BEGIN SOLUTION
    adversarial = images + direction * epsilon * grad.sign()
    adversarial = adversarial.clamp(0, 1)
    # END SOLUTION
    return adversarial


def project(adversarial, images, epsilon):
    """The nearest image to `adversarial` within L-infinity distance epsilon of `images`, in [0, 1]."""
    # BEGIN SOLUTION
    adversarial = torch.max(torch.min(adversarial, images + epsilon), images - epsilon)
    return adversarial.clamp(0, 1)
    # END SOLUTION


@checks_inputs("images")
def pgd(
    model, images, classes=None, *, epsilon, steps=10, step_size=None, random_start=True,
    targeted=False, seed=0, show_progress=None,
):
    """Projected gradient descent (Madry et al. 2018) in the L-infinity ball of radius epsilon.

    Start at `images` plus uniform noise in [-epsilon, epsilon] (when `random_start`;
    drawn on the CPU as `(2 * torch.rand(shape, generator=torch.Generator().manual_seed(seed),
    dtype=images.dtype) - 1) * epsilon`, then clamped to [0, 1]); then `steps` times:
    step `step_size` (default 2.5 * epsilon / steps, as Madry et al. suggest) along the
    sign of the loss gradient and project back into the ball and into [0, 1].
    Untargeted and targeted as in `fgsm`.
    """
    epsilon = _check_epsilon(epsilon)
    steps = check_positive_int(steps, "steps")
    step_size = 2.5 * epsilon / steps if step_size is None else check_positive(step_size, "step_size")
    images = images.detach()
    classes, direction = _attack_classes(model, images, classes, targeted)
    adversarial = images.clone()
    if random_start:
        generator = torch.Generator().manual_seed(seed)
        noise = 2 * torch.rand(images.shape, generator=generator, dtype=images.dtype) - 1
        adversarial = (adversarial + epsilon * noise.to(images.device)).clamp(0, 1)
    for _ in progress(range(steps), desc="PGD", enabled=show_progress, leave=False):
        grad = loss_gradient(model, adversarial, classes)
        # BEGIN SOLUTION
        adversarial = adversarial + direction * step_size * grad.sign()
        adversarial = project(adversarial, images, epsilon)
        # END SOLUTION
    return adversarial


def random_sign_noise(images, epsilon, *, seed=0):
    """The baseline: each pixel moved by +epsilon or -epsilon at random (seeded), clamped to [0, 1]."""
    check_images(images)
    epsilon = _check_epsilon(epsilon)
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, images.shape, generator=generator).to(images.dtype) * 2 - 1
    return (images.detach() + epsilon * signs.to(images.device)).clamp(0, 1)


@dataclass(frozen=True)
class FoolingResult:
    images: torch.Tensor    # (N, 3, H, W) in [0, 1]
    steps: torch.Tensor     # (N,) gradient steps taken by each image
    success: torch.Tensor   # (N,) whether the model predicts the target at the end


@checks_inputs("images")
def fooling_image(model, images, classes, *, step_size=0.5, max_steps=100, show_progress=None):
    """Fooling images (Szegedy et al. 2014): raise the score of `classes` until the model predicts them.

    classes: the target, one int for every image or one index per image; always
    targeted, so an image already predicted as its target is an error.
    Each step adds `step_size * g / ||g||_2` (g: the gradient of the target's
    unnormalised score, ||.||_2 over the whole image) and clamps to [0, 1]. Each image
    stops as soon as its prediction is its target, or after `max_steps` steps.
    """
    step_size = check_positive(step_size, "step_size")
    max_steps = check_positive_int(max_steps, "max_steps")
    targets = check_classes(model, classes, len(images)).to(images.device)
    _refuse_reached_targets(model, images, targets)
    current = images.detach().clone()
    steps = torch.zeros(len(images), dtype=torch.long, device=images.device)
    success = torch.zeros(len(images), dtype=torch.bool, device=images.device)
    bar = progress(range(max_steps + 1), desc="fooling", enabled=show_progress, leave=False)
    for step in bar:
        active = (~success).nonzero().flatten()
        pixels = current[active].requires_grad_(True)
        with torch.enable_grad():
            logits = model(pixels)
            scores = logits.gather(1, targets[active, None]).sum()
            (grad,) = torch.autograd.grad(scores, pixels)
        reached = logits.argmax(1) == targets[active]
        success[active[reached]] = True
        if success.all() or step == max_steps:
            break
        moving = active[~reached]
        with torch.no_grad():
            # BEGIN SOLUTION
            current[moving] = (current[moving] + normalised_step(grad[~reached], step_size)).clamp(0, 1)
            # END SOLUTION
        steps[moving] += 1
    return FoolingResult(images=current, steps=steps, success=success)


@dataclass(frozen=True)
class PerturbationNorms:
    """The size of adversarial - images, per image, in the two norms attacks are budgeted in."""

    linf: torch.Tensor   # (N,) the largest change of any colour value
    l2: torch.Tensor     # (N,) the Euclidean length of the whole change


def perturbation_norms(images, adversarial):
    """Per image, the L-infinity and L2 norms of adversarial - images: `PerturbationNorms`."""
    check_images(images)
    check_images(adversarial, name="adversarial")
    if images.shape != adversarial.shape:
        raise ValueError(f"images {tuple(images.shape)} and adversarial {tuple(adversarial.shape)} differ in shape")
    delta = (adversarial - images).detach().flatten(1)
    return PerturbationNorms(delta.abs().amax(1), delta.norm(dim=1))


@checks_inputs("images", "adversarial")
def show_attack(model, images, adversarial, *, magnify=None, size=2.2, suptitle=None):
    """Rows of original | perturbation x magnify (grey = 0) | adversarial, titled class and probability.

    `magnify` defaults to 0.5 / (largest change) so the perturbation fills the grey
    range; the factor used is written in the column title.
    """
    delta = (adversarial - images).detach()
    if magnify is None:
        largest = delta.abs().max().item()
        magnify = 0.5 / largest if largest > 0 else 1.0
    prediction = predict(model, torch.cat([images, adversarial]))
    classes, probs = prediction.classes, prediction.probabilities
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(3 * size, n * size + 0.5), squeeze=False)
    for i in range(n):
        shown = (images[i], (0.5 + magnify * delta[i]).clamp(0, 1), adversarial[i])
        titles = (
            f"{model.class_names[classes[i]]} {probs[i]:.0%}",
            f"perturbation x{magnify:.0f}" if i == 0 else "",
            f"{model.class_names[classes[n + i]]} {probs[n + i]:.0%}",
        )
        for ax, picture, title in zip(axes[i], shown, titles):
            ax.imshow(as_display_array(picture), interpolation="nearest")
            ax.set_title(title, fontsize=FONT_SIZE)
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=FONT_SIZE + 2)
    fig.tight_layout()
    return fig


@checks_inputs("images")
def attack_explorer(model, images, classes=None, *, max_epsilon=16, titles=None):
    """A live explorer for a lecture: one image attacked with a budget of epsilon / 255 per colour value
    (0 to `max_epsilon`), by FGSM, PGD (10 steps) or random sign noise of the same size, drawn as original |
    perturbation | adversarial with the model's class and probability. Each change costs one attack on
    one image. Returns the `vizlib.plotting.live_figure` panel.
    """
    import ipywidgets


    max_epsilon = check_positive_int(max_epsilon, "max_epsilon")
    classes = resolve_classes(model, images, classes)
    names, image = image_picker(len(images), titles)
    attack = ipywidgets.ToggleButtons(options=["random sign noise", "FGSM", "PGD"], value="PGD", description="attack")
    budget = ipywidgets.IntSlider(value=min(4, max_epsilon), min=0, max=max_epsilon, description="epsilon x255",
                                  continuous_update=False)

    def draw(image, attack, epsilon):
        one, target = images[image:image + 1], classes[image:image + 1]
        if epsilon == 0:
            adversarial = one
        elif attack == "FGSM":
            adversarial = fgsm(model, one, target, epsilon=epsilon / 255)
        elif attack == "PGD":
            adversarial = pgd(model, one, target, epsilon=epsilon / 255, show_progress=False)
        else:
            adversarial = random_sign_noise(one, epsilon / 255, seed=image)
        return show_attack(model, one, adversarial, magnify=127.5 / max(epsilon, 1),
                           suptitle=f"{attack}, epsilon {epsilon}/255")

    return live_figure(draw, image=image, attack=attack, epsilon=budget)
