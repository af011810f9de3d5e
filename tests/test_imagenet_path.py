"""The ImageNet path of every technique, offline: randomly initialised SqueezeNet 1.1 at 224 px,
and a user's own network: torchvision's ResNet-18, through `vizlib.wrap` and bare.

CI cannot download ImageNet weights, but it can build the architectures. Every
technique of the course registers one entry in TECHNIQUES: a function
(model, images) -> tensor that runs it briefly (a few steps, seconds) through the
same wrapper the notebooks use. The test checks the result is finite and the
model comes back exactly as it went in. The layers an entry reads come from
ARCHITECTURE_LAYERS, by the class of the network, so one registry serves every
architecture, wrapped or bare.

PASSES says how often each technique runs the layer FAILING_LAYER, forward and
backward; from it the error-path test makes that layer fail inside the technique's
own pass and checks the error reaches the caller and nothing is left behind.
"""

import re
from contextlib import contextmanager

import pytest
import torch
import torchvision

import vizlib
from model_state import assert_unchanged, fingerprint
from vizlib.deepdream import deepdream
from vizlib.dissection import Concepts, dissect_layers, unit_regions
from vizlib.embedding import tsne
from vizlib.filters import first_layer_activations
from vizlib.gram_texture import synthesise_texture
from vizlib.gradient_ascent import class_visualisation, settings_for
from vizlib.guided_backprop import channel_gradient, guided_backprop
from vizlib.adversarial import fgsm, fooling_image, pgd
from vizlib.cam import grad_cam, guided_grad_cam
from vizlib.evaluation import perturbation_curves
from vizlib.feature_visualisation import channel, class_score, diversity, visualise
from vizlib.hooks import capture_activations
from vizlib.images import load_sample_image
from vizlib.integrated_gradients import gradient_x_input, integrated_gradients
from vizlib.inversion import invert
from vizlib.models import random_imagenet_model
from vizlib.neighbours import extract_features, nearest_neighbours
from vizlib.occlusion import occlusion
from vizlib.patches import channel_patches, top_activations
from vizlib.receptive_field import receptive_field
from vizlib.saliency import saliency, smoothgrad
from vizlib.style_transfer import style_transfer
from vizlib.wrapper import network

# The layers the registry reads on each architecture, by the class of the network (behind the wrapper
# or bare): on SqueezeNet 1.1 its Fire modules; on ResNet-18 the outputs of its stages, each run once
# per pass (a block's own `relu` runs twice in it, so no entry names one). None: the model's default
# (vizlib.layers), which the ResNet-18 a user wraps under its own name does not have.
ARCHITECTURE_LAYERS = {
    "SqueezeNet": {"early": "features.1", "middle": "features.4", "middle conv": "features.4.expand3x3",
                   "deep": "features.7", "last": "features.12", "features": None, "pool": None},
    "ResNet": {"early": "maxpool", "middle": "layer2", "middle conv": "layer2.0.conv2",
               "deep": "layer3", "last": "layer4", "features": "avgpool", "pool": "flatten"},
}


def layer(model, role):
    """The layer `role` names on this model's architecture (ARCHITECTURE_LAYERS)."""
    return ARCHITECTURE_LAYERS[type(network(model)).__name__][role]


def top5_classes(model, images):
    with torch.no_grad():
        return model(images).topk(5).indices


def fire_activations(model, images):
    with capture_activations(model, layer(model, "last")) as acts, torch.no_grad():
        model(images)
    return acts[layer(model, "last")]


def class_score_input_gradient(model, images):
    images = images.clone().requires_grad_(True)
    scores = model(images)
    (grad,) = torch.autograd.grad(scores[:, 0].sum(), images)
    return grad


def dissection_regions(model, images):
    """Two Fire modules dissected on a made-up concept (bright pixels, masks at a quarter of the size), then
    the first unit's region in every image."""
    small = torch.nn.functional.avg_pool2d(images, 4)
    concepts = Concepts(("bright",), ("tone",), torch.where(small.mean(1, keepdim=True) > 0.5, 0, -1))
    first, _ = dissect_layers(model, images, [layer(model, "middle"), layer(model, "deep")], concepts, quantile=0.01,
                              show_progress=False)
    return unit_regions(model, images, first, 0)


def diverse_feature_visualisation(model, images):
    """Draws two images of its own: `images` is not used (tests/test_wrapper.py sweeps only the model's cases)."""
    objective = class_score([1, 2]) + channel(layer(model, "middle conv"), 3) - diversity(layer(model, "middle"))
    return visualise(model, objective, steps=2, show_progress=False).images


def gram_layers(model):
    return {layer(model, "early"): 1.0, layer(model, "middle"): 1.0}


