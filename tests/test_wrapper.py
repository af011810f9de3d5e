"""The model wrapper, and the entry check that every technique runs once per call.

The sweep at the end runs every technique of the ImageNet-path registry on inputs that
users actually pass (numpy's float64, float16, channels-last and non-contiguous tensors,
inputs that require grad, NaN and infinite pixels, empty batches, odd sizes, a model in
training mode, a model whose parameters require grad): each gives the plain input's
result or a clear error, and leaves the input and the model as they were.
"""

import copy
import inspect
import traceback
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from model_state import assert_unchanged, fingerprint
from test_imagenet_path import (
    TECHNIQUES, class_score_input_gradient, diverse_feature_visualisation, fire_activations, random_resnet18,
    top5_classes,
)
import vizlib
from vizlib import models
from vizlib.adversarial import fgsm
from vizlib.arguments import predict
from vizlib.cam import feature_map_layers, grad_cam
from vizlib.course_data import make_shapes
from vizlib.deepdream import deepdream
from vizlib.gradient_ascent import check_unit, settings_for
from vizlib.guided_backprop import guided_backprop
from vizlib.images import load_sample_image
from vizlib.inversion import default_layers
from vizlib.layers import layer_for
from vizlib.occlusion import occlusion
from vizlib.saliency import saliency, smoothgrad
from vizlib.wrapper import (
    DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD, VizModel, as_viz_model, check_model, checks_inputs, freeze,
    model_device, model_dtype, network, wrap,
)


def test_the_wrapper_is_one_class_wherever_it_is_imported_from():
    assert models.VizModel is vizlib.VizModel is VizModel and models.freeze is freeze


def test_network_unwraps_a_viz_model_only(course):
    assert network(course) is course.net
    plain = nn.Conv2d(3, 2, 1)
    assert network(plain) is plain


# --- the forward pass ---------------------------------------------------------------------------


class ValueReads(TorchFunctionMode):
    """Counts full passes over pixel values: torch.aminmax is what check_images reads them with."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.aminmax
        return func(*args, **(kwargs or {}))


def value_reads(call):
    with ValueReads() as reads:
        call()
    return reads.count


@pytest.mark.parametrize("call", [
    lambda model, images, labels: model(images),
    lambda model, images, labels: saliency(model, images),
    lambda model, images, labels: saliency(model, images, labels, batch_size=2),
    lambda model, images, labels: smoothgrad(model, images, n_samples=3, batch_size=4, show_progress=False),
    lambda model, images, labels: guided_backprop(model, images, labels),
    lambda model, images, labels: occlusion(model, images, window=32, stride=32, batch_size=2, show_progress=False),
    lambda model, images, labels: fgsm(model, images, epsilon=0.01),
], ids=["model(images)", "saliency", "saliency in chunks", "SmoothGrad", "guided backprop", "occlusion", "FGSM"])
def test_each_public_call_reads_the_pixel_values_once(course, call):
    images, labels, _ = make_shapes(5, "held_out", seed=1)
    assert value_reads(lambda: call(course, images, labels)) == 1
    bad = images.clone()
    bad[4, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):       # still refused after a checked call has ended
        course(bad)


def test_a_nested_public_call_is_checked_once_at_the_outermost_entry(course, monkeypatch):
    """smoothgrad runs saliency on every chunk of noisy copies, deepdream a step per iteration: the model is
    walked and the arguments bound once, at the call the user made, and a later call is checked afresh."""
    from vizlib import wrapper
    walks = []
    original = wrapper.check_model
    monkeypatch.setattr(wrapper, "check_model", lambda *a, **k: walks.append(1) or original(*a, **k))
    images, _, _ = make_shapes(4, "held_out", seed=1)
    smoothgrad(course, images, n_samples=6, batch_size=4, show_progress=False)     # saliency on 6 chunks
    deepdream(course, images[:1], "features.relu3", octaves=2, steps=3, show_progress=False)
    assert len(walks) == 2
    with pytest.raises(ValueError, match="the batch is empty"):            # no state is left behind
        saliency(course, images[:0])


def test_a_direct_call_inside_no_vizlib_call_checks_its_values(course):
    images = torch.rand(1, 3, 64, 64)
    for value, message in ((float("nan"), "NaN"), (float("inf"), "infinite"), (-float("inf"), "infinite"),
                           (1.5, r"\[0, 1\], got \[.*, 1\.5\]")):
        bad = images.clone()
        bad[0, 0, 5, 5] = value
        with pytest.raises(ValueError, match=message):
            course(bad)


class InputRecorder(nn.Module):
    """Records what the network receives: dtype and whether it is channels-last."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3).to(dtype)
        self.seen = []

    def forward(self, x):
        self.seen.append((x.dtype, x.is_contiguous(memory_format=torch.channels_last)))
        return self.conv(x).flatten(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_network_gets_its_dtype_and_the_cpus_fast_layout_and_the_gradient_comes_back_as_the_input(dtype):
    model = freeze(VizModel(InputRecorder(dtype), name="probe", class_names=(), input_size=None,
                            mean=(0.5,) * 3, std=(0.25,) * 3))
    torch.manual_seed(0)
    for images in (torch.rand(2, 3, 6, 6, dtype=torch.float64), torch.rand(2, 3, 6, 6, dtype=torch.float16),
                   torch.rand(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)):
        pixels = images.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(pixels).sum(), pixels)
        assert model.net.seen[-1] == (dtype, True)
        assert grad.dtype == images.dtype and grad.stride() == images.stride()
        # the oracle: the same network fed by hand, in its own dtype and the default layout
        reference = pixels.detach().to(dtype).requires_grad_(True)
        (expected,) = torch.autograd.grad(model.net.conv((reference - 0.5) / 0.25).sum(), reference)
        # equal up to the order of float32 sums, which differs between the two layouts' kernels
        torch.testing.assert_close(grad.double(), expected.double(), rtol=1e-3, atol=1e-5)


