"""Style transfer: losses against formulas written here, gradients, the cut network, bad input.

Oracles (where each homework region's expected values come from):
- content_loss(): the closed form, one image at a time.
- StyleTransferLoss.terms_of_features(): features computed layer by layer, Gram matrices by einsum, the
  regulariser as squared neighbour differences.
"""

import numpy as np
import pytest
import torch
from torch import nn

from model_state import assert_unchanged, fingerprint
from tiny_networks import feature_network
from vizlib.gram_texture import default_layer_weights
from vizlib.layers import layer_for, layers_for
from vizlib.models import IMAGENET_MODELS, random_imagenet_model
from vizlib.style_transfer import (
    CONTENT_LAYER, STYLE_WEIGHTS, StyleTransferLoss, TransformNet, colour_histogram_intersection, content_loss,
    default_style_model, edge_correlation, stylise, style_transfer,
)


def images(n=1, size=8, seed=0, dtype=torch.float32):
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_content_loss_closed_form():
    f, p = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    expected = sum(((f[i] - p[i]) ** 2).sum() / (p[i] ** 2).sum() for i in range(2))
    assert torch.allclose(content_loss(f, p), expected)
    assert content_loss(p, p) == 0


def test_terms_match_an_independent_computation():
    model = feature_network(torch.float64)
    content, style, x = images(2, 8, 1, torch.float64), images(1, 10, 2, torch.float64), images(2, 8, 3, torch.float64)
    loss = StyleTransferLoss(model, style, content_layer="3", style_weights={"1": 0.7, "3": 0.2},
                             content_weight=1.5, tv_weight=0.3)
    terms = loss.terms(x, loss.content_targets(content))

    def feats(img):
        h = (img - 0.5) / 0.25
        a1 = torch.relu(model.net[0](h))
        a3 = torch.relu(model.net[2](a1))
        return {"1": a1, "3": a3}

    def gram(a):
        return torch.einsum("nchw,ndhw->ncd", a, a) / (a.shape[2] * a.shape[3])

    fx, fc, fs = feats(x), feats(content), feats(style)
    content_expected = 1.5 * sum(((fx["3"][i] - fc["3"][i]) ** 2).sum() / (fc["3"][i] ** 2).sum() for i in range(2))
    style_expected = 0
    for layer, w in (("1", 0.7), ("3", 0.2)):
        target = gram(fs[layer])[0]
        for i in range(2):
            style_expected += w * ((gram(fx[layer])[i] - target) ** 2).mean() / (target ** 2).mean()
    tv = sum(((x[i, :, 1:] - x[i, :, :-1]) ** 2).sum() + ((x[i, :, :, 1:] - x[i, :, :, :-1]) ** 2).sum()
             for i in range(2))
    tv_expected = 0.3 * tv / x[0].numel()
    assert torch.allclose(terms["content"], content_expected)
    assert torch.allclose(terms["style"], style_expected)
    assert torch.allclose(terms["tv"], tv_expected)
    assert torch.allclose(loss(x, loss.content_targets(content)), content_expected + style_expected + tv_expected)


