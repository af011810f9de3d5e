"""The shared arguments: classes, predictions and counts, checked the same way by every technique."""

import inspect

import numpy as np
import pytest
import torch
from torch import nn

from model_state import assert_unchanged, fingerprint
from public_api import public_callables
from vizlib.arguments import (
    check_batch_size, check_classes, predict, resolve_classes,
)
from vizlib.course_data import make_shapes


# ---------------------------------------------------------------- batch sizes (vizlib.counts has the rule)


@pytest.mark.parametrize("value", [1, 7, np.int64(3), torch.tensor(2).item()])
def test_a_batch_size_passes_as_an_int(value):
    checked = check_batch_size(value)
    assert checked == int(value) and type(checked) is int


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError), ("4", TypeError), (None, TypeError),
])
def test_a_batch_size_is_refused_with_the_count_wording(value, error):
    with pytest.raises(error, match=rf"^batch_size must be a positive int, got {value!r}$"):
        check_batch_size(value)


# ---------------------------------------------------------------- classes


def test_check_classes_expands_an_int_and_refuses_what_is_not_a_class():
    assert check_classes(5, [4, 0, 2]).tolist() == [4, 0, 2]          # a class count, and as many as given
    assert check_classes(5, 3, 2).tolist() == [3, 3]
    assert check_classes(5, torch.tensor([[1], [2]]), 2).tolist() == [1, 2]
    with pytest.raises(ValueError, match="no classes given"):
        check_classes(5, [])
    with pytest.raises(ValueError, match="got 3 class indices for 2 images"):
        check_classes(5, [0, 1, 2], 2)
    with pytest.raises(ValueError, match=r"valid indices are 0 to 4, got \[5, 5\]"):
        check_classes(5, 5, 2)
    with pytest.raises(TypeError, match="classes must be a class index or one per image, got None"):
        check_classes(5, None, 2)
    for fractional in (2.7, [1.0], torch.tensor([3.5]), True):
        with pytest.raises(TypeError, match="class indices must be integers"):
            check_classes(5, fractional, 1)


@pytest.fixture(scope="module")
def shapes():
    images, labels, _ = make_shapes(5, "held_out", seed=4)
    return images, labels


def _softmax_by_hand(logits):
    """exp(z - max z) / sum: written out, not torch.softmax."""
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_predict_against_one_forward_pass_per_image(course, shapes, batch_size):
    images, labels = shapes
    before = fingerprint(course)
    with torch.no_grad():
        logits = np.stack([course(image[None])[0].double().numpy() for image in images])
    probabilities = _softmax_by_hand(logits)
    top = logits.argmax(1)
    rows = np.arange(len(images))

    predicted = predict(course, images, batch_size=batch_size)
    assert predicted.classes.tolist() == top.tolist()
    np.testing.assert_allclose(predicted.scores.numpy(), logits[rows, top], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predicted.probabilities.numpy(), probabilities[rows, top], rtol=1e-5, atol=1e-6)

    asked = predict(course, images, labels, batch_size=batch_size)
    assert torch.equal(asked.classes, labels)
    np.testing.assert_allclose(asked.scores.numpy(), logits[rows, labels], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(asked.probabilities.numpy(), probabilities[rows, labels], rtol=1e-5, atol=1e-6)
    assert predict(course, images, 2).classes.tolist() == [2] * len(images)
    assert_unchanged(course, before)


def test_predict_is_frozen_and_refuses_an_empty_batch(course, shapes):
    with pytest.raises(ValueError, match="the batch is empty"):
        predict(course, shapes[0][:0])
    prediction = predict(course, shapes[0][:1])
    with pytest.raises(AttributeError):
        prediction.classes = torch.ones(1)


def test_resolve_classes_fills_in_the_prediction_only_where_none_is_given(course, shapes):
    images, labels = shapes
    with torch.no_grad():
        top = course(images).argmax(1)
    assert torch.equal(resolve_classes(course, images), top)
    assert torch.equal(resolve_classes(course, images, labels), labels)
    assert resolve_classes(course, images, 7).tolist() == [7] * len(images)
    before = fingerprint(course)
    with pytest.raises(ValueError, match="valid indices are 0 to 7"):
        resolve_classes(course, images, 8)
    with pytest.raises(ValueError, match="batch_size"):
        resolve_classes(course, images, batch_size=0)
    assert_unchanged(course, before)


def test_a_plain_network_is_predicted_too():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6)).eval()
    images = torch.rand(3, 3, 4, 4)
    with torch.no_grad():
        expected = net(images).argmax(1)
    assert torch.equal(resolve_classes(net, images), expected)


