"""Reference solutions to the exercises of notebook 10 (instructor only; the student release leaves this folder out)."""
import torch

import vizlib
from vizlib.datasets import images_for_model
from vizlib.inversion import invert, relative_feature_error
from vizlib.layers import layers_for
from vizlib.models import load_model
from vizlib.optim import total_variation

SEED = 0
LR = 0.03


def _setup():
    model = load_model("course")
    images, labels, masks = images_for_model(model, 2, seed=SEED)
    return model, images.to(model.device), masks, layers_for(model, "inversion")


def exercise_1():
    """TV weight 1, 10, 100 at the deepest layer: the picture flattens, yet its deep features still match."""
    model, images, _, layers = _setup()
    deepest, steps = layers[-1], vizlib.fast_or(full=400, fast=80)
    rows = {}
    for weight in (1.0, 10.0, 100.0):
        result = invert(model, images, deepest, steps=steps, lr=LR, tv_weight=weight, seed=SEED).images
        rows[weight] = (relative_feature_error(model, result, deepest, images).mean().item(),
                        total_variation(result).item() / result.numel())
        print(f"TV weight {weight:5.0f}: feature error {rows[weight][0]:.3f}, TV/pixel {rows[weight][1]:.5f}")
    assert rows[100.0][1] < 0.1 * rows[1.0][1], rows
    assert rows[100.0][0] < 0.1, rows            # the deepest layer is still matched by a near-flat image
    return rows


def exercise_2():
    """Grey start against noise start at a deep layer: where do the two reconstructions differ?"""
    model, images, masks, layers = _setup()
    layer, steps = layers[-2], vizlib.fast_or(full=400, fast=80)
    from_noise = invert(model, images, layer, steps=steps, lr=LR, tv_weight=1.0, seed=SEED).images
    from_grey = invert(model, images, layer, steps=steps, lr=LR, tv_weight=1.0, seed=SEED,
                       init=torch.full_like(images, 0.5)).images
    difference = (from_noise - from_grey).abs().mean(1).cpu()
    masks = masks.bool()
    inside = difference[masks].mean().item()
    outside = difference[~masks].mean().item()
    print(f"{layer}: mean |noise start - grey start| on the object {inside:.3f}, on the background {outside:.3f}")
    assert inside > 1.1 * outside, (inside, outside)
    return inside, outside


def exercise_3():
    """Relative feature change under a shift of a few pixels (a roll: what leaves one side enters the other),
    shallow to deep: it falls with depth at every layer."""
    model, images, _, layers = _setup()
    changes = {}
    for shift in (2, 4):
        shifted = torch.roll(images, shifts=(shift, shift), dims=(2, 3))
        changes[shift] = {layer: relative_feature_error(model, shifted, layer, images).mean().item()
                          for layer in layers}
        print(f"shift {shift} px: " + ", ".join(f"{k} {v:.3f}" for k, v in changes[shift].items()))
        values = list(changes[shift].values())
        assert all(deeper < shallower for shallower, deeper in zip(values, values[1:])), changes[shift]
    assert changes[2][layers[-1]] < 0.2 * changes[2][layers[0]], changes[2]
    return changes
