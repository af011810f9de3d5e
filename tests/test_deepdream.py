"""DeepDream: one step, octaves, seeding and bad input.

Oracles (where each homework region's expected values come from):
- dream_step(): the closed-form gradient of 1/2 sum a^2 when the layer is the normalised input itself.
"""

import pytest
import torch
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.deepdream import deepdream, dream_step, layer_energy
from vizlib.wrapper import VizModel, freeze


def wrapped(net):
    return freeze(VizModel(net, name="tiny", class_names="ab", input_size=8, mean=(0.5,) * 3, std=(0.25,) * 3))


def test_a_step_follows_the_closed_form_gradient():
    """With the normalised input itself as the layer, energy = 1/2 sum a^2 and d energy / dx = a / std."""
    model = wrapped(nn.Sequential(nn.Identity(), nn.Flatten(), nn.Linear(3 * 8 * 8, 2)))
    images = torch.rand(2, 3, 8, 8) * 0.5 + 0.25
    grad = (images - 0.5) / 0.25 / 0.25
    expected = (images + 0.01 * grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)
    assert torch.allclose(dream_step(model, images, "0", 0.01), expected, atol=1e-6)


def test_dreaming_raises_the_layer_energy_and_is_seeded(course):
    photos = torch.rand(1, 3, 80, 80) * 0.6 + 0.2
    before = fingerprint(course)
    first = deepdream(course, photos, "features.relu4", octaves=2, steps=3, seed=1, show_progress=False)
    second = deepdream(course, photos, "features.relu4", octaves=2, steps=3, seed=1, show_progress=False)
    assert torch.equal(first, second) and first.shape == photos.shape
    assert 0 <= first.min() and first.max() <= 1
    assert layer_energy(course, first, "features.relu4") > 2 * layer_energy(course, photos, "features.relu4")
    assert_unchanged(course, before)


def test_a_zero_gradient_is_a_clear_error():
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-1.0)  # every unit is dead after the ReLU: nothing to amplify
    model = wrapped(nn.Sequential(conv, nn.ReLU()))
    with pytest.raises(ValueError, match="gradient is exactly zero"):
        dream_step(model, torch.rand(1, 3, 8, 8), "1", 0.01)


def test_bad_arguments_are_clear_errors_and_change_nothing(course):
    photos = torch.rand(1, 3, 64, 64)
    before = fingerprint(course)
    for kwargs, words in (({"octaves": 0}, "octaves must be a positive int"), ({"steps": 0}, "steps must be"),
                          ({"octave_scale": 1.0}, "above 1"), ({"step_size": 0}, "step_size must be a positive")):
        with pytest.raises(ValueError, match=words):
            deepdream(course, photos, "features.relu4", **kwargs)
    with pytest.raises(ValueError, match="valid layer names"):
        deepdream(course, photos, "features.relu9")
    assert_unchanged(course, before)