# ---------------------------------------------------------------- one name for the class, one batch-size check


# Parameters named like a class argument that carry something else, each with its reason.
NOT_A_CLASS = {
    ("precision_at_k", "labels"): "dataset labels that score neighbours",
    ("chance_precision", "labels"): "dataset labels that give the chance level",
    ("show_neighbours", "labels"): "dataset labels that frame each neighbour",
    ("show_embeddings", "labels"): "dataset labels that colour the points",
    ("accuracy", "labels"): "dataset labels that score the course model",
    ("RenderedShapes", "labels"): "the course dataset's shape labels, as make_shapes returns them",
    ("LabelledImages", "labels"): "a dataset's labels, returned with its images",
    ("Concepts", "labels"): "per-pixel concept label maps for dissection, not classes of the model",
    ("content_loss", "target"): "the content image's feature maps",
    ("cam_network", "labels"): "dataset labels that the new linear head is fitted to",
}
CLASS_LIKE = {"target", "targets", "labels", "label"}


def test_no_public_function_takes_a_class_under_another_name():
    offenders, used = [], set()
    for module, name, obj in public_callables():
        try:
            parameters = inspect.signature(obj).parameters
        except (TypeError, ValueError):  # classes without a signature of their own
            continue
        for parameter in parameters:
            if parameter in CLASS_LIKE:
                if (name, parameter) in NOT_A_CLASS:
                    used.add((name, parameter))
                else:
                    offenders.append(f"{module}.{name}({parameter})")
    assert not offenders, f"name the class argument `classes`: {offenders}"
    assert used == set(NOT_A_CLASS), f"stale entries in NOT_A_CLASS: {set(NOT_A_CLASS) - used}"


# Where the class is not optional: building blocks that take it as given, and pictures drawn from nothing,
# with no image whose prediction could stand in for it.
CLASSES_REQUIRED = {
    "vizlib.adversarial.loss_gradient", "vizlib.adversarial.fooling_image",
    "vizlib.feature_visualisation.class_score", "vizlib.gradient_ascent.class_objective",
    "vizlib.gradient_ascent.class_visualisation", "vizlib.optim.score_gradient",
}


def test_one_argument_order_model_images_subjects_then_classes():
    """(model, images, layer, what else the technique needs, classes=None, *, options): `classes` is the last
    argument that can be passed by position, and None (each image's predicted class) wherever an image can be
    predicted."""
    offenders, required = [], set()
    for module, name, obj in public_callables():
        if not inspect.isfunction(obj) or name.startswith("check_"):
            continue
        parameters = list(inspect.signature(obj).parameters.values())
        names = [parameter.name for parameter in parameters]
        if names[:1] == ["model"] and {"images", "data"} & set(names) and names[1] not in ("images", "data"):
            offenders.append(f"{module}.{name}: images second")
        layer = [p.name for p in parameters
                 if p.name in ("layer", "layers", "features_layer") and p.kind is p.POSITIONAL_OR_KEYWORD]
        if names[1:2] in (["images"], ["data"]) and layer and names.index(layer[0]) != 2:
            offenders.append(f"{module}.{name}: the layer right after the images")
        if "classes" not in names:
            continue
        after = parameters[names.index("classes") + 1:]
        if any(parameter.kind is parameter.POSITIONAL_OR_KEYWORD for parameter in after):
            offenders.append(f"{module}.{name}: positional argument after classes")
        if inspect.signature(obj).parameters["classes"].default is not None:
            required.add(f"{module}.{name}")
    assert not offenders, offenders
    assert required == CLASSES_REQUIRED


