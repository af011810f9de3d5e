"""Guided backprop and deconvnet against captum, hand-computed rules, and the model left as found.

Oracles (where each homework region's expected values come from):
- _ModifiedReLU.backward(): captum's GuidedBackprop and Deconvolution (and their neuron variants); the three
  rules worked out by hand on one ReLU layer.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    Deconvolution, GuidedBackprop, NeuronDeconvolution, NeuronGradient, NeuronGuidedBackprop,
)
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import make_shapes
from vizlib.guided_backprop import (
    FunctionalReLUError, cascading_randomization, channel_gradient, class_gradient, deconvnet, gradient_image,
    guided_backprop, modified_relus,
)
from vizlib.models import random_imagenet_model

ORACLES = {"guided": GuidedBackprop, "deconvnet": Deconvolution}
NEURON_ORACLES = {"guided": NeuronGuidedBackprop, "deconvnet": NeuronDeconvolution, "plain": NeuronGradient}


def captum(oracle, model, images, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns that it sets hooks on every call
        return oracle(model, *kwargs.pop("layer", ())).attribute(images.clone().requires_grad_(True), **kwargs)


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


# --- small networks with the awkward cases ------------------------------------------------------

class InPlaceNet(nn.Module):
    """Every ReLU is in place, as in torchvision's SqueezeNet, AlexNet and VGG."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(inplace=True), nn.Linear(16, 5))

    def forward(self, x):
        return self.head(self.features(x))


