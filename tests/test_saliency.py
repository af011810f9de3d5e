"""Saliency maps and SmoothGrad, checked against captum and against loops written here.

Oracles (where each homework region's expected values come from):
- saliency(): captum.attr.Saliency's per-channel |gradient|, reduced over channels here; the closed form
  |w| / std of a linear model.
- smoothgrad(): the same noise drawn here, one noisy copy at a time, each map from captum.
"""

import copy

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import make_shapes
from vizlib.saliency import (
    attribution_map, centre_bias_maps, mask_share, pointing_game, random_maps, roughness, saliency, show_maps,
    smoothgrad,
)
from vizlib.wrapper import VizModel, freeze


@pytest.fixture
def small_classifier():
    """A small hand-built network: conv, ReLU, max-pool, linear; 5 classes, any image size >= 4."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.Tanh(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5),
    )
    return freeze(VizModel(net, name="tiny", class_names="abcde", input_size=12, mean=(0.4,) * 3, std=(0.3,) * 3))


@pytest.fixture(scope="module")
def shapes():
    images, labels, masks = make_shapes(10, "held_out", seed=3)
    return images, labels, masks


def captum_saliency(model, images, classes):
    """The oracle: captum's per-channel |gradient|, then the max over the colour channels."""
    attributions = Saliency(model).attribute(images.clone().requires_grad_(True), target=classes.tolist(), abs=True)
    assert attributions.shape == images.shape  # captum keeps the channels
    return attributions.amax(dim=1)


def test_saliency_equals_captum_on_the_course_model(course, shapes):
    images, labels, _ = shapes
    before = fingerprint(course)
    ours = saliency(course, images, labels)
    assert ours.shape == (10, 64, 64) and (ours >= 0).all()
    assert (ours - captum_saliency(course, images, labels)).abs().max() <= 1e-6
    assert_unchanged(course, before)


def test_saliency_defaults_to_the_predicted_class(course, shapes):
    images, _, _ = shapes
    with torch.no_grad():
        predicted = course(images).argmax(1)
    expected = captum_saliency(course, images, predicted)
    assert (saliency(course, images) - expected).abs().max() <= 1e-6
    # one int is used for every image
    assert (saliency(course, images, 4) - captum_saliency(course, images, torch.full((10,), 4))).abs().max() <= 1e-6


