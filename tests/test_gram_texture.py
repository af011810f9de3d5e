"""Gram texture synthesis: Gram matrices and losses against formulas written here, gradients, the cut
network, the filter bank, the measures, bad input.

Oracles (where each homework region's expected values come from):
- ChannelProducts.forward(): torch.einsum, and its gradient against autograd through einsum.
- style_loss(): a loop over the entries of the Gram matrices.
- objective() inside synthesise_texture(): the relative Gram error of the start, from features computed
  layer by layer and Gram matrices by einsum.
"""

import numpy as np
import pytest
import torch

from model_state import assert_unchanged, fingerprint
from tiny_networks import feature_network
from vizlib.gram_texture import (
    check_layer_weights, default_texture_weights, gram_distance, gram_matrix,
    random_filter_bank, style_loss, synthesise_texture, texture_filter_bank, texture_noise, texture_sample,
)
from vizlib.hooks import layer_features


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------------------- Gram matrix, loss

def test_gram_matrix_matches_einsum():
    features = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    expected = torch.einsum("nchw,ndhw->ncd", features, features) / (4 * 3)
    assert torch.allclose(gram_matrix(features), expected, rtol=1e-12, atol=1e-14)
    one = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])             # one channel: mean of squares
    assert gram_matrix(one).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gram_matrix(torch.randn(5, 4, 3))


