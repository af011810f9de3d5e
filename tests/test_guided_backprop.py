"""Guided backprop and deconvnet against captum, hand-computed rules, and the model left as found.

Oracles (where each homework region's expected values come from):
- _ModifiedReLU.backward(): captum's GuidedBackprop and Deconvolution (and their neuron variants); the three
  rules worked out by hand on one ReLU layer; for clipped ReLUs (nn.ReLU6, Hardtanh(0, t)), the backward pass of
  a small network written out with tensor ops (transposed convolutions) and a hand-written autograd.Function in
  torchvision's MobileNetV2, on inputs where some units pass the clip, and captum's ReLU maps where none does.
"""

import copy
import math
import warnings
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    Deconvolution, GuidedBackprop, NeuronDeconvolution, NeuronGradient, NeuronGuidedBackprop,
)
from torch import nn
from torchvision.models import mobilenet_v2

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import make_shapes
from vizlib.guided_backprop import (
    FunctionalReLUError, cascading_randomisation, channel_gradient, class_gradient, deconvnet, gradient_image,
    guided_backprop, modified_relus,
)
from vizlib.models import random_imagenet_model
from vizlib.wrapper import VizModel, freeze

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
    with pytest.raises(ValueError, match=r"channel must be an int from 0 to 127 \(layer 'features.conv3'\), got 128"):
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
    with pytest.raises(ValueError, match=r"has no nn\.ReLU, nn\.ReLU6 or Hardtanh\(0, t\) module"):
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


# --- clipped ReLUs: nn.ReLU6 (MobileNet, EfficientNet-Lite) and Hardtanh(0, t) ----------------------------

class ClippedNet(nn.Module):
    """conv -> clipped ReLU -> conv -> clipped ReLU -> mean -> linear; `shared`: one activation module used twice."""

    def __init__(self, make_act, shared):
        super().__init__()
        self.conv1, self.conv2, self.fc = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1), nn.Linear(8, 4)
        self.act1 = make_act()
        self.act2 = self.act1 if shared else make_act()

    def forward(self, x):
        return self.fc(self.act2(self.conv2(self.act1(self.conv1(x)))).mean((2, 3)))


CLIPPING = (30.0, 4.0)  # weight gains that drive a few percent of each layer's inputs above 6 on images in [0, 1]


def clipped_net(make_act, *, shared=True, gains=(1.0, 1.0), dtype=torch.float64):
    """A seeded, frozen ClippedNet (float64, so the hand-written backward pass agrees to 1e-6 at any gain)."""
    net = frozen(lambda: ClippedNet(make_act, shared)).to(dtype)
    with torch.no_grad():
        for conv, gain in zip((net.conv1, net.conv2), gains):
            conv.weight.mul_(gain), conv.bias.mul_(gain)
    return net


def clipped_images(count=3, size=10, seed=1, dtype=torch.float64):
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def through_clipped_relu(g, x, rule, t):
    """The gradient a rule sends back through min(max(x, 0), t), given the gradient g from above."""
    open_ = ((0 < x) & (x < t)).to(g.dtype)   # where the clipped ReLU has slope 1
    positive = (g > 0).to(g.dtype)
    return {"plain": g * open_, "deconvnet": g * positive, "guided": g * positive * open_}[rule]


def inputs_of_the_clipped_relus(net, images, t):
    """The two activation inputs of ClippedNet, computed with functional ops."""
    z1 = F.conv2d(images, net.conv1.weight, net.conv1.bias, padding=1)
    z2 = F.conv2d(z1.clamp(0, t), net.conv2.weight, net.conv2.bias, padding=1)
    return z1, z2


def clipped_net_backwards_by_hand(net, images, classes, rule, t, *, t_backward=None):
    """The class-score gradient of ClippedNet, the chain written out backwards with tensor ops (no autograd).

    t_backward: the clip the rule uses going backwards (default t); math.inf gives the rule that ignores it.
    """
    t_backward = t if t_backward is None else t_backward
    z1, z2 = inputs_of_the_clipped_relus(net, images, t)
    h, w = z2.shape[2:]
    g = (net.fc.weight[classes] / (h * w))[:, :, None, None].expand_as(z2)  # d score / d act(z2), via the mean
    g = through_clipped_relu(g, z2, rule, t_backward)
    g = F.conv_transpose2d(g, net.conv2.weight, padding=1)                  # conv2's transpose: d z2 / d act(z1)
    g = through_clipped_relu(g, z1, rule, t_backward)
    return F.conv_transpose2d(g, net.conv1.weight, padding=1)               # conv1's transpose: d z1 / d images