def test_saliency_equals_captum_on_a_hand_built_model_for_any_batch_size(small_classifier):
    images = torch.rand(7, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    expected = captum_saliency(small_classifier, images, classes)
    for batch_size in (1, 3, 64):
        ours = saliency(small_classifier, images, classes, batch_size=batch_size)
        assert (ours - expected).abs().max() <= 1e-6, f"batch_size={batch_size}"


def test_saliency_of_a_linear_model_is_its_weight_magnitude():
    """Closed form: for score = w . ((x - mean) / std), d score / dx = w / std, whatever x is."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 5, 2))
    model = freeze(VizModel(net, name="linear", class_names="ab", input_size=4, mean=(0.5,) * 3, std=(0.2, 0.4, 0.5)))
    weights = net[1].weight.detach().view(2, 3, 4, 5) / model.std
    images = torch.rand(3, 3, 4, 5)
    maps = saliency(model, images, [1, 0, 1])
    for n, cls in enumerate([1, 0, 1]):
        assert torch.allclose(maps[n], weights[cls].abs().amax(0), atol=1e-6)


def test_one_rule_reads_an_attribution_as_a_map_and_saliency_follows_it():
    attributions = torch.tensor([[[[1.0, -4.0]], [[-2.0, 0.5]], [[0.5, 3.0]]]])       # (1, 3, 1, 2)
    assert attribution_map(attributions).tolist() == [[[2.0, 4.0]]]
    assert attribution_map(torch.tensor([[[-1.0, 2.0]]])).tolist() == [[[0.0, 2.0]]]
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 5, 2))
    model = freeze(VizModel(net, name="linear", class_names="ab", input_size=4, mean=(0.5,) * 3, std=(0.2, 0.4, 0.5)))
    images = torch.rand(2, 3, 4, 5)
    gradient = Saliency(model).attribute(images.clone().requires_grad_(True), target=[1, 0], abs=False)
    assert torch.allclose(saliency(model, images, [1, 0]), attribution_map(gradient), atol=1e-6)


def brute_force_smoothgrad(model, images, classes, n_samples, noise_level, seed):
    """SmoothGrad as the docstring specifies it, one noisy copy at a time, with captum for each map."""
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(images), *images.shape[-2:])
    for _ in range(n_samples):
        z = torch.randn(images.shape, generator=generator)
        noisy = images.clone()
        for i in range(len(images)):
            spread = (images[i].max() - images[i].min()).item()
            noisy[i] = (images[i] + noise_level * spread * z[i]).clamp(0, 1)
        total += captum_saliency(model, noisy, classes)
    return total / n_samples


def test_smoothgrad_equals_a_brute_force_loop_with_the_same_noise(course, shapes):
    images, labels, _ = shapes
    images, labels = images[:4], labels[:4]
    expected = brute_force_smoothgrad(course, images, labels, n_samples=5, noise_level=0.2, seed=7)
    before = fingerprint(course)
    for batch_size in (4, 12, 64):  # one, three, or all five noisy copies per pass
        ours = smoothgrad(course, images, labels, n_samples=5, noise_level=0.2, seed=7,
                          batch_size=batch_size, show_progress=False)
        assert (ours - expected).abs().max() <= 1e-6, f"batch_size={batch_size}"
    assert_unchanged(course, before)


def test_smoothgrad_without_noise_is_saliency_and_is_reproducible(small_classifier):
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    classes = torch.tensor([1, 3, 0])
    plain = captum_saliency(small_classifier, images, classes)
    assert (smoothgrad(small_classifier, images, classes, n_samples=3, noise_level=0.0) - plain).abs().max() <= 1e-6
    def seeded(seed):
        return smoothgrad(small_classifier, images, classes, n_samples=4, seed=seed, show_progress=False)
    first = seeded(5)
    assert torch.equal(first, seeded(5))
    assert not torch.equal(first, seeded(6))
    # the default class is the prediction on the clean image, not on the noisy copies
    with torch.no_grad():
        predicted = small_classifier(images).argmax(1)
    assert torch.equal(smoothgrad(small_classifier, images, n_samples=2, seed=1),
                       smoothgrad(small_classifier, images, predicted, n_samples=2, seed=1))


def test_the_input_and_its_gradient_are_left_alone(course, shapes):
    images = shapes[0][:2].clone().requires_grad_(True)
    images.grad = torch.ones_like(images)
    copy = images.detach().clone()
    saliency(course, images)
    smoothgrad(course, images, n_samples=2, show_progress=False)
    assert torch.equal(images.grad, torch.ones_like(images)) and torch.equal(images.detach(), copy)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, x: saliency(m, x, 8), ValueError, r"0 to 7"),
        (lambda m, x: saliency(m, x, -1), ValueError, r"0 to 7"),
        (lambda m, x: saliency(m, x, [0, 1, 2]), ValueError, r"3 class indices for 2 images"),
        (lambda m, x: smoothgrad(m, x, [9, 0], n_samples=2), ValueError, r"0 to 7"),
        (lambda m, x: saliency(m, x[0]), ValueError, r"4 dimensions.*unsqueeze"),
        (lambda m, x: saliency(m, x[:, :1]), ValueError, r"3 colour channels"),
        (lambda m, x: saliency(m, (x * 255).to(torch.uint8)), TypeError, r"float"),
        (lambda m, x: saliency(m, x * 255), ValueError, r"\[0, 1\].*255"),
        (lambda m, x: saliency(m, x[..., :8, :8]), ValueError, r"size 8x8.*input size is 64x64"),
        (lambda m, x: saliency(m, x, batch_size=0), ValueError, r"batch_size"),
        (lambda m, x: smoothgrad(m, x, n_samples=0), ValueError, r"n_samples"),
        (lambda m, x: smoothgrad(m, x, noise_level=1.5), ValueError, r"noise_level.*between 0 and 1"),
        (lambda m, x: smoothgrad(m, x, noise_level=-0.1), ValueError, r"noise_level"),
    ],
)
def test_bad_input_is_a_clear_error_and_the_model_is_unchanged(course, shapes, call, error, message):
    before = fingerprint(course)
    with pytest.raises(error, match=message):
        call(course, shapes[0][:2].clone())
    assert_unchanged(course, before)


def test_an_empty_batch_is_refused(course):
    empty = torch.zeros(0, 3, 64, 64)
    for method in (saliency, smoothgrad):
        with pytest.raises(ValueError, match="the batch is empty"):
            method(course, empty)


def test_mask_share_and_pointing_game_match_loops():
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(5, 6, 7, generator=generator) ** 3
    masks = torch.rand(5, 6, 7, generator=generator) > 0.6
    shares, hits = mask_share(maps, masks), pointing_game(maps, masks)
    m, k = maps.numpy(), masks.numpy()
    for n in range(5):
        inside = sum(m[n, y, x] for y in range(6) for x in range(7) if k[n, y, x])
        assert shares[n].item() == pytest.approx(inside / m[n].sum(), rel=1e-5)
        y, x = np.unravel_index(np.argmax(m[n]), m[n].shape)
        assert bool(hits[n]) == bool(k[n, y, x])
    assert mask_share(masks.float(), masks).tolist() == [1.0] * 5
    assert mask_share(torch.zeros(1, 6, 7), masks[:1]).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        mask_share(maps, masks[:, :5])
    with pytest.raises(ValueError, match="non-negative"):
        pointing_game(-maps, masks)


def test_baseline_maps():
    centre = centre_bias_maps(2, 8, 10, sigma=0.25)
    assert centre.shape == (2, 8, 10)
    assert torch.allclose(centre, centre.flip(-1)) and torch.allclose(centre, centre.flip(-2))
    assert centre[0, 3:5, 4:6].min() == centre.max()  # the peak is the four central pixels
    # standard deviation 0.25 * 8 = 2 pixels vertically: exp(-1/2) one sigma from the centre
    expected = np.exp(-0.5 * ((1.5 - 4) ** 2 / 4 + (4.5 - 5) ** 2 / 6.25))
    assert centre[0, 1, 4].item() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(random_maps(3, 4, 4, seed=1), random_maps(3, 4, 4, seed=1))
    assert not torch.equal(random_maps(3, 4, 4, seed=1), random_maps(3, 4, 4, seed=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_device_of_its_inputs(course, shapes):
    images, labels, _ = shapes
    gpu_model = copy.deepcopy(course).cuda()

    def close(gpu, cpu):  # cuDNN may use TF32 convolutions: compare relative to the map's scale
        assert gpu.device.type == "cuda"
        assert (gpu.cpu() - cpu).abs().max() <= 1e-2 * cpu.abs().max()

    close(saliency(gpu_model, images.cuda(), labels.cuda()), saliency(course, images, labels))
    close(
        smoothgrad(gpu_model, images.cuda(), labels, n_samples=3, show_progress=False),
        smoothgrad(course, images, labels, n_samples=3, show_progress=False),
    )


def test_roughness_matches_a_loop_and_ignores_scale():
    maps = torch.rand(2, 4, 5, generator=torch.Generator().manual_seed(3))
    m = maps.numpy()
    for n in range(2):
        across = np.mean([abs(m[n, y, x + 1] - m[n, y, x]) for y in range(4) for x in range(4)])
        down = np.mean([abs(m[n, y + 1, x] - m[n, y, x]) for y in range(3) for x in range(5)])
        assert roughness(maps)[n].item() == pytest.approx((across + down) / 2 / m[n].mean(), rel=1e-5)
    assert torch.allclose(roughness(3 * maps), roughness(maps))
    assert roughness(torch.full((1, 4, 4), 2.0)).item() == 0.0


def test_show_maps_draws_one_row_per_map(shapes):
    import matplotlib.pyplot as plt

    images, _, masks = shapes
    maps = {"a": torch.rand(3, 64, 64), "b": torch.zeros(3, 64, 64)}
    fig = show_maps(images[:3], maps, masks[:3], titles=["x", "y", "z"])
    assert len(fig.axes) == 9 and [ax.get_title() for ax in fig.axes[:4]] == ["x", "y", "z", "a"]
    plt.close(fig)
    fig = show_maps(images[:3], maps)  # no masks: no outlines
    plt.close(fig)
    # a map is drawn up to its 99th percentile: one hot pixel saturates instead of darkening all the others
    spiky = torch.linspace(0, 1, 64 * 64).view(1, 64, 64).clone()
    spiky[0, 0, 0] = 1000.0
    for percentile, top in ((99.0, np.percentile(spiky.numpy(), 99.0)), (100.0, 1000.0)):
        fig = show_maps(images[:1], {"spiky": spiky}, percentile=percentile)
        assert fig.axes[1].images[0].get_clim() == pytest.approx((0.0, top))
        plt.close(fig)
    with pytest.raises(ValueError, match="2 maps for 3 images"):
        show_maps(images[:3], {"a": torch.rand(2, 64, 64)})


def test_saliency_explorer_moves_with_every_control(course):
    from explorer_drive import drive

    from vizlib.saliency import saliency_explorer

    images = make_shapes(2, "held_out", seed=3).images
    moved = drive(saliency_explorer(course, images, max_samples=6), course)
    assert set(moved) == {"image", "method", "noise level", "samples"}