def test_the_fast_layout_leaves_the_course_models_scores_as_they_were(course):
    images, _, _ = make_shapes(8, "held_out", seed=2)
    with torch.no_grad():
        fast = course(images)
        by_hand = course.net((images - course.mean) / course.std)   # the contiguous layout, bypassing the wrapper
    torch.testing.assert_close(fast, by_hand, rtol=1e-5, atol=1e-5)


# --- the entry check ----------------------------------------------------------------------------


def test_check_model_refuses_batch_norm_and_dropout_in_training_mode():
    check_model(nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU()).train())   # nothing that depends on the mode
    check_model(nn.Sequential(nn.Conv2d(3, 2, 1), nn.InstanceNorm2d(2)).train())   # no running statistics
    for layer in (nn.BatchNorm2d(2), nn.Dropout(0.5), nn.InstanceNorm2d(2, track_running_stats=True)):
        model = nn.Sequential(nn.Conv2d(3, 2, 1), layer).train()
        with pytest.raises(ValueError, match=r"training mode \(1 \.\.\.\).*call model.eval\(\) first"):
            check_model(model)
        check_model(model.eval())
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        check_model(lambda images: images)


@pytest.mark.parametrize("technique", [
    lambda model, images, labels: saliency(model, images),
    lambda model, images, labels: smoothgrad(model, images, n_samples=2, show_progress=False),
    lambda model, images, labels: guided_backprop(model, images, labels),
    lambda model, images, labels: fgsm(model, images, labels, epsilon=0.01),
    lambda model, images, labels: occlusion(model, images, window=32, stride=32, show_progress=False),
], ids=["saliency", "SmoothGrad", "guided backprop", "FGSM", "occlusion"])
def test_a_course_model_in_training_mode_is_refused_and_its_batch_norm_statistics_stay(course, technique):
    model = copy.deepcopy(course).train()
    before = fingerprint(model)
    images, labels, _ = make_shapes(4, "held_out", seed=3)
    with pytest.raises(ValueError, match=r"training mode \(features.bn1, .*call model.eval\(\) first"):
        technique(model, images, labels)
    assert_unchanged(model, before)


def test_checks_inputs_converts_every_image_argument_and_leaves_options_alone():
    seen = {}

    @checks_inputs("images", "init")
    def technique(model, images, *, init="content"):
        seen.update(images=images, init=init)

    model = nn.Conv2d(3, 2, 1).double()
    images = torch.rand(1, 3, 4, 4)
    technique(model, images)
    assert seen["images"].dtype == torch.float64 and torch.equal(seen["images"], images.double())
    assert seen["init"] == "content"
    technique(model, images, init=images.half())
    assert seen["init"].dtype == torch.float64
    with pytest.raises(ValueError, match="init: expected values in"):
        technique(model, images, init=images + 2)
    with pytest.raises(TypeError, match="images: expected a torch.Tensor"):
        technique(model, images.numpy())


