"""The model wrapper, and the entry check that every technique runs once per call.

The sweep at the end runs every technique of the ImageNet-path registry on inputs that
users actually pass (numpy's float64, float16, channels-last and non-contiguous tensors,
inputs that require grad, NaN and infinite pixels, empty batches, odd sizes, a model in
training mode, a model whose parameters require grad): each gives the plain input's
result or a clear error, and leaves the input and the model as they were.
"""

import copy
import traceback
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from model_state import assert_unchanged, fingerprint
from test_imagenet_path import (
    TECHNIQUES, class_score_input_gradient, diverse_feature_visualisation, fire_activations, top5_classes,
)
import vizlib
from vizlib import models
from vizlib.adversarial import fgsm
from vizlib.course_data import make_shapes
from vizlib.guided_backprop import guided_backprop
from vizlib.images import load_sample_image
from vizlib.occlusion import occlusion
from vizlib.saliency import saliency, smoothgrad
from vizlib.wrapper import VizModel, check_model, checks_inputs, freeze, network


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
    for layer in (nn.BatchNorm2d(2), nn.Dropout(0.5)):
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
    "empty batch": (lambda x: x[:0], "plain", "empty or error"),
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
            assert expected != "empty or error" or result.numel() == 0
    assert_unchanged(model, before)
    assert torch.equal(images.detach().isnan(), kept.isnan())
    assert torch.equal(images.detach().nan_to_num(), kept.nan_to_num()), "the input's values changed"
    assert (images.requires_grad, images.stride(), images.dtype) == (requires_grad, stride, dtype)
    assert images.grad is None