def test_combined_loss_gradcheck():
    model = feature_network(torch.float64)
    content, style = images(1, 6, 1, torch.float64), images(1, 6, 2, torch.float64)
    loss = StyleTransferLoss(model, style, content_layer="3", style_weights={"1": 1.0, "3": 0.5},
                             content_weight=1.0, tv_weight=0.5)
    targets = loss.content_targets(content)
    x = (images(1, 6, 3, torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda img: loss(img, targets), (x,))


def test_zero_style_weight_is_feature_inversion():
    model = feature_network()
    content, style, x = images(1, 8, 1), images(1, 8, 2), images(1, 8, 3)
    loss = StyleTransferLoss(model, style, content_layer="3", style_weights={"1": 0.0}, content_weight=1.0,
                             tv_weight=0.0)
    terms = loss.terms(x, loss.content_targets(content))
    assert terms["style"] == 0 and terms["tv"] == 0
    with torch.no_grad():
        f, p = model.net[:4](((x - 0.5) / 0.25)), model.net[:4]((content - 0.5) / 0.25)
    assert torch.allclose(terms["content"], ((f - p) ** 2).sum() / (p ** 2).sum())


def test_network_is_cut_after_the_deepest_loss_layer(course):
    calls = []
    handle = course.layer("features.conv3").register_forward_hook(lambda *args: calls.append(1))
    try:
        content, style = images(1, 32, 1), images(1, 32, 2)
        style_transfer(course, content, style, content_layer="features.relu2",
                       style_weights={"features.relu1": 1.0, "features.relu2": 1.0}, steps=2, show_progress=False)
    finally:
        handle.remove()
    assert calls == []


def test_runs_from_content_and_noise_and_leaves_model_unchanged(course):
    before = fingerprint(course)
    content, style = images(1, 32, 1), images(1, 40, 2)
    for init in ("content", "noise"):
        result = style_transfer(course, content, style, style_weights={"features.relu1": 1.0}, steps=3, init=init,
                                show_progress=False)
        assert result.images.shape == content.shape
        assert 0 <= result.images.min() and result.images.max() <= 1 and np.isfinite(result.losses).all()
    assert_unchanged(course, before)


@pytest.mark.parametrize("kwargs, message", [
    (dict(content_weight=-1.0), "weights must be >= 0"),
    (dict(style_weights={"features.relu1": -0.5}), "weights must be >= 0"),
    (dict(tv_weight=-1.0), "weights must be >= 0"),
    (dict(content_weight=0.0, style_weights={"features.relu1": 0.0}), "nothing to match"),
    (dict(init=torch.rand(1, 3, 16, 16)), "content's shape"),
    (dict(init="zeros"), "init must be"),
    (dict(style=torch.rand(2, 3, 32, 32)), "one style image"),
    (dict(style_weights={"features.nope": 1.0}), "unknown layer"),
    (dict(style_weights=[("features.relu1", 1.0)]), "must be a dict"),
])
def test_bad_input_is_a_clear_error(course, kwargs, message):
    before = fingerprint(course)
    arguments = dict(content=images(1, 32, 1), style=images(1, 32, 2), style_weights={"features.relu1": 1.0},
                     steps=1, show_progress=False)
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        style_transfer(course, **arguments)
    assert_unchanged(course, before)


# ---------------------------------------------------------------------------------- defaults, on every model

def test_defaults_come_from_the_layer_table_by_one_rule(course):
    content, style = images(1, 64, 1), images(1, 64, 2)
    alone = StyleTransferLoss(course, style)            # one network for both terms
    assert alone.style_model is course and alone.content_layer == layer_for(course, "content")
    assert alone.style_weights == {layer: 1.0 for layer in layers_for(course, "style")}
    bank = default_style_model()
    offline = StyleTransferLoss(course, style, style_model=bank)      # the filter bank: every one of its layers
    assert offline.content_layer == CONTENT_LAYER and offline.style_weights == STYLE_WEIGHTS
    assert STYLE_WEIGHTS == default_layer_weights(bank, "style") and CONTENT_LAYER == layer_for("course", "content")
    for loss in (alone, offline):
        terms = loss.terms(content, loss.content_targets(content))
        assert terms["content"] == 0 and terms["style"] > 0


def run_with_defaults(model, **options):
    content, style = images(1, 64, 1), images(1, 64, 2)
    result = style_transfer(model, content, style, steps=1, show_progress=False, **options)
    assert result.images.shape == content.shape and np.isfinite(result.losses).all()
    assert 0 <= result.images.min() and result.images.max() <= 1


def test_runs_with_its_defaults_on_the_course_model_alone_and_with_the_filter_bank(course):
    before = fingerprint(course)
    run_with_defaults(course)
    run_with_defaults(course, style_model=default_style_model())
    assert_unchanged(course, before)


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_runs_with_its_defaults_on_every_imagenet_architecture(name):
    model = random_imagenet_model(name)
    loss = StyleTransferLoss(model, images(1, 64, 2))
    assert loss.content_layer == layer_for(name, "content") and list(loss.style_weights) == layers_for(name, "style")
    run_with_defaults(model)


def test_a_model_outside_the_table_names_its_layers_and_needs_no_content_layer_without_a_content_term():
    model = feature_network()
    content, style = images(1, 8, 1), images(1, 8, 2)
    with pytest.raises(ValueError, match="no default style layers for model 'tiny'"):
        style_transfer(model, content, style, steps=1, show_progress=False)
    with pytest.raises(ValueError, match="no default content layers for model 'tiny'"):
        style_transfer(model, content, style, style_weights={"1": 1.0}, steps=1, show_progress=False)
    texture = style_transfer(model, content, style, content_weight=0.0, style_weights={"1": 1.0}, steps=1,
                             show_progress=False)
    assert texture.images.shape == content.shape


def test_measures_against_plain_computations():
    a, b = images(2, 16, 1), images(1, 16, 2)
    assert np.allclose(edge_correlation(a, a), 1.0)
    assert np.allclose(colour_histogram_intersection(a, a), 1.0)
    # intersection written out: identical colour sets in a different arrangement overlap fully
    assert np.allclose(colour_histogram_intersection(b, b.flip(-1).flip(-2)), 1.0)
    black, white = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert colour_histogram_intersection(black, white)[0] == 0
    with pytest.raises(ValueError, match="same size"):
        edge_correlation(a, images(1, 12, 3))


def test_transform_net_uses_instance_norm_without_running_stats_and_resize_upsampling():
    net = TransformNet()
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.affine and not m.track_running_stats and m.running_mean is None for m in norms)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert any(isinstance(m, nn.Upsample) for m in net.modules())
    out = stylise(net.eval(), images(2, 30, 1))
    assert out.shape == (2, 3, 30, 30) and 0 <= out.min() and out.max() <= 1