def public_model_functions():
    """Every public function of a vizlib module whose first argument is a model and that takes images."""
    import importlib
    import inspect
    import pkgutil

    image_arguments = {"images", "sample", "content", "style", "init", "reference", "adversarial", "data"}
    for info in pkgutil.iter_modules(vizlib.__path__):
        module = importlib.import_module(f"vizlib.{info.name}")
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != module.__name__:
                continue
            parameters = list(inspect.signature(function).parameters)
            if parameters[:1] == ["model"] and image_arguments & set(parameters):
                yield f"{info.name}.{name}", function


# The check itself; building blocks that only run the model, whose forward checks its input; a
# stream of batches, checked one by one; tools that train a network rather than explain one.
CHECKED_OTHERWISE = {"wrapper.prepare_images", "hooks.forward_to", "hooks.layer_features", "patches.top_activations",
                     "feature_visualisation.activations_for"}   # check_model, then layer_features or the forward


def test_every_public_function_taking_a_model_and_images_starts_with_the_entry_check():
    functions = dict(public_model_functions())
    assert {"saliency.saliency", "occlusion.occlusion", "adversarial.fgsm"} <= set(functions)
    unchecked = [name for name, function in functions.items()
                 if name not in CHECKED_OTHERWISE and not hasattr(function, "checked_inputs")]
    assert unchecked == []


# --- a user's own network: vizlib.wrap ---------------------------------------------------------


class SmallClassifier(nn.Module):
    """conv -> batch norm -> ReLU -> global average pool -> linear: 4 classes at any size. Records what it is
    fed on each call: (input, in training mode?, gradients enabled?)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(6, 4)
        self.fed = []

    def forward(self, x):
        self.fed.append((x.detach().clone(), self.training, torch.is_grad_enabled()))
        return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))


def small_classifier():
    """Seeded, as a user builds it: in training mode, its parameters requiring grad."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SmallClassifier()


def channels(values):
    return torch.tensor(values).view(1, 3, 1, 1)


def test_wrap_is_public():
    assert vizlib.wrap is wrap and "wrap" in vizlib.__all__


def test_wraps_defaults_are_torchvisions_imagenet_normalisation_and_size():
    """The oracle: the preprocessing torchvision states for its ImageNet classifiers (no download needed)."""
    transforms = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert (IMAGENET_MEAN, IMAGENET_STD, DEFAULT_INPUT_SIZE) == (
        tuple(transforms.mean), tuple(transforms.std), transforms.crop_size[0])
    assert (models.IMAGENET_MEAN, models.IMAGENET_STD) == (IMAGENET_MEAN, IMAGENET_STD)  # one normalisation in vizlib
    assert inspect.signature(wrap).parameters["mean"].default == IMAGENET_MEAN


def test_wrap_normalises_by_default_as_the_network_by_hand():
    net = small_classifier()
    model = wrap(net)
    assert (model.name, model.input_size, model.class_names) == (
        "smallclassifier", 224, ("class 0", "class 1", "class 2", "class 3"))
    images = torch.rand(3, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net((images - channels(IMAGENET_MEAN)) / channels(IMAGENET_STD))
        torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-6)


def test_wrap_takes_the_options_it_is_given():
    net = small_classifier()
    model = wrap(net, class_names=["cat", "dog", "fox", "owl"], input_size=32, mean=[0.5, 0.4, 0.3],
                 std=torch.tensor([0.25, 0.2, 0.1]), name="mine")
    assert (model.name, model.input_size, model.class_names) == ("mine", 32, ("cat", "dog", "fox", "owl"))
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = net((images - channels([0.5, 0.4, 0.3])) / channels([0.25, 0.2, 0.1]))
        torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("input_size, side", [(None, 224), (40, 40)])
def test_wrap_counts_the_classes_on_one_zero_image_in_eval_mode_without_gradients(input_size, side):
    net = small_classifier()
    wrap(net, input_size=input_size)
    ((pixels, training, grad_enabled),) = net.fed
    assert pixels.shape == (1, 3, side, side) and not training and not grad_enabled
    # the zero image, normalised: what the network sees of black pixels
    torch.testing.assert_close(pixels, (-channels(IMAGENET_MEAN) / channels(IMAGENET_STD)).expand(1, 3, side, side))


