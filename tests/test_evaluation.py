"""Scoring attribution maps: deletion and insertion against a loop written here, closed forms, bad input.

Oracles (where each homework region's expected values come from):
- perturbation_curves(): a loop written here that overwrites each step's top pixels by index, one image
  and one step at a time; the model's own probabilities on the image and on black at the two ends.
"""

import numpy as np
import pytest
import torch

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import make_shapes
from vizlib.evaluation import (
    area_under_curve, as_map, blurred, perturbation_curves, pixel_ranks, score_maps, score_methods,
)
from vizlib.saliency import random_maps, saliency


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(5, "held_out", seed=8)


def curves_one_step_at_a_time(model, images, maps, classes, mode, steps):
    """The reference: for each image and step, copy the image and overwrite its top pixels by index."""
    n, _, height, width = images.shape
    per_step = -(-height * width // steps)
    start = images if mode == "deletion" else blurred(images)
    curves = torch.empty(n, steps + 1)
    for i in range(n):
        order = np.argsort(-maps[i].flatten().numpy(), kind="stable")
        for k in range(steps + 1):
            picture = start[i].clone().view(3, -1)
            chosen = torch.from_numpy(order[:k * per_step].copy())
            picture[:, chosen] = 0.0 if mode == "deletion" else images[i].reshape(3, -1)[:, chosen]
            with torch.no_grad():
                curves[i, k] = model(picture.view(1, 3, height, width)).softmax(1)[0, classes[i]]
    return curves


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_curves_equal_a_loop_over_steps_for_any_batch_size(course, shapes, mode):
    images, labels, _ = shapes
    maps = saliency(course, images, labels)
    expected = curves_one_step_at_a_time(course, images, maps, labels, mode, steps=7)
    before = fingerprint(course)
    for batch_size in (3, 64):
        ours = perturbation_curves(course, images, maps, labels, mode=mode, steps=7, batch_size=batch_size,
                                   show_progress=False)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    assert_unchanged(course, before)


def test_the_ends_of_the_curves_are_the_image_and_the_fill(course, shapes):
    images, labels, _ = shapes
    curves = perturbation_curves(course, images, random_maps(5, 64, 64), labels, steps=5, show_progress=False)
    with torch.no_grad():
        on_image = course(images).softmax(1).gather(1, labels[:, None])[:, 0]
        on_black = course(torch.zeros_like(images)).softmax(1)[:, labels].diagonal()
    torch.testing.assert_close(curves[:, 0], on_image)
    torch.testing.assert_close(curves[:, -1], on_black)


def test_area_under_curve_is_numpys_trapezoid():
    curves = torch.rand(4, 9, generator=torch.Generator().manual_seed(0))
    expected = np.trapezoid(curves.numpy(), x=np.linspace(0, 1, 9), axis=1)
    np.testing.assert_allclose(area_under_curve(curves).numpy(), expected, rtol=1e-6)


def test_pixel_ranks_invert_the_sorting_order():
    maps = torch.tensor([[[0.2, 0.9], [0.9, 0.1]]])
    assert pixel_ranks(maps).tolist() == [[2, 0, 1, 3]]  # the tie goes to the first in reading order


def test_a_map_equal_to_the_mask_localises_perfectly(course, shapes):
    images, labels, masks = shapes
    scores = score_methods(course, images, {"the mask itself": lambda m, x, c: masks.float()}, labels, masks=masks,
                           baselines={"random": random_maps(5, 64, 64)}, steps=4)
    assert scores.table["the mask itself"]["mask share"] == 1.0
    assert scores.table["the mask itself"]["pointing game"] == 1.0
    assert set(scores.table["random"]) == {"mask share", "pointing game", "deletion AUC", "insertion AUC"}
    assert "mask share" in scores.format()


def test_three_channel_attributions_are_read_by_the_one_rule():
    attributions = torch.tensor([[[[1.0]], [[-2.0]], [[0.5]]]])
    assert as_map(attributions, 1, (1, 1)).item() == 2.0          # the largest |.| over colours, as saliency reads
    assert as_map(torch.tensor([[[-1.0, 2.0]]]), 1, (1, 2)).tolist() == [[[0.0, 2.0]]]


def test_bad_input_is_a_clear_error_and_leaves_the_model_as_found(course, shapes):
    images, labels, masks = shapes
    before = fingerprint(course)
    with pytest.raises(ValueError, match=r"a method must return maps \(N, H, W\)"):
        score_methods(course, images, {"wrong": lambda m, x, c: torch.zeros(5, 32, 32)}, labels, masks=masks)
    with pytest.raises(ValueError, match="masks must be"):
        score_maps(course, images, {"random": random_maps(5, 64, 64)}, labels, masks=masks[:2])
    empty = masks.clone()
    empty[3] = False
    with pytest.raises(ValueError, match=r"mask\(s\) \[3\] are all zero"):
        score_maps(course, images, {"random": random_maps(5, 64, 64)}, labels, masks=empty)
    with pytest.raises(ValueError, match=r"steps must be an int from 1 to \d+ \(the number of pixels\)"):
        perturbation_curves(course, images, random_maps(5, 64, 64), labels, steps=0)
    with pytest.raises(ValueError, match="mode must be"):
        perturbation_curves(course, images, random_maps(5, 64, 64), labels, mode="erase")
    with pytest.raises(ValueError, match="give at least one method"):
        score_methods(course, images, {}, labels, masks=masks)
    with pytest.raises(TypeError, match=r"maps must be a dict \{name: maps \(N, H, W\)\}, got Tensor"):
        score_maps(course, images, random_maps(5, 64, 64), labels, masks=masks)
    holed = random_maps(5, 64, 64)
    holed[2, 10, 10] = float("nan")
    with pytest.raises(ValueError, match=r"maps must be finite, got 1 NaN or infinite value\(s\)"):
        perturbation_curves(course, images, holed, labels)
    assert_unchanged(course, before)


def test_deletion_explorer_moves_with_every_control(course):
    from explorer_drive import drive

    from vizlib.evaluation import deletion_explorer

    images, labels, _ = make_shapes(2, "held_out", seed=3)
    maps = {"saliency": saliency(course, images, labels), "random": random_maps(2, 64, 64, seed=1)}
    moved = drive(deletion_explorer(course, images, maps, labels, steps=8, show_progress=False), course)
    assert set(moved) == {"image", "order", "game", "step"}
    with pytest.raises(TypeError, match="maps must be a dict"):
        deletion_explorer(course, images, maps["random"], labels)
    scored = score_maps(course, images, maps, labels, steps=8).curves          # curves scored already are reused
    reused = deletion_explorer(course, images, maps, labels, steps=8, curves=scored)
    assert reused.children[-1].value == deletion_explorer(course, images, maps, labels, steps=8).children[-1].value
    with pytest.raises(ValueError, match="curves must hold"):
        deletion_explorer(course, images, maps, labels, steps=4, curves=scored)