@pytest.mark.parametrize("make_act, t", [
    (nn.ReLU6, 6.0), (partial(nn.ReLU6, inplace=True), 6.0),
    (partial(nn.Hardtanh, 0.0, 2.5), 2.5), (partial(nn.Hardtanh, 0.0, 2.5, inplace=True), 2.5),
], ids=["ReLU6", "ReLU6 in place", "Hardtanh(0, 2.5)", "Hardtanh(0, 2.5) in place"])
@pytest.mark.parametrize("rule", ["guided", "deconvnet", "plain"])
def test_a_clipped_relu_used_twice_follows_the_rule_written_out_by_hand(rule, make_act, t):
    net = clipped_net(make_act, gains=CLIPPING)
    images, classes = clipped_images(), torch.tensor([0, 2, 3])
    for z in inputs_of_the_clipped_relus(net, images, t):  # units above the clip, units inside it, at each use
        assert ((z > t).double().mean() > 0.02) and ((0 < z) & (z < t)).double().mean() > 0.05
    expected = clipped_net_backwards_by_hand(net, images, classes, rule, t)
    if rule != "deconvnet":  # a rule that forgot the clip going backwards would fail here
        ignoring_the_clip = clipped_net_backwards_by_hand(net, images, classes, rule, t, t_backward=math.inf)
        assert (expected - ignoring_the_clip).abs().max() > 1e-2 * expected.abs().max()
    before = fingerprint(net)
    ours = class_gradient(net, images, classes, rule=rule)
    assert_unchanged(net, before)
    assert_close(ours, expected)
    assert expected.abs().sum() > 0
    _, calls = gradient_through_modified_relus(net, rule, images, classes)
    assert calls == 2 * (rule != "plain")  # one module, two calls, both modified


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_relu6_below_its_clip_matches_captum_on_the_same_network_with_relu(rule):
    relu6 = clipped_net(nn.ReLU6, dtype=torch.float32)
    relu = clipped_net(nn.ReLU, shared=False, dtype=torch.float32)  # the same weights; captum needs one module per use
    images, classes = clipped_images(4, 12, seed=2, dtype=torch.float32), torch.tensor([3, 1, 0, 2])
    z1, z2 = inputs_of_the_clipped_relus(relu6, images, 6.0)
    assert max(z1.max(), z2.max()) < 6 and min((z1 > 0).float().mean(), (z2 > 0).float().mean()) > 0.1
    ours = class_gradient(relu6, images, classes, rule=rule)
    assert_close(ours, captum(ORACLES[rule], relu, images, target=classes))
    assert ours.abs().sum() > 0


class _HandClippedReLU(torch.autograd.Function):
    """min(max(x, 0), t) with `through_clipped_relu` as its backward pass: the oracle's ReLU6."""

    @staticmethod
    def forward(ctx, x, rule, t):
        ctx.save_for_backward(x)
        ctx.rule, ctx.t = rule, t
        return x.clamp(0, t)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return through_clipped_relu(g, x, ctx.rule, ctx.t), None, None


class _HandReLU6(nn.Module):
    def __init__(self, rule, above_6):
        super().__init__()
        self.rule, self.above_6 = rule, above_6

    def forward(self, x):
        self.above_6.append(int((x > 6).sum()))  # how many units of this call the clip holds
        return _HandClippedReLU.apply(x, self.rule, 6.0)


def with_hand_relu6(model, rule, above_6):
    """A copy of `model` whose every nn.ReLU6 is a _HandReLU6."""
    oracle = copy.deepcopy(model)
    for parent in list(oracle.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, _HandReLU6(rule, above_6))
    return oracle


def clipping_mobilenet_v2():
    """A random MobileNetV2 whose BatchNorms are calibrated on random images with a scale of 3: each ReLU6
    input is then about N(0, 9), a few percent above 6 (untouched, they vanish with depth and never reach 6)."""
    torch.manual_seed(3)
    model = mobilenet_v2(weights=None, num_classes=10)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None  # running statistics = those of the calibration batch
                module.weight.fill_(3.0)
        model.train()(torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(5)))
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_torchvision_mobilenet_v2_with_in_place_relu6_matches_the_rule_by_hand(rule):
    model = clipping_mobilenet_v2()
    relu6s = [m for m in model.modules() if isinstance(m, nn.ReLU6)]
    assert relu6s and all(m.inplace for m in relu6s) and not any(isinstance(m, nn.ReLU) for m in model.modules())
    images, classes = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)), torch.tensor([1, 7])
    above_6 = []
    oracle = with_hand_relu6(model, rule, above_6)
    pixels = images.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(oracle(pixels).gather(1, classes[:, None]).sum(), pixels)
    assert len(above_6) == 35 and all(above_6)  # every ReLU6 call holds some units at the clip
    before = fingerprint(model)
    ours = class_gradient(model, images, classes, rule=rule)
    assert_unchanged(model, before)
    torch.testing.assert_close(ours, expected, atol=1e-6 * expected.abs().max().item(), rtol=0)
    assert expected.abs().sum() > 0


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_a_hardtanh_that_is_not_a_relu_is_refused_and_the_model_left_alone(rule):
    images = clipped_images()
    mixed = clipped_net(nn.ReLU6, shared=False)
    mixed.act2 = nn.Hardtanh(-1.0, 1.0)  # one among clipped ReLUs is refused as well
    for net, name in ((clipped_net(partial(nn.Hardtanh, -1.0, 1.0)), "act1"), (mixed, "act2")):
        before = fingerprint(net)
        with pytest.raises(ValueError, match=rf"min_val != 0, which is not a ReLU: '{name}' \(Hardtanh\(min_val=-1"):
            class_gradient(net, images, 0, rule=rule)
        assert_unchanged(net, before)
        assert torch._C._len_torch_function_stack() == 0
        pixels = images.clone().requires_grad_(True)
        (plain,) = torch.autograd.grad(net(pixels)[:, 0].sum(), pixels)
        assert_close(class_gradient(net, images, 0, rule="plain"), plain)  # the plain gradient needs no rule


