"""Feature inversion: the inverse found, its feature error, seeding and bad input.

Oracles (where each homework region's expected values come from):
- objective() inside invert(): the image itself, the only minimiser for a layer whose features determine it
  (an invertible 1x1 colour mixing).
"""

import pytest
import torch
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.images import noise_like
from vizlib.inversion import default_layers, invert, relative_feature_error
from vizlib.wrapper import VizModel, freeze


@pytest.fixture
def invertible_model():
    """A 1x1 convolution with an invertible colour mixing: its features determine the image exactly."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, -0.7], [0.3, 0.0, 1.5]]).view(3, 3, 1, 1))
    net = nn.Sequential(conv, nn.Flatten(), nn.LazyLinear(2))
    net(torch.zeros(1, 3, 6, 6))
    return freeze(VizModel(net, name="mix", class_names="ab", input_size=6, mean=(0.5,) * 3, std=(0.25,) * 3))


def test_without_a_prior_an_invertible_layer_gives_the_image_back(invertible_model):
    images = torch.rand(2, 3, 6, 6) * 0.8 + 0.1
    result = invert(invertible_model, images, "0", steps=400, lr=0.02, tv_weight=0.0, show_progress=False)
    assert (result.images - images).abs().max() < 0.01
    assert result.losses[-1] < 1e-4 * result.losses[0]


def test_relative_feature_error_matches_its_definition(invertible_model):
    a, b = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6)
    conv = invertible_model.net[0]
    fa = conv((a - 0.5) / 0.25).flatten(1)
    fb = conv((b - 0.5) / 0.25).flatten(1)
    expected = (fa - fb).norm(dim=1) / fb.norm(dim=1)
    assert torch.allclose(relative_feature_error(invertible_model, a, "0", b), expected, atol=1e-6)


def test_course_model_inversion_matches_features_and_is_seeded(course):
    images = torch.rand(1, 3, 64, 64)
    before = fingerprint(course)
    first = invert(course, images, "features.relu2", steps=60, seed=3, show_progress=False)
    second = invert(course, images, "features.relu2", steps=60, seed=3, show_progress=False)
    assert torch.equal(first.images, second.images)
    noise = noise_like(images, 3)
    assert torch.equal(noise, torch.rand(images.shape, generator=torch.Generator().manual_seed(3)))
    barely_moved = invert(course, images, "features.relu2", steps=1, lr=1e-9, seed=3, show_progress=False).images
    assert torch.allclose(barely_moved, noise, atol=1e-6)     # invert starts there
    start = relative_feature_error(course, noise, "features.relu2", images)
    assert relative_feature_error(course, first.images, "features.relu2", images) < 0.5 * start
    assert_unchanged(course, before)


def test_bad_arguments_are_clear_errors_and_change_nothing(course):
    images = torch.rand(1, 3, 64, 64)
    before = fingerprint(course)
    with pytest.raises(ValueError, match="valid layer names"):
        invert(course, images, "features.conv9", steps=1)
    with pytest.raises(ValueError, match="tv_weight"):
        invert(course, images, "features.relu1", steps=1, tv_weight=-1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        invert(course, images * 255, "features.relu1", steps=1)
    assert_unchanged(course, before)


def test_default_layers_run_shallow_to_deep(course):
    relus = [f"features.relu{i}" for i in range(1, 6)] + ["classifier.relu"]
    assert default_layers(course, count=6) == relus
    assert default_layers(course, count=2) == [relus[0], relus[-1]]
    assert default_layers(course, count=1) == [relus[-1]]
    for count, error in ((0, ValueError), (2.0, TypeError)):
        with pytest.raises(error, match="count must be a positive int"):
            default_layers(course, count=count)
    assert default_layers(course, count=4) == [relus[0], relus[2], relus[3], relus[5]]  # indices 0, 1.67, 3.33, 5
