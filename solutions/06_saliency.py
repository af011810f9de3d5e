"""Reference solutions to the exercises of notebook 06 (instructor only; the student release leaves this folder out)."""

import torch

from vizlib import course_data
from vizlib.models import course_model
from vizlib.saliency import mask_share, pointing_game, saliency, smoothgrad

SEED = 0


def held_out(n=64):
    """Held-out images as in the notebook's claim (seed 6)."""
    model = course_model()
    images, labels, masks = course_data.make_shapes(n, "held_out", seed=6)
    return model, images.to(model.device), labels, masks


def exercise_1():
    """Gradient of the softmax probability instead of the class score."""
    model, images, labels, masks = held_out()
    x = images.clone().requires_grad_(True)
    probability = model(x).softmax(1)[torch.arange(len(images)), labels.to(images.device)]
    grad, = torch.autograd.grad(probability.sum(), x)
    probability_maps = grad.abs().amax(1).cpu()
    score_maps = saliency(model, images, labels).cpu()
    sure = probability.detach().cpu() > 0.99
    ratio_sure = (probability_maps[sure].mean() / score_maps[sure].mean()).item()
    ratio_unsure = (probability_maps[~sure].mean() / score_maps[~sure].mean()).item()
    print(f"{int(sure.sum())} images with p > 0.99: probability map / score map = {ratio_sure:.5f}; "
          f"the other {int((~sure).sum())}: {ratio_unsure:.3f}")
    assert (~sure).sum() >= 3 and ratio_sure < 0.01 and ratio_unsure > 10 * ratio_sure


def exercise_2():
    """Explaining a class the image does not show (ring, class 1)."""
    model, images, labels, masks = held_out()
    other = labels != 1
    ring = saliency(model, images, 1).cpu()[other]
    true = saliency(model, images, labels).cpu()[other]
    area = masks[other].float().flatten(1).mean(1).mean().item()
    ring_share, true_share = mask_share(ring, masks[other]).mean().item(), mask_share(true, masks[other]).mean().item()
    print(f"mask share on {int(other.sum())} non-ring images: 'ring' {ring_share:.3f}, true class {true_share:.3f}, "
          f"area share {area:.3f}")
    assert ring_share > 1.8 * area, "the object still lights up: that is where any shape's evidence would change"


def exercise_3():
    """Noise level against number of samples, on the pointing game."""
    model, images, labels, masks = held_out(32)
    score = lambda level, n: pointing_game(  # noqa: E731
        smoothgrad(model, images, labels, n_samples=n, noise_level=level, seed=SEED).cpu(), masks).float().mean().item()
    by_noise = {level: score(level, 5) for level in (0.02, 0.15, 0.5)}
    by_samples = {n: score(0.15, n) for n in (2, 10)}
    print(f"pointing game by noise level (n=5): {by_noise}; by n_samples (noise 0.15): {by_samples}")
    noise_spread = max(by_noise.values()) - min(by_noise.values())
    sample_spread = max(by_samples.values()) - min(by_samples.values())
    assert by_noise[0.5] < by_noise[0.15] - 0.15, "50% noise buries the image"
    assert noise_spread > sample_spread, "the noise level matters more than the number of samples"


def exercise_4():
    """The fine grid: power of the maps at 1/2 cycle per pixel against the next frequency bin."""
    model, images, labels, _ = held_out(32)
    for name, maps in (("saliency", saliency(model, images, labels)),
                       ("SmoothGrad", smoothgrad(model, images, labels, n_samples=5, noise_level=0.15, seed=SEED))):
        maps = maps.cpu()
        power = torch.fft.fft2(maps / maps.mean((1, 2), keepdim=True)).abs().pow(2).mean(0)
        half = power.shape[0] // 2
        peak = (power[half, 0] + power[0, half]) / 2  # period 2 along rows and along columns
        beside = (power[half - 1, 0] + power[0, half - 1]) / 2
        print(f"{name}: power at period 2 is {peak / beside:.1f}x the neighbouring frequency")
        assert peak > 3 * beside, "a period-2 grid from the stride-2 first layer"
