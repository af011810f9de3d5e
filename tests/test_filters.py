"""First-layer filters: the layer found, its weights, activations, rescaling, tiling and spectra.

Oracles (where each homework region's expected values come from):
- rescale_each(): a min-max per tile in numpy; torchvision's make_grid(normalize=True, scale_each=True).
- low_frequency_fraction(): a numpy DFT written as matrix products with the frequencies folded by hand;
  closed forms for constant filters, checkerboards and gratings; 9/49, the expected share for white noise.
"""

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid

from model_state import assert_unchanged, fingerprint
from vizlib import filters
from vizlib.course_data import make_shapes
from vizlib.models import random_imagenet_model

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def squeezenet():
    return random_imagenet_model("squeezenet1_1", seed=0)


# --- finding the layer -------------------------------------------------------------------

def test_first_conv_layer_by_default_by_name_and_by_module(course, squeezenet):
    before = fingerprint(course)
    name, conv = filters.first_conv_layer(course)
    assert name == "features.conv1" and conv is course.net.features.conv1
    assert filters.first_conv_layer(course, "features.conv1") == (name, conv)
    assert filters.first_conv_layer(course, conv) == (name, conv)
    assert filters.first_conv_layer(squeezenet)[1] is squeezenet.net.features[0]
    plain = nn.Sequential(nn.Identity(), nn.Conv2d(3, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 3))
    assert filters.first_conv_layer(plain) == ("1", plain[1])
    assert_unchanged(course, before)


@pytest.mark.parametrize("layer, message", [
    ("features.conv9", r"unknown layer 'features\.conv9'"),
    ("features.relu1", r"'features\.relu1' is a ReLU, not a Conv2d"),
    ("features.conv2", r"'features\.conv2' has 32 input channels, not 3"),
    (nn.Conv2d(3, 8, 3), r"not part of this model"),
])
def test_a_layer_that_is_not_an_rgb_convolution_names_the_valid_ones(course, layer, message):
    before = fingerprint(course)
    with pytest.raises(ValueError, match=message + r".*3 input channels in this model: features\.conv1$"):
        filters.first_conv_layer(course, layer)
    with pytest.raises(ValueError, match="features.conv1"):
        filters.filter_weights(course, layer)
    with pytest.raises(ValueError, match="features.conv1"):
        filters.first_layer_activations(course, torch.rand(1, 3, 64, 64), layer)
    assert_unchanged(course, before)


def test_models_without_an_rgb_first_convolution():
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        filters.first_conv_layer(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))
    grey_first = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match=r"'0' has 1 input channels, not 3.*in this model: 1$"):
        filters.first_conv_layer(grey_first)
    with pytest.raises(ValueError, match="no Conv2d layer with 3 input channels"):
        filters.first_conv_layer(nn.Sequential(nn.Conv2d(1, 4, 3)))
    with pytest.raises(TypeError, match="layer must be a name"):
        filters.first_conv_layer(grey_first, 1)


def test_filter_weights_are_a_copy(course):
    before = fingerprint(course)
    weights = filters.filter_weights(course)
    assert weights.shape == (32, 3, 7, 7)
    assert torch.equal(weights, course.net.features.conv1.weight)
    weights.zero_()
    assert_unchanged(course, before)


# --- activation maps ---------------------------------------------------------------------

def test_activations_equal_the_convolution_written_out(course, squeezenet):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for model, stride, padding in ((course, 2, 3), (squeezenet, 2, 0)):
        before = fingerprint(model)
        conv = filters.first_conv_layer(model)[1]
        maps = filters.first_layer_activations(model, images)
        normalised = (images - model.mean) / model.std
        expected = F.conv2d(normalised, conv.weight, conv.bias, stride=stride, padding=padding)
        torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)
        assert_unchanged(model, before)


