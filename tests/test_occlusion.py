"""Occlusion: the per-pixel map against captum.attr.Occlusion, the window grid against a plain loop.

Oracles (where each homework region's expected values come from):
- grid_to_pixels(): captum.attr.Occlusion's per-pixel map.
- occlusion(): a plain loop, one forward pass per window; the closed form of a linear model.
"""

import pytest
import torch
from captum.attr import Occlusion
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import make_shapes
from vizlib.occlusion import largest_drop_points, occlusion, peak_positions, show_occlusion, window_starts

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def tiny_model():
    """A small hand-built classifier (5 classes) that takes images of any size."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5),
    )
    return net.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(scope="module")
def course_images():
    images, labels, _ = make_shapes(2, "held_out", seed=5)
    return images, labels


@pytest.fixture(scope="module")
def tiny_images():
    return torch.rand(3, 3, 13, 11, generator=torch.Generator().manual_seed(1))


def captum_map(model, images, targets, window, stride, fill, score="logit"):
    forward = model if score == "logit" else (lambda x: model(x).softmax(1))
    fill = fill if isinstance(fill, float) else torch.tensor(fill).view(1, 3, 1, 1)
    attribution = Occlusion(forward).attribute(
        images, sliding_window_shapes=(3,) + window, strides=(3,) + stride, baselines=fill,
        target=targets, perturbations_per_eval=16,
    )
    # captum's windows span all three colour channels, so the three channels agree
    torch.testing.assert_close(attribution, attribution[:, :1].expand_as(attribution), rtol=0, atol=0)
    return attribution[:, 0]


def brute_force_grid(model, images, targets, window, stride, fill):
    """One forward pass per window, positions found by walking until the image is covered."""
    (kh, kw), (sh, sw) = window, stride
    height, width = images.shape[-2:]

    def starts(size, k, s):
        position, found = 0, [0]
        while position + k < size:
            position += s
            found.append(position)
        return found

    grid = torch.zeros(len(images), len(starts(height, kh, sh)), len(starts(width, kw, sw)))
    with torch.no_grad():
        for n, (image, target) in enumerate(zip(images, targets)):
            base = model(image[None])[0, target]
            for i, top in enumerate(starts(height, kh, sh)):
                for j, left in enumerate(starts(width, kw, sw)):
                    copy = image.clone()
                    copy[:, top:top + kh, left:left + kw] = fill
                    grid[n, i, j] = base - model(copy[None])[0, target]
    return grid


# course model: stride 9 does not divide 64 - 24 = 40, so the last window (at 45) is cut off
COURSE_CASE = dict(window=(24, 24), stride=(9, 9), fill=0.5)
# tiny model on 13x11 images: rows 0, 3, 6, 9 (the last one cut off), columns 0, 2, 4, 6, 8
TINY_CASE = dict(window=(5, 3), stride=(3, 2), fill=0.25)


@pytest.fixture(scope="module")
def course_captum(course, course_images):
    images, labels = course_images
    return captum_map(course, images, labels, COURSE_CASE["window"], COURSE_CASE["stride"], COURSE_CASE["fill"])


@pytest.mark.parametrize("batch_size", [1, 7, "all"])
def test_maps_equal_captum_on_course_model(course, course_images, course_captum, batch_size):
    images, labels = course_images
    batch = len(images) * 6 * 6 if batch_size == "all" else batch_size
    before = fingerprint(course)
    result = occlusion(course, images, labels, batch_size=batch, show_progress=False, **COURSE_CASE)
    assert_unchanged(course, before)
    assert result.grid.shape == (2, 6, 6) and result.maps.shape == (2, 64, 64)
    torch.testing.assert_close(result.maps, course_captum, **TOLERANCE)


@pytest.mark.parametrize("batch_size", [1, 7, "all"])
def test_maps_equal_captum_on_hand_built_model(tiny, tiny_images, batch_size):
    batch = len(tiny_images) * 4 * 5 if batch_size == "all" else batch_size
    targets = torch.tensor([0, 3, 4])
    result = occlusion(tiny, tiny_images, targets, batch_size=batch, show_progress=False, **TINY_CASE)
    assert result.grid.shape == (3, 4, 5)
    expected = captum_map(tiny, tiny_images, targets, TINY_CASE["window"], TINY_CASE["stride"], TINY_CASE["fill"])
    torch.testing.assert_close(result.maps, expected, **TOLERANCE)


def test_probability_score_colour_fill_and_predicted_class_match_captum(tiny, tiny_images):
    fill = (0.2, 0.9, 0.4)
    result = occlusion(tiny, tiny_images, window=4, stride=3, fill=fill, score="probability",
                       batch_size=5, show_progress=False)
    predicted = tiny(tiny_images).argmax(1)
    assert torch.equal(result.classes, predicted)
    expected = captum_map(tiny, tiny_images, predicted, (4, 4), (3, 3), fill, score="probability")
    torch.testing.assert_close(result.maps, expected, **TOLERANCE)


def test_grid_equals_brute_force_loop(course, course_images, tiny, tiny_images):
    images, labels = course_images
    result = occlusion(course, images, labels, batch_size=13, show_progress=False, **COURSE_CASE)
    expected = brute_force_grid(course, images, labels, COURSE_CASE["window"], COURSE_CASE["stride"], 0.5)
    torch.testing.assert_close(result.grid, expected, **TOLERANCE)
    assert result.row_starts.tolist() == [0, 9, 18, 27, 36, 45]

    targets = torch.tensor([1, 2, 0])
    result = occlusion(tiny, tiny_images, targets, batch_size=6, show_progress=False, **TINY_CASE)
    expected = brute_force_grid(tiny, tiny_images, targets, TINY_CASE["window"], TINY_CASE["stride"], 0.25)
    torch.testing.assert_close(result.grid, expected, **TOLERANCE)
    assert result.row_starts.tolist() == [0, 3, 6, 9] and result.col_starts.tolist() == [0, 2, 4, 6, 8]


def test_linear_model_closed_form():
    """For score = sum(w * x), hiding a window drops the score by sum over the window of w * (x - fill)."""
    torch.manual_seed(3)
    weights = torch.randn(3, 10, 10)

    class Linear(nn.Module):
        def forward(self, x):
            return torch.stack([(x * weights).sum((1, 2, 3)), -(x * weights).sum((1, 2, 3))], dim=1)

    image = torch.rand(1, 3, 10, 10)
    result = occlusion(Linear(), image, 0, window=4, stride=2, fill=0.5, show_progress=False)
    contribution = (weights * (image[0] - 0.5)).sum(0)
    for i, top in enumerate((0, 2, 4, 6)):
        for j, left in enumerate((0, 2, 4, 6)):
            expected = contribution[top:top + 4, left:left + 4].sum()
            torch.testing.assert_close(result.grid[0, i, j], expected, rtol=1e-5, atol=1e-5)


def test_whole_image_window_gives_one_position(course, course_images):
    images, labels = course_images
    result = occlusion(course, images, labels, window=64, stride=64, fill=0.5, show_progress=False)
    grey = torch.full_like(images, 0.5)
    with torch.no_grad():
        expected = course(images).gather(1, labels[:, None])[:, 0] - course(grey)[:, labels].diagonal()
    assert result.grid.shape == (2, 1, 1)
    torch.testing.assert_close(result.grid[:, 0, 0], expected, **TOLERANCE)
    torch.testing.assert_close(result.maps, expected[:, None, None].expand(2, 64, 64), **TOLERANCE)


def test_peak_positions():
    maps = torch.zeros(2, 5, 7)
    maps[0, 3, 1] = 2.0
    maps[1, 0, 6] = 1.0
    assert peak_positions(maps).tolist() == [[3, 1], [0, 6]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window=65), "window height must be between 1 and the image height 64"),
        (dict(window=(8, 70)), "window width must be between 1 and the image width 64"),
        (dict(window=0), "between 1 and the image height 64"),
        (dict(window=8, stride=0), r"stride \(height\) must be between 1 and the window height 8"),
        (dict(window=8, stride=-2), r"stride \(height\) must be between 1 and the window height 8"),
        (dict(window=8, stride=9), r"between 1 and the window height 8"),
        (dict(window=64, stride=0), "stride .* must be at least 1"),
        (dict(classes=8), r"class index out of range: valid indices are 0 to 7, got \[8, 8\]"),
        (dict(classes=-1), "valid indices are 0 to 7"),
        (dict(classes=[0, 1, 2]), "got 3 class indices for 2 images"),
        (dict(fill=1.5), r"fill values must be in \[0, 1\]"),
        (dict(fill=(0.1, 0.2)), "one grey level or an RGB triple"),
        (dict(score="softmax"), "score must be one of logit, probability"),
        (dict(batch_size=0), "batch_size must be a positive int"),
    ],
)
def test_bad_input_is_a_clear_error_and_leaves_the_model_alone(course, course_images, kwargs, message):
    images, _ = course_images
    before = fingerprint(course)
    with pytest.raises(ValueError, match=message):
        occlusion(course, images, show_progress=False, **kwargs)
    assert_unchanged(course, before)


def test_bad_types_and_empty_batch(course, course_images):
    images, _ = course_images
    before = fingerprint(course)
    with pytest.raises(TypeError, match="window must be an int or a pair"):
        occlusion(course, images, window=8.0)
    with pytest.raises(TypeError, match="class indices must be integers"):
        occlusion(course, images, classes=1.0)
    with pytest.raises(TypeError, match="batch_size must be a positive int"):
        occlusion(course, images, batch_size=2.0)
    with pytest.raises(TypeError, match="float tensor"):
        occlusion(course, (images * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="the batch is empty"):
        occlusion(course, images[:0])
    assert_unchanged(course, before)


def test_model_in_training_mode_is_refused_and_left_alone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    net(torch.rand(2, 3, 8, 8))  # materialise the lazy layer; net stays in training mode
    before = fingerprint(net)
    with pytest.raises(ValueError, match=r"training mode.*model.eval\(\)"):
        occlusion(net, torch.rand(1, 3, 8, 8), window=4, stride=2, show_progress=False)
    assert_unchanged(net, before)


def test_model_that_fails_midway_is_left_alone(course, course_images):
    images, labels = course_images
    calls = []

    class Flaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = course

        def forward(self, x):
            calls.append(len(x))
            if len(calls) == 3:
                raise RuntimeError("boom")
            return self.inner(x)

    flaky = Flaky()
    before = fingerprint(course)
    with pytest.raises(RuntimeError, match="boom"):
        occlusion(flaky, images, labels, window=16, stride=8, batch_size=10, show_progress=False)
    assert_unchanged(course, before)


def test_largest_drop_points_are_window_centres(tiny, tiny_images):
    result = occlusion(tiny, tiny_images, 0, show_progress=False, **TINY_CASE)
    # rows start at 0, 3, 6, 9 (window 5, the last cut off at 13); columns at 0, 2, 4, 6, 8 (window 3)
    row_centres, col_centres = [2, 5, 8, 11], [1, 3, 5, 7, 9]
    points = largest_drop_points(result)
    for grid, (row, col) in zip(result.grid, points.tolist()):
        i, j = divmod(int(grid.argmax()), grid.shape[1])
        assert (row, col) == (row_centres[i], col_centres[j])


def test_show_occlusion_draws_one_column_per_image(tiny, tiny_images):
    import matplotlib.pyplot as plt

    result = occlusion(tiny, tiny_images, 0, show_progress=False, **TINY_CASE)
    fig = show_occlusion(tiny_images, result, titles=["a", "b", "c"])
    assert len(fig.axes) == 9
    plt.close(fig)


def test_window_starts_checks_its_arguments():
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="between 1 and the window height 4"):
        window_starts(11, 4, 0)
    with pytest.raises(ValueError, match="between 1 and the image height 11"):
        window_starts(11, 12, 3)


def test_occlusion_explorer_moves_with_every_control(course):
    from explorer_drive import drive

    from vizlib.occlusion import occlusion_explorer

    images = make_shapes(2, "held_out", seed=3).images
    moved = drive(occlusion_explorer(course, images, show_progress=False), course)
    assert set(moved) == {"image", "window", "stride"} and moved["window"] == [4, 8, 16]