def test_wrap_keeps_the_networks_dtype_and_device():
    net = small_classifier().double()
    model = wrap(net, input_size=16)
    assert model.mean.dtype == model.std.dtype == torch.float64 and model.device == net.fc.weight.device
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        scores = model(images)   # float32 pixels, normalised in float64 as the network computes
        expected = net((images.double() - channels(IMAGENET_MEAN).double()) / channels(IMAGENET_STD).double())
    assert scores.dtype == torch.float64
    torch.testing.assert_close(scores, expected)


def test_wrap_freezes_the_network_in_place_and_shares_it():
    net = small_classifier()
    statistics = net.bn.running_mean.clone(), net.bn.running_var.clone()
    assert net.training and all(p.requires_grad for p in net.parameters())
    model = wrap(net)
    assert model.net is net   # not a copy: the user's own module, in eval mode and without parameter gradients
    assert not any(module.training for module in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    assert torch.equal(net.bn.running_mean, statistics[0]) and torch.equal(net.bn.running_var, statistics[1])


class Returns(nn.Module):
    """A 1x1 convolution to 2 channels, then `make` of its output: networks whose output is not class scores."""

    def __init__(self, make):
        super().__init__()
        self.conv, self.make = nn.Conv2d(3, 2, 1), make

    def forward(self, x):
        return self.make(self.conv(x))


def fixed_size_network():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))


BAD_WRAPS = {
    "a function": (lambda: (lambda x: x), {}, TypeError,
                   r"net must be a torch.nn.Module \(an image classifier\), got function: <function"),
    "a tensor": (lambda: torch.zeros(3), {}, TypeError, r"net must be a torch.nn.Module .*got Tensor: tensor"),
    "a mean of 1 value": (small_classifier, dict(mean=(0.5,)), ValueError,
                          r"mean must have 3 values, one per RGB channel, got 1: \(0.5,\)"),
    "a scalar mean": (small_classifier, dict(mean=0.5), ValueError, r"mean must have 3 values, .*got 1: 0.5"),
    "a std of 4 values": (small_classifier, dict(std=[0.2] * 4), ValueError,
                          r"std must have 3 values, one per RGB channel, got 4"),
    "a std of 0": (small_classifier, dict(std=(0.2, 0.0, 0.2)), ValueError,
                   r"std must be positive in every channel \(images are divided by it\), got \(0.2, 0.0, 0.2\)"),
    "a negative std": (small_classifier, dict(std=(-0.2, 0.2, 0.2)), ValueError, "std must be positive"),
    "a NaN mean": (small_classifier, dict(mean=(0.5, float("nan"), 0.5)), ValueError, "mean must be finite"),
    "a mean of words": (small_classifier, dict(mean=("a", "b", "c")), TypeError, "mean must be 3 numbers"),
    "a str std": (small_classifier, dict(std="0.2"), TypeError, "std must be 3 numbers"),
    "2 class names for 4 classes": (small_classifier, dict(class_names=["cat", "dog"]), ValueError,
                                    "2 class names given, but the network scores 4 classes"),
    "class names in one str": (small_classifier, dict(class_names="abcd"), TypeError,
                               "class_names must be a list or tuple of str, one per class, got str"),
    "class indices for names": (small_classifier, dict(class_names=[0, 1, 2, 3]), TypeError,
                                "class_names must be str"),
    "input size 0": (small_classifier, dict(input_size=0), ValueError, "input_size must be a positive int"),
    "input size 2.5": (small_classifier, dict(input_size=2.5), TypeError, "input_size must be a positive int"),
    "a name that is not a str": (small_classifier, dict(name=3), TypeError, "name must be a str, got int"),
    "an empty name": (small_classifier, dict(name=""), ValueError, "name must not be empty"),
    "feature maps": (lambda: Returns(lambda y: y), {}, ValueError,
                     r"the network must return class scores, a float tensor \(N, classes\); for one 224x224 "
                     r"zero image it returned a torch.float32 tensor of shape \(1, 2, 224, 224\) \(feature maps"),
    "a tuple": (lambda: Returns(lambda y: (y.mean((2, 3)), y)), {}, ValueError,
                r"the network must return class scores, .* it returned a tuple, not a tensor$"),
    "integer scores": (lambda: Returns(lambda y: y.mean((2, 3)).long()), {}, ValueError,
                       r"the network must return class scores, .* returned a torch.int64 tensor of shape \(1, 2\)$"),
    "one score per image": (lambda: Returns(lambda y: y.mean((1, 2, 3))), {}, ValueError,
                            r"the network must return class scores, .* returned a torch.float32 tensor of shape "
                            r"\(1,\)$"),
    "a network for another size": (fixed_size_network, {}, ValueError,
                                   r"the network cannot run on a 224x224 image \(the default input_size\); "
                                   r"pass the input_size it takes: mat1 and mat2"),
}