def test_activations_refuse_bad_images_and_leave_the_model_unchanged(course):
    before = fingerprint(course)
    with pytest.raises(TypeError, match="float"):
        filters.first_layer_activations(course, torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        filters.first_layer_activations(course, torch.full((1, 3, 64, 64), 2.0))
    with pytest.raises(ValueError, match="3 colour channels"):
        filters.first_layer_activations(course, torch.rand(1, 1, 64, 64))
    assert_unchanged(course, before)


# --- rescaling and tiling ----------------------------------------------------------------

def test_rescale_each_matches_a_numpy_min_max_per_tile():
    tiles = torch.randn(6, 3, 5, 4, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 7).view(-1, 1, 1, 1)
    array = tiles.numpy().astype(np.float64)
    expected = np.stack([(t - t.min()) / (t.max() - t.min()) for t in array])
    np.testing.assert_allclose(filters.rescale_each(tiles).numpy(), expected, atol=1e-6)


def test_rescaling_keeps_the_colours_of_a_filter():
    # One scale for the three channels: a filter that is twice as strong in red as in
    # green (and zero in blue) stays so, relative to its zero level.
    pattern = torch.linspace(-1, 1, 25).view(5, 5)
    tile = torch.stack([2 * pattern, pattern, torch.zeros(5, 5)]).unsqueeze(0)
    scaled = filters.rescale_each(tile)[0]
    zero_level = scaled[2, 0, 0]  # where the weight was 0
    assert torch.allclose(scaled[2], torch.full((5, 5), 0.5))
    assert torch.allclose(scaled[0] - zero_level, 2 * (scaled[1] - zero_level), atol=1e-6)
    assert scaled.min() == 0 and scaled.max() == 1


def test_a_constant_tile_is_mid_grey():
    tiles = torch.stack([torch.full((3, 4, 4), 0.3), torch.zeros(3, 4, 4)])
    assert torch.equal(filters.rescale_each(tiles), torch.full((2, 3, 4, 4), 0.5))


@pytest.mark.parametrize("n, ncols, padding, pad_value",
                         [(32, 8, 1, 1.0), (10, 4, 2, 0.0), (3, 8, 0, 0.5), (7, 7, 1, 1.0)])
def test_filter_grid_matches_torchvision_make_grid(n, ncols, padding, pad_value):
    weights = torch.randn(n, 3, 7, 7, generator=torch.Generator().manual_seed(n))
    grid = filters.filter_grid(weights, ncols, padding=padding, pad_value=pad_value)
    expected = make_grid(weights, nrow=ncols, padding=padding, normalize=True, scale_each=True, pad_value=pad_value)
    torch.testing.assert_close(grid, expected, atol=1e-6, rtol=0)


def test_activation_grid_matches_make_grid_with_nan_padding():
    maps = torch.randn(12, 9, 11, generator=torch.Generator().manual_seed(3))
    grid = filters.activation_grid(maps, ncols=5)
    expected = make_grid(maps.unsqueeze(1), nrow=5, padding=1, normalize=True, scale_each=True, pad_value=float("nan"))
    assert grid.shape == (1,) + expected.shape[1:]
    torch.testing.assert_close(grid[0], expected[0], atol=1e-6, rtol=0, equal_nan=True)


@pytest.mark.parametrize("call, error, message", [
    (lambda: filters.tile_grid(torch.rand(4, 3, 5, 5), 0), ValueError, "ncols must be an int >= 1"),
    (lambda: filters.tile_grid(torch.rand(4, 3, 5, 5), 2, padding=-1), ValueError, "padding must be an int >= 0"),
    (lambda: filters.filter_grid(torch.rand(4, 2, 5, 5)), ValueError, r"C = 3 \(RGB filters\) or 1"),
    (lambda: filters.filter_grid(torch.rand(3, 5, 5)), ValueError, r"expected shape \(N, C, h, w\)"),
    (lambda: filters.filter_grid(torch.rand(0, 3, 5, 5)), ValueError, "at least one tile"),
    (lambda: filters.rescale_each(np.zeros((1, 3, 5, 5))), TypeError, "torch.Tensor"),
])
def test_bad_grids_are_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- the smoothness statistic ------------------------------------------------------------

def numpy_low_frequency_fraction(weights, cutoff):
    """Independent version: explicit DFT matrices, frequencies folded by hand."""
    w = weights.numpy().astype(np.float64)
    kh, kw = w.shape[-2:]
    dft_h = np.exp(-2j * np.pi * np.outer(np.arange(kh), np.arange(kh)) / kh)
    dft_w = np.exp(-2j * np.pi * np.outer(np.arange(kw), np.arange(kw)) / kw)
    spectrum = np.abs(dft_h @ w @ dft_w.T) ** 2                     # (filters, channels, kh, kw)
    energy = spectrum.sum(1)
    fy = np.array([min(k, kh - k) / kh for k in range(kh)])
    fx = np.array([min(k, kw - k) / kw for k in range(kw)])
    low = np.hypot(fy[:, None], fx[None, :]) <= cutoff + 1e-12
    return energy[:, low].sum(1) / energy.sum((1, 2))


@pytest.mark.parametrize("shape", [(5, 3, 7, 7), (4, 3, 11, 11), (6, 3, 5, 6), (3, 1, 8, 4)])
@pytest.mark.parametrize("cutoff", [0.1, 0.25, 0.4, math.sqrt(0.5)])
def test_low_frequency_fraction_matches_numpy(shape, cutoff):
    weights = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    result = filters.low_frequency_fraction(weights, cutoff)
    np.testing.assert_allclose(result.numpy(), numpy_low_frequency_fraction(weights, cutoff), atol=1e-10)


def test_constant_filters_are_maximally_smooth_and_checkerboards_minimally():
    constant = torch.ones(1, 3, 7, 7)
    assert filters.low_frequency_fraction(constant).item() == pytest.approx(1.0)
    assert filters.low_frequency_fraction(-0.2 * torch.ones(1, 3, 5, 8)).item() == pytest.approx(1.0)
    sign = (-1.0) ** torch.arange(8)
    checkerboard = torch.outer(sign, sign).expand(1, 3, 8, 8)
    assert filters.low_frequency_fraction(checkerboard).item() == pytest.approx(0.0, abs=1e-12)
    # 7x7 checkerboard: per axis |X_k| = 1 / |cos(pi k / 7)| (sum of a geometric series), total
    # energy 7 * 7 (Parseval); at cutoff 0.25 the low bins are k in {0, 1, 6} on each axis.
    sign = (-1.0) ** torch.arange(7)
    per_axis = (1 + 2 / math.cos(math.pi / 7) ** 2) / 49
    checkerboard = torch.outer(sign, sign).expand(1, 3, 7, 7)
    assert filters.low_frequency_fraction(checkerboard).item() == pytest.approx(per_axis ** 2, rel=1e-9)
    assert per_axis ** 2 < 0.006


def test_gratings_fall_on_the_side_of_the_cutoff_their_frequency_says():
    x = torch.arange(8.0)
    yy, xx = torch.meshgrid(x, x, indexing="ij")
    slow = torch.cos(2 * math.pi * 1 / 8 * xx)            # 0.125 cycles/pixel
    fast = torch.cos(2 * math.pi * 3 / 8 * yy)            # 0.375 cycles/pixel
    diagonal = torch.cos(2 * math.pi * 2 / 8 * (xx + yy))  # |f| = 0.354 cycles/pixel
    weights = torch.stack([slow, fast, diagonal]).unsqueeze(1).expand(3, 3, 8, 8)
    assert filters.low_frequency_fraction(weights, 0.25).tolist() == pytest.approx([1, 0, 0], abs=1e-12)
    assert filters.low_frequency_fraction(weights, 0.36).tolist() == pytest.approx([1, 0, 1], abs=1e-12)


def test_white_noise_scores_the_share_of_low_frequency_bins():
    # For i.i.d. Gaussian weights w / |w| is uniform on the sphere, and the low-frequency
    # share is a projection of rank 9 per channel in 49 dimensions: its mean is exactly 9 / 49.
    assert filters.low_frequency_mask(7, 7, 0.25).sum().item() == 9
    assert filters.low_frequency_mask(11, 11, 0.25).sum().item() == 21  # a^2 + b^2 <= 7.56: 1 + 4 + 4 + 4 + 8
    noise = torch.randn(4000, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    assert filters.low_frequency_fraction(noise).mean().item() == pytest.approx(9 / 49, abs=0.003)
    scores = filters.low_frequency_fraction(noise[:10])
    assert torch.allclose(filters.low_frequency_fraction(7.5 * noise[:10]), scores)  # scale does not matter


def test_a_zero_filter_has_no_share():
    weights = torch.cat([torch.zeros(1, 3, 5, 5), torch.ones(1, 3, 5, 5)])
    result = filters.low_frequency_fraction(weights)
    assert math.isnan(result[0].item()) and result[1].item() == pytest.approx(1.0)


@pytest.mark.parametrize("call, error, message", [
    (lambda: filters.low_frequency_fraction(torch.rand(4, 3, 7, 7), cutoff=0), ValueError, r"\(0, 0\.7071\]"),
    (lambda: filters.low_frequency_fraction(torch.rand(4, 3, 7, 7), cutoff=0.8), ValueError, r"\(0, 0\.7071\]"),
    (lambda: filters.low_frequency_fraction(torch.rand(4, 3, 7, 7), cutoff="low"), ValueError,
     "cutoff must be a number"),
    (lambda: filters.low_frequency_fraction(torch.rand(3, 7, 7)), ValueError, r"\(filters, channels, kh, kw\)"),
    (lambda: filters.low_frequency_fraction(torch.rand(0, 3, 7, 7)), ValueError, "non-empty"),
    (lambda: filters.low_frequency_fraction(np.zeros((1, 3, 7, 7))), TypeError, "torch.Tensor"),
])
def test_bad_statistic_input_is_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- the untrained baseline and the claim ------------------------------------------------

def test_untrained_like_is_the_same_architecture_freshly_initialised(course):
    before = fingerprint(course)
    state = torch.random.get_rng_state()
    fresh = filters.untrained_like(course, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is untouched
    def shapes(model):
        return [(k, v.shape) for k, v in model.state_dict().items()]
    assert shapes(fresh) == shapes(course)
    assert not torch.equal(filters.filter_weights(fresh), filters.filter_weights(course))
    assert torch.equal(filters.filter_weights(fresh), filters.filter_weights(filters.untrained_like(course, seed=3)))
    other_seed = filters.untrained_like(course, seed=4)
    assert not torch.equal(filters.filter_weights(fresh), filters.filter_weights(other_seed))
    assert not fresh.training and not any(p.requires_grad for p in fresh.parameters())
    assert course.trained and not fresh.trained     # vizlib.is_trained skips the claims that need training on it
    with pytest.raises(ValueError, match="known: course, .*squeezenet1_1"):
        filters.untrained_like(nn.Conv2d(3, 4, 3))
    assert_unchanged(course, before)


def test_trained_course_filters_are_far_smoother_than_random_ones(course):
    trained = filters.low_frequency_fraction(filters.filter_weights(course)).mean()
    untrained = filters.low_frequency_fraction(filters.filter_weights(filters.untrained_like(course))).mean()
    assert trained >= 2 * untrained, (trained, untrained)


def test_pictures_are_figures(course):
    import matplotlib.pyplot as plt

    weights = filters.filter_weights(course)
    maps = filters.first_layer_activations(course, torch.rand(1, 3, 64, 64))
    fig = filters.show_grids([torch.rand(3, 64, 64), filters.filter_grid(weights), filters.activation_grid(maps[0])],
                             titles=["image", "filters", "maps"])
    assert len(fig.axes) == 3
    fig2 = filters.show_spectra([weights, weights[:4]], titles=["a", "b"])
    assert len(fig2.axes) == 3  # two panels and a colour bar
    plt.close(fig)
    plt.close(fig2)
    with pytest.raises(ValueError, match="got 1 titles for 2"):
        filters.show_grids([weights[0], weights[1]], titles=["one"])


def test_filter_explorer_moves_with_every_control(course):
    from explorer_drive import drive

    images = make_shapes(3, "held_out", seed=2).images
    moved = drive(filters.filter_explorer(course, images), course)
    assert set(moved) == {"image", "weights"}