def test_a_relu6_model_is_left_as_found_after_an_exception_midway():
    net = frozen(lambda: nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU6(inplace=True), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU6(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)))
    images = torch.rand(2, 3, 8, 8)
    before = fingerprint(net)
    guided = guided_backprop(net, images, 1)
    assert_unchanged(net, before)
    net.insert(2, Boom())  # after one ReLU6 has run
    with pytest.raises(RuntimeError, match="midway"):
        guided_backprop(net, images, 1)
    del net[2]
    assert_unchanged(net, before)
    assert torch._C._len_torch_function_stack() == 0
    assert torch.equal(guided_backprop(net, images, 1), guided)  # no rule or input left over from the failed call
    pixels = images.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(net(pixels)[:, 1].sum(), pixels)
    assert_close(plain, class_gradient(net, images, 1, rule="plain"))  # the ordinary gradient is back


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
    result = cascading_randomisation(course, images, labels, steps=3, seed=0, keep=2)
    assert_unchanged(course, before)
    assert result.layers == ["trained", "classifier.fc2", "classifier.fc1", "features.conv5"]
    assert result.correlations["guided"].shape == (4, 16) and result.maps["plain"].shape == (4, 2, 3, 64, 64)
    plain, guided = result.mean("plain"), result.mean("guided")
    assert plain[0] == guided[0] == 1
    assert torch.all(guided[1:] > plain[1:]), (plain, guided)
    assert 1 - plain[-1] >= 2 * (1 - guided[-1]), (plain, guided)  # the gradient changes at least twice as much


def test_a_clipped_relu_neuron_is_the_strongest_below_the_clip():
    """On ReLU6 the strongest units sit at 6, where every rule passes nothing back; the neuron is the strongest
    unit below 6. Expected: the plain input gradient of that unit, found here by brute force over positions."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU6())
    with torch.no_grad():
        net[0].weight.mul_(8)
    model = freeze(VizModel(net, name="clipped", class_names=(), input_size=8, mean=(0.5,) * 3, std=(0.25,) * 3))
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = net((images - 0.5) / 0.25)[:, 0]
    assert ((outputs >= 6).flatten(1).any(1)).all() and ((outputs > 0) & (outputs < 6)).flatten(1).any(1).all()
    ours = channel_gradient(model, images, "1", 0, rule="plain")
    for i in range(len(images)):
        below = [(value, p) for p, value in enumerate(outputs[i].flatten().tolist()) if value < 6]
        _, position = max(below)
        pixels = images[i:i + 1].clone().requires_grad_(True)
        unit = net((pixels - 0.5) / 0.25)[0, 0].flatten()[position]
        (expected,) = torch.autograd.grad(unit, pixels)
        assert expected.abs().sum() > 0
        assert torch.allclose(ours[i:i + 1], expected, atol=1e-6)


def _pooling_net(pool):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), pool, nn.Conv2d(6, 8, 3, stride=2),
                            nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    return freeze(VizModel(net, name="pooling", class_names="abc", input_size=16, mean=(0.5,) * 3, std=(0.25,) * 3))


def test_without_max_pooling_the_deconvnet_map_ignores_the_image():
    """Zeiler & Fergus's deconvnet reads the forward pass only through max-pooling switches: its ReLU rule
    ignores the activations. A network without max-pooling (EfficientNet-Lite0, MobileNet) so gets one map per
    class, whatever the image; with max-pooling the switches carry the image back."""
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    strided = deconvnet(_pooling_net(nn.AvgPool2d(2)), images, 1)
    assert torch.equal(strided[0], strided[1])
    assert not torch.equal(deconvnet(_pooling_net(nn.AvgPool2d(2)), images, 2)[0], strided[0])   # but the class
    switched = deconvnet(_pooling_net(nn.MaxPool2d(2)), images, 1)
    assert not torch.allclose(switched[0], switched[1])