@pytest.mark.parametrize("case", BAD_WRAPS)
def test_a_bad_wrap_is_a_clear_error_and_leaves_the_network_as_it_was(case):
    make, options, error, message = BAD_WRAPS[case]
    net = make()
    before = fingerprint(net) if isinstance(net, nn.Module) else None
    with pytest.raises(error, match=r"^vizlib\.wrap: " + message):
        wrap(net, **options)
    if before is not None:
        assert_unchanged(net, before)   # in training mode still, where it was, and its flags as they were


def test_a_network_for_another_size_is_wrapped_at_its_size():
    assert wrap(fixed_size_network(), input_size=8).class_names == ("class 0", "class 1")


def test_wrap_hands_a_viz_model_back_unchanged_and_refuses_new_options(course):
    assert wrap(course) is course
    before = fingerprint(course)
    for options, named in ((dict(mean=(0.5,) * 3), "mean"), (dict(name="x", input_size=32), "input_size, name")):
        with pytest.raises(ValueError, match=rf"already wrapped \(VizModel 'course'\), so {named} cannot be set "
                                             r"again; wrap its network instead: vizlib.wrap\(model.net, ...\)"):
            wrap(course, **options)
    assert_unchanged(course, before)


def test_a_name_from_the_layer_table_gives_every_technique_its_layers():
    assert layer_for(wrap(random_resnet18(), name="resnet18"), "grad_cam") == "layer4"
    unnamed = wrap(random_resnet18())
    assert unnamed.name == "resnet"
    with pytest.raises(ValueError, match="no default grad_cam layers for model 'resnet'.*name the layers yourself"):
        layer_for(unnamed, "grad_cam")


# --- a bare module: taken as given, one rule everywhere -----------------------------------------


@pytest.fixture(scope="module")
def resnet_images():
    return torch.cat([load_sample_image(name, size=64) for name in ("astronaut", "chelsea")])


def gradient_map(network, images, classes):
    """Saliency by hand: |d score / d pixel|, the largest over the colour channels."""
    pixels = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(network(pixels).gather(1, classes[:, None]).sum(), pixels)
    return grad.abs().amax(1)


def test_a_bare_module_gets_the_stated_defaults_and_stays_as_it_was():
    net = small_classifier().eval()
    before = fingerprint(net)
    model = as_viz_model(net, size=(12, 10))
    assert model.net is net and isinstance(model, VizModel)
    assert (model.name, model.input_size) == ("smallclassifier", 224)
    assert model.mean.flatten().tolist() == [0.0] * 3 and model.std.flatten().tolist() == [1.0] * 3
    assert model.class_names == ("class 0", "class 1", "class 2", "class 3")
    assert net.fed[-1][0].shape == (1, 3, 12, 10) and not net.fed[-1][2]   # counted on one zero image of that size
    assert torch.equal(net.fed[-1][0], torch.zeros(1, 3, 12, 10))            # as given: not normalised
    assert as_viz_model(model) is model
    assert_unchanged(net, before)
    assert all(p.requires_grad for p in net.parameters())   # nothing frozen
    with pytest.raises(TypeError, match=r"expected a torch.nn.Module such as .*vizlib.wrap\(net\), got str"):
        as_viz_model("resnet18")


def test_the_entry_check_hands_a_technique_a_bare_module_behind_the_wrapper(course):
    seen = []

    @checks_inputs("images")
    def technique(model, images):
        seen.append(model)

    net = small_classifier().eval()
    technique(net, torch.rand(1, 3, 9, 7))
    assert isinstance(seen[-1], VizModel) and seen[-1].net is net
    assert net.fed[-1][0].shape == (1, 3, 9, 7)   # classes counted before the technique ran, at its images' size
    technique(course, torch.rand(1, 3, 64, 64))
    assert seen[-1] is course