def test_gram_matrix_gradient_is_that_of_the_product_formula():
    # the one-product backward against autograd through einsum, for an upstream gradient that is not
    # symmetric (a loss reading G[0, 1] but not G[1, 0]), and its own gradient (gradgradcheck)
    features = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 3, 3, dtype=torch.float64)
    mine, = torch.autograd.grad((gram_matrix(features) * upstream).sum(), features)
    expected, = torch.autograd.grad(
        (torch.einsum("nchw,ndhw->ncd", features, features) / 20 * upstream).sum(), features)
    assert torch.allclose(mine, expected, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(gram_matrix, (features,))
    assert torch.autograd.gradgradcheck(gram_matrix, (features,))


def test_gram_matrix_forgets_where_features_are():
    features = torch.randn(1, 6, 5, 5, dtype=torch.float64)
    order = torch.randperm(25, generator=torch.Generator().manual_seed(1))
    shuffled = features.flatten(2)[..., order].view(1, 6, 5, 5)
    assert torch.allclose(gram_matrix(shuffled), gram_matrix(features), rtol=1e-12)


def test_style_loss_matches_a_loop():
    grams = {"a": torch.randn(2, 3, 3, dtype=torch.float64), "b": torch.randn(2, 4, 4, dtype=torch.float64)}
    targets = {"a": torch.randn(1, 3, 3, dtype=torch.float64), "b": torch.randn(2, 4, 4, dtype=torch.float64)}
    weights = {"a": 0.7, "b": torch.tensor([2.0, 0.5], dtype=torch.float64)}
    expected = 0.0
    for n in range(2):
        for name, c in (("a", 3), ("b", 4)):
            target = targets[name][0 if name == "a" else n]
            w = 0.7 if name == "a" else [2.0, 0.5][n]
            expected += w * sum((grams[name][n, i, j] - target[i, j]).item() ** 2
                                for i in range(c) for j in range(c)) / (c * c)
    assert style_loss(grams, targets, weights).item() == pytest.approx(expected, rel=1e-12)
    assert style_loss(grams, grams, {"a": 1.0, "b": 1.0}).item() == 0


def test_style_loss_gradient_passes_gradcheck():
    features = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    deeper = torch.randn(2, 5, 2, 3, dtype=torch.float64, requires_grad=True)
    targets = {"a": torch.randn(1, 3, 3, dtype=torch.float64), "b": torch.randn(2, 5, 5, dtype=torch.float64)}

    def loss(f, g):
        return style_loss({"a": gram_matrix(f), "b": gram_matrix(g)}, targets, {"a": 0.3, "b": 1.5})

    assert torch.autograd.gradcheck(loss, (features, deeper))


def test_style_loss_through_a_network_passes_gradcheck():
    model = feature_network(torch.float64)

    def grams_of(x):
        features = layer_features(model, x, ["1", "3"])
        return {"1": gram_matrix(features["1"]), "3": gram_matrix(features["3"])}

    targets = grams_of(rand(1, 3, 6, 6, seed=1, dtype=torch.float64))
    images = (rand(1, 3, 6, 6, seed=2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)

    def loss(x):
        return style_loss(grams_of(x), targets, {"1": 1.0, "3": 0.5})

    assert torch.autograd.gradcheck(loss, (images,))


# ---------------------------------------------------------------------------------- features, cut

def test_layer_features_equal_a_manual_forward_and_skip_later_layers(course):
    images = rand(2, 3, 64, 64)
    before = fingerprint(course)
    calls = []
    later = [course.layer(name).register_forward_hook(lambda *args: calls.append(1))
             for name in ("features.conv4", "features.relu5", "classifier.fc2")]
    try:
        features = layer_features(course, images, ["features.relu3", "features.relu1"])
    finally:
        for handle in later:
            handle.remove()
    assert calls == [], "layers after the deepest requested one ran"
    assert list(features) == ["features.relu3", "features.relu1"]
    with torch.no_grad():
        x = (images - course.mean) / course.std      # the wrapper's normalisation
        manual = {}
        for name, module in course.net.features.named_children():
            x = module(x)
            manual[f"features.{name}"] = x
            if name == "relu3":
                break
    for name, value in features.items():
        assert torch.allclose(value, manual[name], atol=1e-5)
    assert_unchanged(course, before)


def test_layer_features_keep_the_graph_to_the_input():
    model = feature_network()
    images = rand(1, 3, 8, 8).requires_grad_(True)
    features = layer_features(model, images, "3")
    (grad,) = torch.autograd.grad(features["3"].sum(), images)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least one layer"):
        layer_features(model, images, [])


# ---------------------------------------------------------------------------------- synthesis

def test_synthesis_lowers_the_loss_keeps_pixels_in_range_and_is_seeded():
    model = feature_network()
    sample = texture_sample("brick", 24)
    before = fingerprint(model)
    first = synthesise_texture(model, sample, {"1": 1.0, "3": 1.0}, size=16, steps=8, seed=3, show_progress=False)
    second = synthesise_texture(model, sample, {"1": 1.0, "3": 1.0}, size=16, steps=8, seed=3, show_progress=False)
    assert torch.equal(first.images, second.images) and first.images.shape == (1, 3, 16, 16)
    assert 0 <= first.images.min() and first.images.max() <= 1
    assert first.losses[-1] < 0.5 * first.losses[0]
    adam = synthesise_texture(model, sample, {"1": 1.0}, steps=5, optimizer="adam", show_progress=False)
    assert adam.images.shape == sample.shape and adam.losses[-1] < adam.losses[0]
    assert_unchanged(model, before)


def test_the_reported_loss_is_the_relative_gram_error_of_the_start():
    """Losses are sum_l mean (G_l - A_l)^2 / mean A_l^2, the first one at the starting image."""
    model = feature_network(torch.float64)
    sample = rand(1, 3, 10, 10, seed=4, dtype=torch.float64)
    start = texture_noise((1, 3, 10, 10), seed=5).double()
    result = synthesise_texture(model, sample, {"1": 2.0, "3": 1.0}, init=start, steps=1, show_progress=False)
    with torch.no_grad():
        h = lambda x: (x - 0.5) / 0.25  # noqa: E731
        feats = lambda x: {"1": torch.relu(model.net[0](h(x))),  # noqa: E731
                           "3": torch.relu(model.net[2](torch.relu(model.net[0](h(x)))))}
        fs, fx = feats(sample), feats(start)
    expected = 0.0
    for name, w in (("1", 2.0), ("3", 1.0)):
        a = torch.einsum("nchw,ndhw->ncd", fs[name], fs[name]) / 100
        g = torch.einsum("nchw,ndhw->ncd", fx[name], fx[name]) / 100
        expected += w * ((g - a) ** 2).mean() / (a ** 2).mean()
    assert result.losses[0] == pytest.approx(expected.item(), rel=1e-9)


def test_texture_noise_is_faint_and_seeded():
    noise = texture_noise((2, 3, 16, 16), seed=1)
    assert torch.equal(noise, texture_noise((2, 3, 16, 16), seed=1))
    assert 0.3 < noise.min() and noise.max() < 0.7 and abs(noise.mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("weights, error, words", [
    ({"1": -1.0, "3": 1.0}, ValueError, "must be >= 0"),
    ({"1": 0.0, "3": 0.0}, ValueError, "all layer weights are zero"),
    ({}, ValueError, "empty"),
    ({"nope": 1.0}, ValueError, "unknown layer 'nope'; valid layer names"),
    ([("1", 1.0)], TypeError, "must be a dict"),
])
def test_bad_weights_are_clear_errors_and_change_nothing(weights, error, words):
    model = feature_network()
    before = fingerprint(model)
    with pytest.raises(error, match=words):
        synthesise_texture(model, rand(1, 3, 12, 12), weights, steps=1, show_progress=False)
    assert_unchanged(model, before)


def test_bad_input_to_style_loss_and_synthesis():
    grams = {"a": torch.eye(2)[None]}
    with pytest.raises(ValueError, match="must be >= 0"):
        style_loss(grams, grams, {"a": -0.1})
    with pytest.raises(ValueError, match="all layer weights are zero"):
        style_loss(grams, grams, {"a": 0})
    with pytest.raises(ValueError, match="no Gram matrix for weighted layer"):
        style_loss(grams, grams, {"b": 1.0})
    with pytest.raises(ValueError, match="must be >= 0"):
        check_layer_weights({"a": torch.tensor([1.0, -1.0])})
    model = feature_network()
    with pytest.raises(ValueError, match="size must be"):
        synthesise_texture(model, rand(1, 3, 12, 12), {"1": 1.0}, size=0, show_progress=False)
    with pytest.raises(ValueError, match="values in"):
        synthesise_texture(model, rand(1, 3, 12, 12) * 255, {"1": 1.0}, show_progress=False)
    with pytest.raises(ValueError, match="2 samples"):
        synthesise_texture(model, rand(2, 3, 12, 12), {"1": 1.0}, init=rand(1, 3, 12, 12), show_progress=False)
    with pytest.raises(ValueError, match="no default texture layers"):
        default_texture_weights(model)


# ---------------------------------------------------------------------------------- filter bank

def test_filter_bank_layers_pyramid_and_seed():
    state = torch.random.get_rng_state()
    bank = random_filter_bank(kernel_sizes=(3, 5), channels=4, octaves=3, seed=2)
    assert torch.equal(torch.random.get_rng_state(), state), "the global random state changed"
    assert default_texture_weights(bank) == {name: 1.0 for name in (
        "scale3.1", "scale5.1", "scale3_down2.1", "scale5_down2.1", "scale3_down4.1", "scale5_down4.1")}
    again = random_filter_bank(kernel_sizes=(3, 5), channels=4, octaves=3, seed=2)
    other = random_filter_bank(kernel_sizes=(3, 5), channels=4, octaves=3, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(bank.parameters(), again.parameters()))
    assert not torch.equal(bank.net.scale3[0].weight, other.net.scale3[0].weight)
    features = layer_features(bank, rand(1, 3, 20, 24), default_texture_weights(bank))
    assert features["scale5.1"].shape == (1, 4, 20, 24)
    assert features["scale3_down2.1"].shape == (1, 4, 10, 12)
    assert features["scale5_down4.1"].shape == (1, 4, 5, 6)
    assert all((f >= 0).all() for f in features.values())


def test_filter_bank_octave_is_a_binomial_blur_and_subsampling():
    bank = random_filter_bank(kernel_sizes=(3,), channels=2, octaves=2)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    taps = np.array([1, 4, 6, 4, 1]) / 16.0
    padded = np.pad(x[0].numpy(), ((0, 0), (2, 2), (2, 2)), mode="reflect")
    expected = np.zeros((3, 4, 4))
    for c in range(3):
        for i in range(4):
            for j in range(4):
                window = padded[c, 2 * i:2 * i + 5, 2 * j:2 * j + 5]
                expected[c, i, j] = (np.outer(taps, taps) * window).sum()
    assert np.allclose(bank.net.downsample(x)[0].numpy(), expected, atol=1e-12)
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert torch.allclose(bank.net.downsample(flat), torch.full((1, 3, 4, 4), 0.3))


def test_filter_bank_bad_arguments_and_small_images():
    with pytest.raises(ValueError, match="odd positive"):
        random_filter_bank(kernel_sizes=(4,))
    with pytest.raises(ValueError, match="channels must be a positive int"):
        random_filter_bank(channels=0)
    with pytest.raises(TypeError, match="octaves must be a positive int"):
        random_filter_bank(octaves=2.5)
    with pytest.raises(ValueError, match="at least 32 x 32"):
        texture_filter_bank()(rand(1, 3, 16, 40))


# ---------------------------------------------------------------------------------- measures

def test_gram_distance_matches_its_formula():
    model = feature_network(torch.float64)
    images, sample = rand(2, 3, 8, 8, seed=1, dtype=torch.float64), rand(1, 3, 10, 10, seed=2, dtype=torch.float64)
    with torch.no_grad():
        a = torch.relu(model.net[0]((sample - 0.5) / 0.25))
        g = torch.relu(model.net[0]((images - 0.5) / 0.25))
    a = torch.einsum("nchw,ndhw->ncd", a, a) / 100
    g = torch.einsum("nchw,ndhw->ncd", g, g) / 64
    expected = ((g - a) ** 2).mean(dim=(1, 2)) / (a ** 2).mean()
    assert torch.allclose(gram_distance(model, images, ["1"], sample), expected, rtol=1e-10)
    assert gram_distance(model, sample, ["1", "3"], sample).item() == 0


def test_texture_samples():
    brick = texture_sample("brick", 32)
    assert brick.shape == (1, 3, 32, 32) and torch.equal(brick[:, 0], brick[:, 2])
    assert not torch.equal(texture_sample("brick", 32, reference=True), brick)
    with pytest.raises(ValueError, match="available: brick"):
        texture_sample("marble", 32)
    with pytest.raises(ValueError, match="with a reference crop"):
        texture_sample("china roof", 32, reference=True)


def test_synthesis_runs_the_network_only_to_its_deepest_layer_and_leaves_it_unchanged(course):
    before = fingerprint(course)
    deeper = []                                   # calls of a layer after the deepest one the loss uses
    handle = course.layer("features.conv3").register_forward_hook(lambda *args: deeper.append(1))
    try:
        result = synthesise_texture(course, texture_sample("gravel", 32),
                                    {"features.relu1": 1.0, "features.relu2": 1.0}, steps=2, show_progress=False)
    finally:
        handle.remove()
    assert torch.isfinite(result.images).all() and len(result.losses) == 2
    assert deeper == []
    assert_unchanged(course, before)