TECHNIQUES = {
    "Grad-CAM at the last Fire module": lambda model, images: grad_cam(
        model, images, layer(model, "last"), show_progress=False),
    "Guided Grad-CAM": lambda model, images: guided_grad_cam(model, images, layer(model, "last")),
    "Integrated Gradients (2 steps)": lambda model, images: integrated_gradients(
        model, images, steps=2, show_progress=False),
    "gradient x input": gradient_x_input,
    "deletion curve (4 steps)": lambda model, images: perturbation_curves(
        model, images, images.mean(1), steps=4, show_progress=False),
    "Gram texture synthesis (2 steps)": lambda model, images: synthesise_texture(
        model, images, gram_layers(model), size=64, steps=2, show_progress=False).images,
    "style transfer (2 L-BFGS steps)": lambda model, images: style_transfer(
        model, images, images[:1], content_layer=layer(model, "middle"), style_weights=gram_layers(model),
        steps=2, show_progress=False).images,
    "top-5 classes": top5_classes,
    "activations of a Fire module": fire_activations,
    "input gradient of a class score": class_score_input_gradient,
    "saliency map": saliency,
    "SmoothGrad (2 samples)": lambda model, images: smoothgrad(model, images, n_samples=2, show_progress=False),
    "feature inversion (3 steps)": lambda model, images: invert(
        model, images, layer(model, "middle"), steps=3, show_progress=False).images,
    "first-layer activation maps": first_layer_activations,
    "DeepDream (2 octaves, 2 steps)": lambda model, images: deepdream(
        model, images, layer(model, "last"), octaves=2, steps=2, show_progress=False),
    "fooling image (3 steps)": lambda model, images: fooling_image(
        model, images, (top5_classes(model, images)[:, 0] + 1) % 1000, max_steps=3, show_progress=False).images,
    "FGSM": lambda model, images: fgsm(model, images, epsilon=8 / 255),
    "PGD (2 steps)": lambda model, images: pgd(model, images, epsilon=8 / 255, steps=2, show_progress=False),
    "class visualisation by gradient ascent (2 steps)": lambda model, images: class_visualisation(
        model, [0, 1], settings=settings_for(model, steps=2, blur_every=1), init=images, show_progress=False).images,
    "occlusion map (16 windows)": lambda model, images: occlusion(
        model, images, window=56, stride=56, show_progress=False).maps,
    "nearest neighbours in feature space": lambda model, images: nearest_neighbours(extract_features(
        model, images, layer(model, "features"), pool=layer(model, "pool"), show_progress=False), 1).indices,
    "t-SNE of features (8 shifted copies)": lambda model, images: tsne(extract_features(
        model, torch.cat([images.roll(16 * s, dims=3) for s in range(4)]), layer(model, "features"),
        pool=layer(model, "pool"), show_progress=False), perplexity=2, n_iter=50)[:len(images)],
    "guided backprop of the top class": lambda model, images: guided_backprop(
        model, images, top5_classes(model, images)[:, 0]),
    "deconvnet of a Fire module's channel": lambda model, images: channel_gradient(
        model, images, layer(model, "last"), 7, rule="deconvnet"),
    "top-k patches of a Fire channel": lambda model, images: channel_patches(images, receptive_field(
        model, layer(model, "deep")), top_activations(model, images, layer(model, "deep"), k=2, batch_size=1,
                                                      show_progress=False), 0).images,
    "feature visualisation of a class and a channel, diverse (2 steps)": diverse_feature_visualisation,
    "network dissection of two Fire modules": dissection_regions,
}

# The deepest layer every technique above runs (inversion and the Gram losses stop at it).
FAILING_LAYER = "features.4"

# How many times each technique runs FAILING_LAYER (forward, backward), counted up to 2,
# as the plain run below measures: 2 lets the failure come after a call that succeeded
# (e.g. predicting the classes); 0 backward calls, a technique that takes no gradient.
PASSES = {
    "Grad-CAM at the last Fire module": (1, 0),
    "Guided Grad-CAM": (2, 1),
    "Integrated Gradients (2 steps)": (2, 1),
    "gradient x input": (2, 1),
    "deletion curve (4 steps)": (2, 0),
    "Gram texture synthesis (2 steps)": (2, 2),
    "style transfer (2 L-BFGS steps)": (2, 2),
    "top-5 classes": (1, 0),
    "activations of a Fire module": (1, 0),
    "input gradient of a class score": (1, 1),
    "saliency map": (2, 1),
    "SmoothGrad (2 samples)": (2, 1),
    "feature inversion (3 steps)": (2, 2),
    "first-layer activation maps": (1, 0),
    "DeepDream (2 octaves, 2 steps)": (2, 2),
    "fooling image (3 steps)": (2, 2),
    "FGSM": (2, 1),
    "PGD (2 steps)": (2, 2),
    "class visualisation by gradient ascent (2 steps)": (2, 2),
    "occlusion map (16 windows)": (2, 0),
    "nearest neighbours in feature space": (1, 0),
    "t-SNE of features (8 shifted copies)": (1, 0),
    "guided backprop of the top class": (2, 1),
    "deconvnet of a Fire module's channel": (1, 1),
    "top-k patches of a Fire channel": (2, 0),
    "feature visualisation of a class and a channel, diverse (2 steps)": (2, 2),
    "network dissection of two Fire modules": (2, 0),
}

