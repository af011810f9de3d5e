"""The shared optimisation pieces: class-score gradients, steps, regularisers and the image loop.

Oracles (where each homework region's expected values come from):
- score_gradient(): central finite differences of the class score.
- total_variation(): a loop over neighbouring pixels in numpy, and gradcheck.
"""

import numpy as np
import pytest
import scipy.ndimage
import torch

from model_state import assert_unchanged, fingerprint
from vizlib.optim import (
    DivergenceError, gaussian_blur, jitter, normalised_step, optimise_image, score_gradient, total_variation,
)



def test_score_gradient_matches_finite_differences(tiny_model):
    images = torch.rand(2, 3, 6, 6, dtype=torch.float64) * 0.8 + 0.1
    result = score_gradient(tiny_model, images, [1, 3])
    scores, grad = result.scores, result.gradients
    eps = 1e-6
    for n, c, y, x in [(0, 0, 1, 2), (1, 2, 5, 0), (0, 1, 3, 3)]:
        up, down = images.clone(), images.clone()
        up[n, c, y, x] += eps
        down[n, c, y, x] -= eps
        with torch.no_grad():
            cls = [1, 3][n]
            numeric = (tiny_model(up)[n, cls] - tiny_model(down)[n, cls]) / (2 * eps)
        assert grad[n, c, y, x].item() == pytest.approx(numeric.item(), rel=1e-6, abs=1e-9)
    with torch.no_grad():
        assert torch.allclose(scores, tiny_model(images)[[0, 1], [1, 3]])


def test_score_gradient_leaves_model_and_input_alone(tiny_model):
    images = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    images.grad = torch.ones_like(images)
    before = fingerprint(tiny_model)
    score_gradient(tiny_model, images, 0)
    assert torch.equal(images.grad, torch.ones_like(images))
    assert_unchanged(tiny_model, before)
    with pytest.raises(ValueError, match="0 to 4"):
        score_gradient(tiny_model, images, 5)
    for fractional in (2.7, [1.0], torch.tensor([3.5]), True):    # never truncated to a class silently
        with pytest.raises(TypeError, match="class indices must be integers"):
            score_gradient(tiny_model, images, fractional)
    assert_unchanged(tiny_model, before)


def test_normalised_step_has_the_requested_length_and_refuses_zero():
    grad = torch.randn(3, 3, 4, 4)
    step = normalised_step(grad, 0.5)
    lengths = np.sqrt((step.numpy() ** 2).reshape(3, -1).sum(1))
    assert np.allclose(lengths, 0.5, atol=1e-6)
    assert torch.allclose(normalised_step(grad, 2.0, norm=1).abs().flatten(1).sum(1), torch.full((3,), 2.0))
    grad[1] = 0
    with pytest.raises(ValueError, match=r"zero for image\(s\) \[1\]"):
        normalised_step(grad, 1.0)


def test_total_variation_matches_a_loop_and_passes_gradcheck():
    images = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    a = images.numpy()
    expected = 0.0
    for n in range(2):
        for c in range(3):
            for y in range(5):
                for x in range(4):
                    if y + 1 < 5:
                        expected += (a[n, c, y + 1, x] - a[n, c, y, x]) ** 2
                    if x + 1 < 4:
                        expected += (a[n, c, y, x + 1] - a[n, c, y, x]) ** 2
    assert total_variation(images).item() == pytest.approx(expected, rel=1e-12)
    assert total_variation(torch.full((1, 3, 4, 4), 0.3)).item() == 0
    assert torch.autograd.gradcheck(total_variation, (images.clone().requires_grad_(True),))
    with pytest.raises(ValueError, match="reduction"):
        total_variation(images, reduction="max")


