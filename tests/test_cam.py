"""CAM, Grad-CAM and Guided Grad-CAM against captum, against closed forms, and the model left as found.

Oracles (where each homework region's expected values come from):
- _grad_cam_batch(): captum's LayerGradCam followed by LayerAttribution.interpolate; on a GAP + linear
  head, the closed form ReLU(CAM) / (h w) with CAM computed here from the linear layer's weights.
"""

import warnings

import pytest
import torch
from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.cam import cam_network, class_activation_maps, feature_map_layers, grad_cam, guided_grad_cam
from vizlib.course_data import make_shapes
from vizlib.models import random_imagenet_model
from vizlib.wrapper import VizModel, freeze


def captum_grad_cam(model, images, layer, classes, mode):
    """The oracle: captum's LayerGradCam with ReLU, then its own interpolation to the image size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coarse = LayerGradCam(model, model.layer(layer)).attribute(images, target=classes, relu_attributions=True)
    return LayerAttribution.interpolate(coarse, tuple(images.shape[-2:]), interpolate_mode=mode)[:, 0]


def assert_close_to_scale(ours, expected, tolerance=1e-6):
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max() <= tolerance * expected.abs().max().clamp_min(1e-12)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(12, "held_out", seed=4)


@pytest.fixture(scope="module")
def gap_linear():
    """conv -> ReLU -> conv -> ReLU -> global average pooling -> one linear layer: where CAM is exact."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4),
    )
    return freeze(VizModel(net, name="gap", class_names="abcd", input_size=10, mean=(0.5,) * 3, std=(0.25,) * 3))


@pytest.mark.parametrize("layer", ["features.relu3", "features.conv4", "features.relu5"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grad_cam_equals_captum_on_the_course_model(course, shapes, layer, mode):
    images, labels, _ = shapes
    before = fingerprint(course)
    ours = grad_cam(course, images, layer, labels, mode=mode, show_progress=False)
    assert_close_to_scale(ours, captum_grad_cam(course, images, layer, labels, mode))
    assert_unchanged(course, before)


def test_grad_cam_equals_captum_on_random_squeezenet():
    model = random_imagenet_model("squeezenet1_1", seed=0)
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    before = fingerprint(model)
    for layer in ("features.7", "features.12"):  # a Fire module, whose ReLUs work in place
        ours = grad_cam(model, images, layer, [3, 700], show_progress=False)
        assert_close_to_scale(ours, captum_grad_cam(model, images, layer, [3, 700], "bilinear"))
    assert_unchanged(model, before)


def test_grad_cam_defaults_to_the_prediction_for_any_batch_size(course, shapes):
    images, _, _ = shapes
    with torch.no_grad():
        predicted = course(images).argmax(1)
    expected = captum_grad_cam(course, images, "features.relu4", predicted, "bilinear")
    for batch_size in (1, 5, 64):
        ours = grad_cam(course, images, "features.relu4", batch_size=batch_size, show_progress=False)
        assert_close_to_scale(ours, expected)


def test_on_a_gap_linear_head_grad_cam_is_relu_of_cam_over_the_positions(gap_linear):
    """Closed form: the score is W_c . mean(A) + b, so dS/dA = W_c / (h w) at every position."""
    images = torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(2))
    classes = torch.tensor([0, 3, 1])
    net = gap_linear.net
    with torch.no_grad():
        activations = net[:4]((images - gap_linear.mean) / gap_linear.std)      # (3, 5, 5, 5), computed here
        cam_by_hand = torch.einsum("nk,nkhw->nhw", net[6].weight[classes], activations)
        scores = gap_linear(images).gather(1, classes[:, None])[:, 0]
    h, w = activations.shape[-2:]
    cam = class_activation_maps(gap_linear, images, "3", classes, upsampled=False)
    torch.testing.assert_close(cam, cam_by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(cam.mean(dim=(1, 2)) + net[6].bias[classes], scores, atol=1e-5, rtol=0)
    coarse = grad_cam(gap_linear, images, "3", classes, upsampled=False, show_progress=False)
    torch.testing.assert_close(coarse, cam_by_hand.clamp_min(0) / (h * w), atol=1e-7, rtol=0)
    signed = grad_cam(gap_linear, images, "3", classes, relu=False, upsampled=False, show_progress=False)
    torch.testing.assert_close(signed, cam_by_hand / (h * w), atol=1e-7, rtol=0)


def test_guided_grad_cam_equals_captum(course, shapes):
    images, labels, _ = shapes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = GuidedGradCam(course, course.layer("features.relu5")).attribute(
            images.clone().requires_grad_(True), target=labels, interpolate_mode="bilinear")
    before = fingerprint(course)
    assert_close_to_scale(guided_grad_cam(course, images, "features.relu5", labels), expected)
    assert_unchanged(course, before)


def test_cam_network_is_exact_and_classifies_held_out_images(course):
    train_images, train_labels, _ = make_shapes(512, "train", seed=11)
    before = fingerprint(course)
    model = cam_network(course, train_images, train_labels, steps=20)
    assert_unchanged(course, before)
    images, labels, _ = make_shapes(256, "held_out", seed=12)
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9, f"the fitted head reaches {accuracy:.1%} on held-out images (chance 12.5%)"
    # the layers below the head are the course model's, unchanged
    with torch.no_grad():
        torch.testing.assert_close(model.net.features((images - model.mean) / model.std),
                                   course.net.features[:-1]((images - course.mean) / course.std))
    maps = class_activation_maps(model, images[:4], "features.relu5")
    assert maps.shape == (4, 64, 64)
    again = cam_network(course, train_images, train_labels, steps=20)
    assert torch.equal(again.net.fc.weight, model.net.fc.weight)


def test_bad_input_is_a_clear_error_and_leaves_the_model_as_found(course, shapes):
    images, labels, _ = shapes
    before = fingerprint(course)
    with pytest.raises(ValueError, match=r"not a feature map.*layers that do: .*features\.relu5"):
        grad_cam(course, images, "classifier.fc1", show_progress=False)
    with pytest.raises(ValueError, match="unknown layer"):
        grad_cam(course, images, "features.conv9", show_progress=False)
    with pytest.raises(ValueError, match="mode must be one of"):
        grad_cam(course, images, "features.relu5", mode="bicubic", show_progress=False)
    with pytest.raises(ValueError, match="class index out of range"):
        grad_cam(course, images, "features.relu5", 8, show_progress=False)
    with pytest.raises(ValueError, match="not global average pooling"):
        class_activation_maps(course, images, "features.relu5")  # its head has two linear layers
    with pytest.raises(ValueError, match="CAM needs the feature map"):
        class_activation_maps(course, images, "features.relu2")  # 64 channels, not 128
    with pytest.raises(ValueError, match="direct child"):
        cam_network(course, images, labels, layer="classifier")
    assert_unchanged(course, before)


def test_feature_map_layers_lists_the_convolutional_part(course):
    layers = feature_map_layers(course)
    assert "features.relu5" in layers and "classifier.pool" in layers
    assert not {"classifier.flatten", "classifier.fc1", "classifier.fc2"} & set(layers)


def test_cam_explorer_moves_with_every_control(course):
    from explorer_drive import drive

    from vizlib.cam import cam_explorer

    images = make_shapes(2, "held_out", seed=3).images
    moved = drive(cam_explorer(course, images, ["features.relu3", "features.relu5"]), course)
    assert set(moved) == {"image", "layer", "explain"} and moved["explain"] == [2, 3, 5]