def _batched_calls(course, images):
    from vizlib.neighbours import extract_features
    from vizlib.occlusion import occlusion
    from vizlib.patches import feature_similarity, top_activations, unit_features
    from vizlib.saliency import saliency, smoothgrad
    from vizlib.course.train_style_net import train_transform_net
    from vizlib.texture_sampling import efros_leung
    from vizlib.cam import grad_cam
    from vizlib.evaluation import perturbation_curves, score_maps, score_methods
    from vizlib.integrated_gradients import gradient_x_input, integrated_gradients
    from vizlib.dissection import Concepts, activation_thresholds, detector_examples, dissect_layers

    concepts = Concepts(("bright",), ("tone",), torch.where(images.mean(1, keepdim=True) > 0.5, 0, -1))
    return {
        "predict": lambda b: predict(course, images, batch_size=b),
        "resolve_classes": lambda b: resolve_classes(course, images, batch_size=b),
        "saliency": lambda b: saliency(course, images, batch_size=b),
        "smoothgrad": lambda b: smoothgrad(course, images, n_samples=1, batch_size=b, show_progress=False),
        "occlusion": lambda b: occlusion(course, images, batch_size=b, show_progress=False),
        "extract_features": lambda b: extract_features(course, images, batch_size=b, show_progress=False),
        "top_activations": lambda b: top_activations(course, images, "features.relu2", k=1, batch_size=b),
        "unit_features": lambda b: unit_features(course, images, "features.relu2", [0], [(0, 0)], batch_size=b),
        "feature_similarity": lambda b: feature_similarity(
            course, images, top_activations(course, images, "features.relu2", k=1, show_progress=False), batch_size=b),
        "efros_leung": lambda b: efros_leung(images[:1, :, :16, :16], 16, 5, batch_size=b),
        "train_transform_net": lambda b: train_transform_net(course, images[:1], steps=1, batch_size=b),
        "grad_cam": lambda b: grad_cam(course, images, "features.relu5", batch_size=b),
        "integrated_gradients": lambda b: integrated_gradients(course, images, steps=2, batch_size=b),
        "gradient_x_input": lambda b: gradient_x_input(course, images, batch_size=b),
        "perturbation_curves": lambda b: perturbation_curves(course, images, images[:, 0], steps=2, batch_size=b),
        "score_maps": lambda b: score_maps(course, images, {"red": images[:, 0]}, steps=2, batch_size=b),
        "score_methods": lambda b: score_methods(course, images, {"red": lambda m, x, c: x[:, 0]},
                                                 steps=2, batch_size=b),
        "activation_thresholds": lambda b: activation_thresholds(course, images, ["features.relu5"], batch_size=b),
        "dissect_layers": lambda b: dissect_layers(course, images, ["features.relu5"], concepts, batch_size=b),
        "detector_examples": lambda b: detector_examples(
            course, images, dissect_layers(course, images, ["features.relu5"], concepts)[0], [0], k=1, batch_size=b),
    }


BATCHED = ["predict", "resolve_classes", "saliency", "smoothgrad", "occlusion", "extract_features", "top_activations",
           "unit_features", "feature_similarity", "efros_leung", "train_transform_net", "grad_cam",
           "integrated_gradients", "gradient_x_input", "perturbation_curves", "score_maps", "score_methods",
           "activation_thresholds", "dissect_layers", "detector_examples"]
COURSE_TOOLS = {"accuracy", "train"}  # train_course_model: run by `make course-model`, not by students


def test_every_function_with_a_batch_size_is_checked_below():
    takes = {name for _, name, obj in public_callables()
             if inspect.isfunction(obj) and "batch_size" in inspect.signature(obj).parameters}
    assert takes - COURSE_TOOLS - {"check_batch_size"} == set(BATCHED)


@pytest.mark.parametrize("name", BATCHED)
def test_every_batch_size_is_checked_alike(course, shapes, name):
    images = shapes[0][:2]
    call = _batched_calls(course, images)[name]
    before = fingerprint(course)
    for batch_size, error in ((0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match=rf"^batch_size must be a positive int, got {batch_size!r}$"):
            call(batch_size)
    assert_unchanged(course, before)