class SharedReLUNet(nn.Module):
    """One ReLU module used four times, twice on parallel branches (as ResNet reuses `self.relu`)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8, 5)
        self.relu = nn.ReLU(inplace=inplace)

    def forward(self, x):
        a = self.relu(self.conv1(x))
        b, c = self.relu(self.conv2(a)), self.relu(self.conv3(a))
        return self.fc(self.relu(b + c).mean((2, 3)))


class UnsharedReLUNet(SharedReLUNet):
    """The same network with one ReLU module per use: what the shared one must compute."""

    def __init__(self, shared):
        super().__init__()
        self.load_state_dict(shared.state_dict())
        self.relus = nn.ModuleList(nn.ReLU() for _ in range(4))

    def forward(self, x):
        a = self.relus[0](self.conv1(x))
        b, c = self.relus[1](self.conv2(a)), self.relus[2](self.conv3(a))
        return self.fc(self.relus[3](b + c).mean((2, 3)))


class Functional(nn.Module):
    def __init__(self, relu):
        super().__init__()
        self.conv, self.act, self.fc, self.relu = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 3), relu

    def forward(self, x):
        return self.fc(self.act(self.relu(self.conv(x))).mean((2, 3)))


def frozen(make, seed=0):
    """Build a network with seeded weights, frozen as vizlib hands models out."""
    torch.manual_seed(seed)
    return make().eval().requires_grad_(False)


@pytest.fixture(scope="module")
def shapes():
    images, labels, _ = make_shapes(6, "held_out", seed=11)
    return images, labels


# --- the rules, worked out by hand --------------------------------------------------------------

def test_each_rule_by_hand_on_one_relu():
    """score = w2 . relu(W1 x): the three rules differ only in what passes the ReLU backwards."""
    W1 = torch.tensor([[1.0, -1.0], [2.0, 1.0], [-1.0, 0.5], [0.5, 0.5]])
    w2 = torch.tensor([[1.0, -2.0, 3.0, -1.0]])
    net = nn.Sequential(nn.Linear(2, 4, bias=False), nn.ReLU(), nn.Linear(4, 1, bias=False)).requires_grad_(False)
    net[0].weight.copy_(W1), net[2].weight.copy_(w2)
    x = torch.tensor([[1.0, 0.5]])
    active = (W1 @ x[0] > 0).float()                   # [1, 1, 0, 1]: unit 2 is off
    g = w2[0]                                          # gradient arriving at the ReLU from above
    expected = {
        "plain": W1.T @ (g * active),
        "deconvnet": W1.T @ g.clamp(min=0),            # unit 2 passes although it was off
        "guided": W1.T @ (g.clamp(min=0) * active),
    }
    for rule, value in expected.items():
        pixels = x.clone().requires_grad_(True)
        with modified_relus(net, rule):
            score = net(pixels).sum()
        (grad,) = torch.autograd.grad(score, pixels)
        assert torch.allclose(grad[0], value), rule
    assert not torch.allclose(expected["guided"], expected["deconvnet"])


# --- equal to captum ----------------------------------------------------------------------------

@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_course_model_matches_captum(course, shapes, rule):
    images, labels = shapes
    before = fingerprint(course)
    ours = class_gradient(course, images, labels, rule=rule)
    assert_unchanged(course, before)
    assert_close(ours, captum(ORACLES[rule], course, images, target=labels))
    assert ours.abs().sum() > 0


def test_shortcuts_and_plain_rule(course, shapes):
    images, labels = shapes
    assert torch.equal(guided_backprop(course, images, labels), class_gradient(course, images, labels, rule="guided"))
    assert torch.equal(deconvnet(course, images, labels), class_gradient(course, images, labels, rule="deconvnet"))
    pixels = images.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(course(pixels).gather(1, labels[:, None]).sum(), pixels)
    assert_close(class_gradient(course, images, labels, rule="plain"), plain)


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_classes_default_to_the_prediction_as_captum_explains_it(course, shapes, rule):
    images, _ = shapes
    with torch.no_grad():
        predicted = course(images).argmax(1)
    before = fingerprint(course)
    ours = {"guided": guided_backprop, "deconvnet": deconvnet}[rule](course, images)
    assert_unchanged(course, before)
    assert_close(ours, captum(ORACLES[rule], course, images, target=predicted))
    net = frozen(InPlaceNet)  # a plain network, without class names, predicts the same way
    plain_images = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        plain_predicted = net(plain_images).argmax(1)
    expected = captum(ORACLES[rule], net, plain_images, target=plain_predicted)
    assert_close(class_gradient(net, plain_images, rule=rule), expected)


def gradient_through_modified_relus(net, rule, images, classes):
    """The class-score gradient with `modified_relus` on, and how many ReLU calls it modified."""
    pixels = images.clone().requires_grad_(True)
    with modified_relus(net, rule) as state:
        scores = net(pixels).gather(1, classes[:, None]).sum()
    (gradient,) = torch.autograd.grad(scores, pixels)
    return gradient, state.calls


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_in_place_relus_match_captum(rule):
    net = frozen(InPlaceNet)
    images, classes = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 4])
    ours, calls = gradient_through_modified_relus(net, rule, images, classes)
    assert calls == 3
    assert_close(ours, captum(ORACLES[rule], net, images, target=classes))
    assert all(m.inplace for m in net.modules() if isinstance(m, nn.ReLU))


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_torchvision_squeezenet_with_in_place_relus_matches_captum(rule):
    model = random_imagenet_model("squeezenet1_1", seed=1)
    images = torch.rand(2, 3, 64, 64)
    before = fingerprint(model)
    ours = class_gradient(model, images, [3, 500], rule=rule)
    assert_unchanged(model, before)
    assert_close(ours, captum(ORACLES[rule], model, images, target=[3, 500]))


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
@pytest.mark.parametrize("inplace", [False, True])
def test_one_relu_module_used_four_times(rule, inplace):
    shared = frozen(lambda: SharedReLUNet(inplace=inplace))
    unshared = frozen(lambda: UnsharedReLUNet(shared))  # captum's answer there is what the shared net must give
    images, classes = torch.rand(3, 3, 12, 12), torch.tensor([1, 0, 4])
    ours, calls = gradient_through_modified_relus(shared, rule, images, classes)
    assert calls == 4
    assert_close(ours, captum(ORACLES[rule], unshared, images, target=classes))


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_torchvision_resnet_reusing_its_relu_matches_captum(rule):
    model = random_imagenet_model("resnet18", seed=2)  # `self.relu` (in place) used twice per block
    images = torch.rand(2, 3, 48, 48)
    before = fingerprint(model)
    ours = class_gradient(model, images, [7, 70], rule=rule)
    assert_unchanged(model, before)
    assert_close(ours, captum(ORACLES[rule], model, images, target=[7, 70]))


def test_batch_of_images_equals_images_one_at_a_time(course, shapes):
    images, labels = shapes
    batch = guided_backprop(course, images, labels)
    single = torch.cat([guided_backprop(course, images[i:i + 1], labels[i]) for i in range(len(images))])
    assert_close(batch, single)


def test_input_images_untouched(course, shapes):
    images, labels = shapes
    images = images.clone()
    copy = images.clone()
    guided_backprop(course, images, labels)
    assert torch.equal(images, copy) and images.grad is None and not images.requires_grad


# --- intermediate neurons and channels ----------------------------------------------------------

@pytest.mark.parametrize("rule", ["guided", "deconvnet", "plain"])
@pytest.mark.parametrize("layer", ["features.conv3", "features.relu4", "classifier.fc1"])
def test_channel_gradient_matches_captum_neuron_methods(course, shapes, rule, layer):
    images, _ = shapes
    channel = 5
    for reduce, selector in (
        ("max", lambda out: out[:, channel].reshape(len(out), -1).amax(1)),
        ("mean", lambda out: out[:, channel].reshape(len(out), -1).mean(1)),
    ):
        before = fingerprint(course)
        ours = channel_gradient(course, images, layer, channel, rule=rule, reduce=reduce)
        assert_unchanged(course, before)
        expected = captum(NEURON_ORACLES[rule], course, images, layer=(course.layer(layer),),
                          neuron_selector=selector)
        assert_close(ours, expected)


def test_a_layer_can_be_given_as_a_module(course, shapes):
    images, _ = shapes
    by_name = channel_gradient(course, images, "features.conv2", 1)
    by_module = channel_gradient(course, images, course.layer("features.conv2"), 1)
    assert torch.equal(by_name, by_module)


# --- the model is left as it was found ----------------------------------------------------------

class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("midway")


def test_everything_is_removed_after_an_exception_midway():
    net = frozen(InPlaceNet)
    images = torch.rand(2, 3, 16, 16, requires_grad=True)
    (plain_before,) = torch.autograd.grad(net(images)[:, 0].sum(), images)
    before = fingerprint(net)
    net.head.insert(2, Boom())  # after two ReLUs have run, before the last one
    with pytest.raises(RuntimeError, match="midway"):
        class_gradient(net, images.detach(), 0)
    del net.head[2]
    assert_unchanged(net, before)
    assert torch._C._len_torch_function_stack() == 0  # the functional-ReLU watch is gone too
    with pytest.raises(RuntimeError, match="inside the block"):
        with modified_relus(net, "guided"):
            net.features(images)
            raise RuntimeError("inside the block")
    assert_unchanged(net, before)
    assert torch._C._len_torch_function_stack() == 0
    (plain_after,) = torch.autograd.grad(net(images)[:, 0].sum(), images)
    assert torch.equal(plain_after, plain_before)  # the ordinary gradient is back


@pytest.mark.parametrize("call", [
    lambda m, x: guided_backprop(m, x, 8),
    lambda m, x: deconvnet(m, x, -1),
    lambda m, x: guided_backprop(m, x, [0, 1, 2]),
    lambda m, x: channel_gradient(m, x, "features.conv9", 0),
    lambda m, x: channel_gradient(m, x, "features.conv3", 128),
    lambda m, x: channel_gradient(m, x, "features.conv3", -1),
    lambda m, x: channel_gradient(m, x, "features.conv3", 1.5),
    lambda m, x: channel_gradient(m, x, "features.conv3", 0, reduce="median"),
    lambda m, x: class_gradient(m, x, 0, rule="guided-ish"),
    lambda m, x: guided_backprop(m, (x * 255).to(torch.uint8), 0),
], ids=["class 8", "class -1", "3 classes for 2 images", "unknown layer", "channel 128", "channel -1",
        "channel 1.5", "reduce", "rule", "uint8 images"])
def test_bad_input_is_a_clear_error_and_leaves_the_model_alone(course, call):
    before = fingerprint(course)
    with pytest.raises((ValueError, TypeError)) as error:
        call(course, torch.rand(2, 3, 64, 64))
    assert_unchanged(course, before)
    assert torch._C._len_torch_function_stack() == 0
    message = str(error.value)
    assert any(hint in message for hint in ("0 to 7", "0 to 127", "valid layer names", "must be", "expected", "got"))


def test_error_messages_name_the_valid_range(course):
    images = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="valid indices are 0 to 7"):
        guided_backprop(course, images, 8)
    with pytest.raises(ValueError, match=r"channel 128 out of range.*0 to 127"):
        channel_gradient(course, images, "features.conv3", 128)
    with pytest.raises(ValueError, match=r"unknown layer 'nope'.*features\.conv1"):
        channel_gradient(course, images, "nope", 0)


# --- ReLUs the hooks cannot reach ---------------------------------------------------------------

@pytest.mark.parametrize("relu", [F.relu, torch.relu, lambda x: x.relu(), lambda x: F.relu(x, inplace=True),
                                  F.relu6, F.leaky_relu],
                         ids=["F.relu", "torch.relu", "Tensor.relu", "F.relu inplace", "F.relu6", "F.leaky_relu"])
@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_a_functional_relu_is_an_error_not_a_wrong_map(relu, rule):
    net = frozen(lambda: Functional(relu))
    before = fingerprint(net)
    with pytest.raises(FunctionalReLUError, match=r"as a function \(at .*test_guided_backprop\.py.*nn\.ReLU"):
        class_gradient(net, torch.rand(2, 3, 8, 8), 1, rule=rule)
    assert_unchanged(net, before)
    assert torch._C._len_torch_function_stack() == 0
    class_gradient(net, torch.rand(2, 3, 8, 8), 1, rule="plain")  # the plain gradient needs no hooks


def test_a_model_without_relu_modules_is_an_error():
    net = frozen(lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                       nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="has none"):
        guided_backprop(net, torch.rand(1, 3, 8, 8), 0)


def test_torchvision_googlenet_style_functional_relu_is_caught():
    class BasicConv2d(nn.Module):  # the pattern of torchvision's GoogLeNet and Inception v3
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)), inplace=True)

    net = frozen(lambda: nn.Sequential(
        BasicConv2d(), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(FunctionalReLUError, match="relu"):
        deconvnet(net, torch.rand(1, 3, 8, 8), 0)


# --- pictures -----------------------------------------------------------------------------------

def test_gradient_image_is_grey_at_zero_and_keeps_the_sign():
    grad = torch.zeros(2, 3, 4, 4)
    grad[0, 0, 0, 0], grad[0, 1, 1, 1] = 2.0, -2.0
    image = gradient_image(grad, percentile=100)
    assert image.shape == grad.shape and image.min() >= 0 and image.max() <= 1
    assert image[0, 0, 0, 0] == 1 and image[0, 1, 1, 1] == 0 and image[0, 2, 2, 2] == 0.5
    assert torch.all(image[1] == 0.5)  # an all-zero gradient is plain grey, not NaN
    scaled = gradient_image(grad * 1000, percentile=100)
    assert torch.equal(scaled, image)  # normalised per image


# --- the sanity check of Adebayo et al. (2018), for these rules (its parts: tests/test_sanity.py) ----

def test_guided_backprop_changes_far_less_than_the_gradient_when_top_layers_are_randomised(course):
    images, labels, _ = make_shapes(16, "held_out", seed=5)
    before = fingerprint(course)
    result = cascading_randomization(course, images, labels, steps=3, seed=0, keep=2)
    assert_unchanged(course, before)
    assert result.layers == ["trained", "classifier.fc2", "classifier.fc1", "features.conv5"]
    assert result.correlations["guided"].shape == (4, 16) and result.maps["plain"].shape == (4, 2, 3, 64, 64)
    plain, guided = result.mean("plain"), result.mean("guided")
    assert plain[0] == guided[0] == 1
    assert torch.all(guided[1:] > plain[1:]), (plain, guided)
    assert 1 - plain[-1] >= 2 * (1 - guided[-1]), (plain, guided)  # the gradient changes at least twice as much
