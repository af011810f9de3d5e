"""Integrated Gradients against captum, against closed forms on f(x) = sum x^3, and completeness.

Oracles (where each homework region's expected values come from):
- integrated_gradients(): captum's IntegratedGradients with the same rule and steps; on f(x) = sum x^3,
  each rule's result from two moments of its points, written out by hand here.
"""

import warnings

import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import make_shapes
from vizlib.integrated_gradients import (
    RULES, completeness_error, gradient_x_input, integrated_gradients, make_baselines, path_rule,
)
from vizlib.models import random_imagenet_model
from vizlib.wrapper import VizModel, freeze


class SumOfCubes(nn.Module):
    """One class whose score is sum_i x_i^3 over all pixels."""

    def forward(self, x):
        return x.pow(3).flatten(1).sum(1, keepdim=True)


@pytest.fixture(scope="module")
def cubes():
    return freeze(VizModel(SumOfCubes(), name="cubes", class_names=["sum of cubes"], input_size=4,
                           mean=(0.0,) * 3, std=(1.0,) * 3).double())


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(6, "held_out", seed=5)


def rule_moments(rule, n):
    """sum_k w_k a_k and sum_k w_k a_k^2 of each rule, from sums of powers written out by hand."""
    if rule == "riemann_left":
        return (n - 1) / (2 * n), (n - 1) * (2 * n - 1) / (6 * n * n)
    if rule == "riemann_right":
        return (n + 1) / (2 * n), (n + 1) * (2 * n + 1) / (6 * n * n)
    if rule == "riemann_middle":
        return 0.5, 1 / 3 - 1 / (12 * n * n)
    if rule == "riemann_trapezoid":
        return 0.5, 1 / 3 + 1 / (6 * (n - 1) ** 2)
    return 0.5, 1 / 3  # Gauss-Legendre integrates polynomials up to degree 2n - 1 exactly


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("steps", [2, 5])
def test_each_rule_matches_its_closed_form_on_a_sum_of_cubes(cubes, rule, steps):
    """Closed form: along the path the integrand is 3 d (b + a d)^2, a quadratic in a, so each rule's
    result is fixed by two moments of its points; the exact answer is x^3 - b^3."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 4, generator=generator, dtype=torch.float64)
    b = torch.rand(2, 3, 4, 4, generator=generator, dtype=torch.float64)
    ours = integrated_gradients(cubes, x, 0, baselines=b, steps=steps, rule=rule, show_progress=False)
    d = x - b
    first, second = rule_moments(rule, steps)
    expected = 3 * b * b * d + 6 * b * d * d * first + 3 * d ** 3 * second
    torch.testing.assert_close(ours, expected, atol=1e-12, rtol=1e-10)
    error = (ours - (x ** 3 - b ** 3)).abs().max().item()
    if rule == "gausslegendre":
        assert error < 1e-12
    else:
        assert error > 1e-4  # the closed form tells the rules apart: only Gauss-Legendre is exact here


@pytest.mark.parametrize("rule", RULES)
def test_integrated_gradients_equals_captum_on_the_course_model(course, shapes, rule):
    images, labels, _ = shapes
    baselines = make_baselines(images, "blur")
    before = fingerprint(course)
    ours = integrated_gradients(course, images, labels, baselines=baselines, steps=12, rule=rule,
                                batch_size=7, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = IntegratedGradients(course).attribute(images, baselines=baselines, target=labels, n_steps=12,
                                                         method=rule, internal_batch_size=5)
    if rule == "riemann_trapezoid":
        expected = expected * 12 / 11  # captum's trapezoid weights add up to (n - 1) / n, ours to 1
    assert (ours - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert_unchanged(course, before)


def test_integrated_gradients_equals_captum_on_random_squeezenet():
    model = random_imagenet_model("squeezenet1_1", seed=0)
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    ours = integrated_gradients(model, images, [1, 2], baselines="grey", steps=4, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = IntegratedGradients(model).attribute(images, baselines=torch.full_like(images, 0.5),
                                                        target=[1, 2], n_steps=4, method="gausslegendre")
    assert (ours - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_gradient_x_input_equals_captum(course, shapes):
    images, labels, _ = shapes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = InputXGradient(course).attribute(images.clone().requires_grad_(True), target=labels)
    torch.testing.assert_close(gradient_x_input(course, images, labels), expected, atol=1e-6, rtol=0)


def test_completeness_improves_with_steps_and_the_batch_size_changes_nothing(course, shapes):
    images, labels, _ = shapes
    errors = [completeness_error(course, images, integrated_gradients(
        course, images, labels, steps=steps, rule="riemann_middle", show_progress=False), labels).mean().item()
        for steps in (2, 64)]
    assert errors[1] < 0.05 and errors[1] < errors[0] / 4, errors
    one = integrated_gradients(course, images, labels, steps=8, batch_size=1, show_progress=False)
    many = integrated_gradients(course, images, labels, steps=8, batch_size=48, show_progress=False)
    torch.testing.assert_close(one, many, atol=1e-6, rtol=1e-5)


def test_path_rule_weights_add_up_to_one():
    for rule in RULES:
        alphas, weights = path_rule(7, rule)
        assert alphas.min() >= 0 and alphas.max() <= 1
        assert abs(weights.sum().item() - 1) < 1e-12


def test_bad_input_is_a_clear_error_and_leaves_the_model_as_found(course, shapes):
    images, labels, _ = shapes
    before = fingerprint(course)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        integrated_gradients(course, images, steps=0)
    with pytest.raises(ValueError, match="trapezoid rule needs at least 2 steps"):
        integrated_gradients(course, images, steps=1, rule="riemann_trapezoid")
    with pytest.raises(ValueError, match="rule must be one of"):
        integrated_gradients(course, images, rule="simpson")
    with pytest.raises(ValueError, match="do not match the images"):
        integrated_gradients(course, images, baselines=images[:2])
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        integrated_gradients(course, images, baselines=images + 1)
    with pytest.raises(ValueError, match="baselines must be one of"):
        integrated_gradients(course, images, baselines="white")
    with pytest.raises(ValueError, match="class index out of range"):
        integrated_gradients(course, images, 8)
    assert_unchanged(course, before)