def test_a_bare_network_is_taken_as_given_and_a_wrapped_one_normalised(resnet_images):
    bare = random_resnet18().eval()
    wrapped = wrap(copy.deepcopy(bare))
    as_given = wrap(copy.deepcopy(bare), mean=(0, 0, 0), std=(1, 1, 1))
    classes = torch.tensor([3, 500])
    before = fingerprint(bare)
    maps = saliency(bare, resnet_images, classes)
    torch.testing.assert_close(maps, gradient_map(bare, resnet_images, classes))
    torch.testing.assert_close(saliency(wrapped, resnet_images, classes), gradient_map(
        lambda x: bare((x - channels(IMAGENET_MEAN)) / channels(IMAGENET_STD)), resnet_images, classes),
        rtol=1e-4, atol=1e-6)
    # the stated defaults: the bare network is `wrap(net, mean=(0, 0, 0), std=(1, 1, 1))`, unfrozen
    torch.testing.assert_close(maps, saliency(as_given, resnet_images, classes), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad_cam(bare, resnet_images, "layer4", classes, show_progress=False),
                               grad_cam(as_given, resnet_images, "layer4", classes, show_progress=False),
                               rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(predict(bare, resnet_images).classes, bare(resnet_images).argmax(1))
    assert_unchanged(bare, before)


def test_a_bare_module_in_training_mode_is_refused_naming_eval_and_wrap(resnet_images):
    net = random_resnet18()   # as torchvision hands it out
    before = fingerprint(net)
    with pytest.raises(ValueError, match=r"training mode \(bn1, .*call model.eval\(\) first \(or wrap it: "
                                         r"vizlib.wrap\(net\) freezes it\)"):
        saliency(net, resnet_images)
    assert_unchanged(net, before)


def test_a_bare_feature_network_runs_where_no_class_is_needed_and_takes_no_class():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 0.6 + 0.2
    dreamed = deepdream(net, images, "1", octaves=1, steps=2, show_progress=False)
    assert dreamed.shape == images.shape and not torch.equal(dreamed, images)
    with pytest.raises(ValueError, match=r"the model scores no classes \(its output is not \(N, classes\) "
                                         r"scores\), so it takes no class indices, got \[0, 0\]"):
        saliency(net, images, 0)
    with pytest.raises(ValueError, match=r"returned shape \(2, 4, 16, 16\) for 2 images, not class scores"):
        saliency(net, images)


def test_a_bare_module_returning_no_tensor_is_a_clear_error():
    net = Returns(lambda y: (y.mean((2, 3)), y)).eval()
    with pytest.raises(ValueError, match=r"model: a bare Returns must return a tensor, class scores \(N, classes\) "
                                         "or feature maps; for one zero image it returned a tuple, not a tensor"):
        saliency(net, torch.rand(1, 3, 8, 8))


def test_the_helpers_that_read_the_wrapper_take_a_bare_module_by_the_same_rule():
    bare = random_resnet18().eval()
    assert settings_for(bare) == settings_for(wrap(copy.deepcopy(bare)))   # both 224 px
    assert "layer4" in feature_map_layers(bare)
    assert check_unit(bare, "layer4", [0, 511])[0] == "layer4"
    assert default_layers(bare) == default_layers(wrap(copy.deepcopy(bare)))
    with pytest.raises(ValueError, match="no default grad_cam layers"):   # a bare module is in no table
        layer_for(bare, "grad_cam")


# --- the sweep: every technique of the registry, on every odd input -----------------------------

DIRECT_CALLS = (top5_classes, fire_activations, class_score_input_gradient)   # user code calling the model
IMAGE_FREE = (diverse_feature_visualisation,)   # takes a model and draws its own images


def _non_contiguous(images):
    return images.transpose(2, 3).contiguous().transpose(2, 3)


def _with(value):
    def change(images):
        images = images.clone()
        images[-1, 1, 5, 7] = value
        return images
    return change


# name: (how the images change, which model, what must come out)
CASES = {
    "float64": (lambda x: x.double(), "plain", "same"),
    "float16": (lambda x: x.half(), "plain", "same"),
    "channels-last": (lambda x: x.contiguous(memory_format=torch.channels_last), "plain", "same"),
    "non-contiguous": (_non_contiguous, "plain", "same"),
    "requires grad": (lambda x: x.clone().requires_grad_(True), "plain", "same"),
    "NaN pixel": (_with(float("nan")), "plain", (ValueError, "NaN")),
    "infinite pixel": (_with(float("inf")), "plain", (ValueError, "infinite")),
    "empty batch": (lambda x: x[:0], "plain", (ValueError, "the batch is empty")),
    "odd size 45x51": (lambda x: x[..., 7:52, 3:54], "plain", "runs or error"),
    "model in training mode": (lambda x: x, "training", (ValueError, r"call model.eval\(\) first")),
    "parameters require grad": (lambda x: x, "requires grad", "same"),
}
SIZE = 64   # SqueezeNet at 64 px: every registry entry runs, at a twelfth of the cost of 224 px


@pytest.fixture(scope="module")
def sweep_models():
    plain = models.random_imagenet_model("squeezenet1_1", seed=0)
    return {"plain": plain, "training": copy.deepcopy(plain).train(),
            "requires grad": copy.deepcopy(plain).requires_grad_(True)}


@pytest.fixture(scope="module")
def sweep_images():
    """Two photographs with pixel values k/256, exact in float16, float32 and float64 alike."""
    images = torch.cat([load_sample_image(name, size=SIZE) for name in ("astronaut", "chelsea")])
    return (images * 256).round() / 256


@pytest.fixture(scope="module")
def plain_results(sweep_models, sweep_images):
    cache = {}

    def result(name):
        if name not in cache:
            cache[name] = TECHNIQUES[name](sweep_models["plain"], sweep_images.clone())
        return cache[name]

    return result


MODEL_CASES = ("model in training mode", "parameters require grad")
SWEEP = [(technique, case) for technique in TECHNIQUES for case in CASES
         if not (case == "model in training mode" and TECHNIQUES[technique] in DIRECT_CALLS)
         and (case in MODEL_CASES or TECHNIQUES[technique] not in IMAGE_FREE)]
# A model called directly in training mode is training: the wrapper lets it (train_course_model does).
# A technique that makes its images from nothing (feature visualisation) meets only the model's cases.

CLEAR_ERROR = (ValueError, TypeError)


def raised_by_vizlib(error):
    """A clear error is one vizlib raises itself, with its own message, not one from deep inside torch."""
    last = traceback.extract_tb(error.__traceback__)[-1]
    return Path(last.filename).resolve().is_relative_to(Path(vizlib.__file__).parent.resolve())


@pytest.mark.parametrize("technique, case", SWEEP, ids=[f"{t} | {c}" for t, c in SWEEP])
def test_odd_inputs_give_the_plain_result_or_a_clear_error_and_change_nothing(
        technique, case, sweep_models, sweep_images, plain_results):
    change, which, expected = CASES[case]
    model, images = sweep_models[which], change(sweep_images)
    kept, requires_grad, stride, dtype = images.detach().clone(), images.requires_grad, images.stride(), images.dtype
    before = fingerprint(model)
    run = TECHNIQUES[technique]
    if isinstance(expected, tuple):
        error, message = expected
        with pytest.raises(error, match=message):
            run(model, images)
    elif expected == "same":
        result = run(model, images)
        # results come in the model's dtype; what is a view or gradient of the input comes in the input's.
        # The wrapper feeds the network one layout, whatever the input's: equal bit for bit.
        assert torch.equal(result, plain_results(technique).to(result.dtype))
    else:
        try:
            result = run(model, images)
        except CLEAR_ERROR as raised:
            assert raised_by_vizlib(raised), f"an error from deep inside: {raised!r}"
        else:
            assert result.shape[0] == len(images) and torch.isfinite(result.float()).all()
    assert_unchanged(model, before)
    assert torch.equal(images.detach().isnan(), kept.isnan())
    assert torch.equal(images.detach().nan_to_num(), kept.nan_to_num()), "the input's values changed"
    assert (images.requires_grad, images.stride(), images.dtype) == (requires_grad, stride, dtype)
    assert images.grad is None


def test_a_models_device_and_dtype_are_those_of_its_first_tensor():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_dtype(nn.Linear(2, 2).double()) == torch.float64
    empty = nn.Sequential(nn.ReLU())        # nothing to read them from: the CPU and the default dtype
    assert model_device(empty) == torch.device("cpu") and model_dtype(empty) == torch.get_default_dtype()
    buffered = nn.BatchNorm2d(2)
    assert model_device(buffered) == buffered.weight.device