# (technique, phase, call): the failure hits the second call where there is one, else the first.
FAILURES = [(name, phase, min(count, 2)) for name, counts in PASSES.items()
            for phase, count in zip(("forward", "backward"), counts) if count]


@pytest.fixture(scope="module")
def squeezenet():
    return random_imagenet_model("squeezenet1_1", seed=0)


@pytest.fixture(scope="module")
def images():
    return torch.cat([load_sample_image(name, size=224) for name in ("astronaut", "chelsea")])


@pytest.mark.parametrize("name", TECHNIQUES)
def test_technique_runs_on_random_squeezenet(name, squeezenet, images):
    before = fingerprint(squeezenet)
    with layer_calls(squeezenet.layer(FAILING_LAYER)) as calls:
        result = TECHNIQUES[name](squeezenet, images)
    assert isinstance(result, torch.Tensor) and result.shape[0] == len(images)
    assert torch.isfinite(result.float()).all()
    assert_unchanged(squeezenet, before)
    passes = (min(calls["forward"], 2), min(calls["backward"], 2))
    assert PASSES.get(name) == passes, f"PASSES[{name!r}] should be {passes}"


class InjectedFailure(RuntimeError):
    """Raised by the layer the test breaks; a RuntimeError, like PyTorch's own failures."""


@contextmanager
def layer_calls(module, fail_at=None):
    """Count `module`'s calls per phase; with fail_at=(phase, n), its n-th call in that phase raises.

    A backward call is the gradient flowing back through one forward call's output, seen by
    a hook on that output tensor: it lives in that pass's graph, never on the model. The
    forward hook goes when the block ends, even on error.
    """
    calls = {"forward": 0, "backward": 0}

    def call(phase):
        calls[phase] += 1
        if fail_at == (phase, calls[phase]):
            raise InjectedFailure(f"{phase} call {calls[phase]} of the broken layer")

    def forward_hook(module, args, output):
        call("forward")
        if output.requires_grad:
            output.register_hook(lambda grad: call("backward"))

    handle = module.register_forward_hook(forward_hook)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.mark.parametrize("name, phase, at", FAILURES)
def test_technique_failing_inside_leaves_model_as_found(name, phase, at, squeezenet, images):
    before, pixels = fingerprint(squeezenet), images.clone()
    with layer_calls(squeezenet.layer(FAILING_LAYER), fail_at=(phase, at)) as calls:
        with pytest.raises(InjectedFailure, match=re.escape(f"{phase} call {at} of the broken layer")):
            TECHNIQUES[name](squeezenet, images)
    assert calls[phase] == at  # the failing call really ran, and nothing of its phase after it
    assert_unchanged(squeezenet, before)
    assert torch.equal(images, pixels)


# --- a user's own network: torchvision's ResNet-18 through vizlib.wrap, and bare ------------------------

RESNET_SIZE = 64   # every entry runs at 64 px (layer4 is 2x2), at a twelfth of the cost of 224 px


def random_resnet18():
    """torchvision's ResNet-18 with seeded random weights, as torchvision hands it out: in training mode,
    its parameters requiring grad. The global random state is left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torchvision.models.resnet18(weights=None)


@pytest.fixture(scope="module")
def wrapped_resnet18():
    """Through `vizlib.wrap` with its defaults (ImageNet's mean and std, "class 0" ...), at the test's size."""
    return vizlib.wrap(random_resnet18(), input_size=RESNET_SIZE)


@pytest.fixture(scope="module")
def bare_resnet18():
    """Bare, in eval mode as a user must hand it over; its parameters still require grad."""
    return random_resnet18().eval()


@pytest.fixture(scope="module")
def small_images():
    return torch.cat([load_sample_image(name, size=RESNET_SIZE) for name in ("astronaut", "chelsea")])


@pytest.mark.parametrize("name", TECHNIQUES)
def test_technique_runs_on_a_wrapped_resnet18(name, wrapped_resnet18, small_images):
    before = fingerprint(wrapped_resnet18)
    result = TECHNIQUES[name](wrapped_resnet18, small_images)
    assert isinstance(result, torch.Tensor) and result.shape[0] == len(small_images)
    assert torch.isfinite(result.float()).all()
    assert_unchanged(wrapped_resnet18, before)


@pytest.mark.parametrize("name", TECHNIQUES)
def test_technique_takes_a_bare_resnet18_as_given_and_leaves_it_as_it_was(name, bare_resnet18, small_images):
    """The one rule for a bare module (vizlib.wrapper): it runs, unnormalised, and nothing of it is frozen or
    changed; never an AttributeError. tests/test_wrapper.py checks what "as given" computes."""
    before = fingerprint(bare_resnet18)
    result = TECHNIQUES[name](bare_resnet18, small_images)
    assert isinstance(result, torch.Tensor) and result.shape[0] == len(small_images)
    assert torch.isfinite(result.float()).all()
    assert_unchanged(bare_resnet18, before)
    assert all(parameter.requires_grad for parameter in bare_resnet18.parameters())