def test_jitter_is_a_seeded_roll():
    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    a = jitter(images, 2, torch.Generator().manual_seed(4))
    b = jitter(images, 2, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    assert any(torch.equal(a, torch.roll(images, s, dims=(-2, -1))) for s in shifts)
    assert jitter(images, 0) is images


def test_gaussian_blur_matches_scipy():
    images = torch.rand(1, 3, 20, 17, dtype=torch.float64)
    sigma = 1.3
    radius = int(np.ceil(3 * sigma))
    expected = np.stack([
        scipy.ndimage.gaussian_filter(images[0, c].numpy(), sigma, mode="mirror", truncate=radius / sigma)
        for c in range(3)
    ])
    assert np.allclose(gaussian_blur(images, sigma)[0].numpy(), expected, atol=1e-6)


def test_optimize_image_reaches_a_target_inside_the_range():
    target = torch.rand(1, 3, 8, 8) * 0.8 + 0.1

    def objective(images):
        return (images - target).pow(2).sum()

    settings = (("clamp", "adam", 0.05), ("sigmoid", "lbfgs", 1.0), ("clamp", "normalised", 0.05))
    for parameterisation, optimizer, lr in settings:
        result = optimise_image(objective, torch.full_like(target, 0.5), steps=200, lr=lr,
                                optimizer=optimizer, parameterisation=parameterisation, show_progress=False)
        assert (result.images - target).abs().max() < 0.05, (parameterisation, optimizer)
        assert result.losses[-1] < result.losses[0]
        assert result.images.min() >= 0 and result.images.max() <= 1


def test_optimize_image_stops_on_divergence_naming_the_step():
    calls = []

    def objective(images):
        calls.append(1)
        return images.sum() * (float("nan") if len(calls) == 4 else 1.0)

    with pytest.raises(DivergenceError, match="step 3"):
        optimise_image(objective, torch.rand(1, 3, 4, 4), steps=10, lr=0.1, show_progress=False)


def test_optimize_image_regularisers_and_bad_arguments():
    seen = []
    result = optimise_image(
        lambda images: -images.mean(), torch.full((1, 3, 8, 8), 0.5), steps=4, lr=0.01, max_jitter=2,
        blur_every=2, callback=lambda step, images, grad: seen.append((step, grad.shape)), show_progress=False,
    )
    assert seen == [(step, (1, 3, 8, 8)) for step in range(4)] and result.images.mean() > 0.5
    with pytest.raises(ValueError, match="optimizer"):
        optimise_image(lambda x: x.sum(), torch.rand(1, 3, 4, 4), steps=1, lr=1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps"):
        optimise_image(lambda x: x.sum(), torch.rand(1, 3, 4, 4), steps=0, lr=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        optimise_image(lambda x: x.sum(), torch.rand(1, 3, 4, 4) * 9, steps=1, lr=1)


@pytest.mark.parametrize("parameterisation", ["clamp", "sigmoid"])
def test_the_callback_gets_the_gradient_with_respect_to_the_images(parameterisation):
    """For sum((x - t)^2) the gradient with respect to the images is 2 (x - t), at the images the objective saw."""
    target = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    evaluated, received = [], []

    def objective(images):
        evaluated.append(images.detach().clone())
        return ((images - target) ** 2).sum()

    optimise_image(objective, torch.full_like(target, 0.5), steps=3, lr=0.05, optimizer="sgd",
                   parameterisation=parameterisation, callback=lambda step, images, grad: received.append(grad),
                   show_progress=False)
    assert len(received) == len(evaluated) == 3
    for seen, grad in zip(evaluated, received):
        assert torch.allclose(grad, 2 * (seen - target), atol=1e-12)


def test_line_search_option_of_optimize_image():
    """L-BFGS with the line search finds the minimum of a quadratic in the pixels; other optimisers refuse it."""
    target = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(7)) * 0.8 + 0.1
    result = optimise_image(lambda x: ((x - target) ** 2).sum(), torch.full_like(target, 0.5), steps=15, lr=1.0,
                            optimizer="lbfgs", parameterisation="sigmoid", line_search=True, show_progress=False)
    assert torch.allclose(result.images, target, atol=1e-3)
    with pytest.raises(ValueError, match="line_search applies to optimizer='lbfgs' only"):
        optimise_image(lambda x: x.sum(), target, steps=1, lr=0.1, optimizer="adam", line_search=True)
