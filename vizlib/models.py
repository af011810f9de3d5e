"""The networks of the course: the course model and torchvision's ImageNet models, all wrapped.

Each comes as a `VizModel` (vizlib.wrapper: normalisation inside, class names,
input size, layer names), frozen: eval mode, no parameter requires grad.
"""

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
from torch import nn

from vizlib import config
from vizlib.course_data import CLASSES, IMAGE_SIZE
from vizlib.wrapper import VizModel, freeze

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_MODELS = ("squeezenet1_1", "alexnet", "vgg16", "vgg19", "resnet18")
MODEL_NAMES = ("course",) + IMAGENET_MODELS
COURSE_WEIGHTS = config.shipped("course_model.pt")
DOWNLOAD_COMMAND = "make download"


class WeightsNotAvailableError(RuntimeError):
    """Pretrained weights are neither cached nor allowed to be downloaded."""


def course_net(num_classes=len(CLASSES)):
    """The course model: an AlexNet-like CNN for 64x64 images, 5 conv layers, ~0.4M parameters.

    The 7x7 first layer is large enough for its filters to be read as images.
    """

    def conv_block(index, c_in, c_out, kernel, stride=1):
        return [
            (f"conv{index}", nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)),
            (f"bn{index}", nn.BatchNorm2d(c_out)),
            (f"relu{index}", nn.ReLU()),
        ]

    features = (
        conv_block(1, 3, 32, 7, stride=2) + [("pool1", nn.MaxPool2d(2))]    # 64 -> 32 -> 16
        + conv_block(2, 32, 64, 3) + [("pool2", nn.MaxPool2d(2))]           # 16 -> 8
        + conv_block(3, 64, 128, 3) + conv_block(4, 128, 128, 3)
        + conv_block(5, 128, 128, 3) + [("pool5", nn.MaxPool2d(2))]         # 8 -> 4
    )
    classifier = [
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(128, 128)),
        ("relu", nn.ReLU()),
        ("fc2", nn.Linear(128, num_classes)),
    ]
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(OrderedDict(features)),
            classifier=nn.Sequential(OrderedDict(classifier)),
        )
    )


def course_model(weights=COURSE_WEIGHTS, *, trained=True, seed=None):
    """The course model wrapped; `trained=False` gives its random initialisation, drawn from the
    global generator, or under `seed` without touching it."""
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        net = course_net()
    model = VizModel(net, name="course", class_names=CLASSES, input_size=IMAGE_SIZE,
                     mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    if trained:
        if isinstance(weights, (str, os.PathLike)):
            weights = Path(weights)
        if not weights.is_file():    # a Path or an importlib.resources Traversable
            raise WeightsNotAvailableError(
                f"course-model weights not found at {weights}; train them with `make course-model`"
            )
        with weights.open("rb") as file:
            model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return freeze(model)


def _imagenet_weights(name):
    return torchvision.models.get_model_weights(name).DEFAULT


def cached_weights_path(name):
    """Where torchvision's weights API keeps this model's file (it may not exist yet)."""
    filename = os.path.basename(_imagenet_weights(name).url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def is_cached(name):
    return cached_weights_path(name).exists()


def _check_name(name):
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODEL_NAMES)}")


def _wrap_imagenet(net, name, weights):
    return VizModel(
        net, name=name, class_names=weights.meta["categories"], input_size=224,
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )


def imagenet_model(name, *, download=False):
    """A torchvision ImageNet model with its pretrained weights, wrapped and frozen.

    Weights come from torchvision's cache. Without `download=True`, nothing is
    fetched: a model that is not cached is an immediate error naming the
    download command, never a hang on a network that is not there.
    """
    _check_name(name)
    if name == "course":
        raise ValueError("the course model is not an ImageNet model; use course_model()")
    weights = _imagenet_weights(name)
    if not download and not is_cached(name):
        raise WeightsNotAvailableError(
            f"ImageNet weights for {name} are not cached (expected {cached_weights_path(name)}). "
            f"Download them once with `{DOWNLOAD_COMMAND}` (needs internet), "
            "or use the course model: load_model('course')."
        )
    net = torchvision.models.get_model(name, weights=weights, progress=download)
    model = _wrap_imagenet(net, name, weights)
    model.trained = not config.UNTRAINED    # the test-only run plants random stand-ins in the cache
    return freeze(model)


def random_imagenet_model(name="squeezenet1_1", seed=0):
    """An ImageNet architecture with random weights behind the same wrapper (no download).

    Tests use it to run every technique through the ImageNet code path offline.
    """
    _check_name(name)
    with torch.random.fork_rng(devices=[]):      # seeded weights; the caller's random state is kept
        torch.manual_seed(seed)
        net = torchvision.models.get_model(name, weights=None)
    return freeze(_wrap_imagenet(net, name, _imagenet_weights(name)))


def load_model(name="course", *, device=None, download=False):
    """Load a model by name ("course" or a torchvision name), frozen, on `device` (default: best)."""
    _check_name(name)
    model = course_model() if name == "course" else imagenet_model(name, download=download)
    return model.to(device or config.pick_device())


def pick_model(choice=None, *, imagenet="squeezenet1_1", device=None, verbose=True, untrained=None):
    """The model a notebook runs on, from one setting (VIZLIB_MODEL, default "auto").

    "auto" takes the ImageNet model `imagenet` when its weights are cached, else the
    course model; "course" or a model name forces that model. Prints which it chose.
    `untrained` (default: the test-only VIZLIB_UNTRAINED) says the cached ImageNet weights
    are random stand-ins: the model is marked so and `is_trained` skips the claims that
    need training. The course model's weights are always its trained ones: an error.
    """
    choice = choice or config.MODEL_CHOICE
    untrained = config.UNTRAINED if untrained is None else untrained
    if choice == "auto":
        name = imagenet if is_cached(imagenet) else "course"
        reason = "its weights are cached" if name != "course" else (
            f"{imagenet} is not cached; `{DOWNLOAD_COMMAND}` fetches it"
        )
    else:
        _check_name(choice)
        name, reason = choice, "chosen explicitly"
    if untrained and name == "course":
        raise ValueError("VIZLIB_UNTRAINED marks cached ImageNet weights as random stand-ins; the course "
                         "model ships its trained weights: unset VIZLIB_UNTRAINED or choose an ImageNet model")
    model = load_model(name, device=device)
    model.trained = not untrained
    if verbose:
        weights = "random stand-in weights (VIZLIB_UNTRAINED)" if untrained else "trained weights"
        print(f"Model: {name} ({reason}); {weights}; input {model.input_size}px, {len(model.class_names)} classes")
    return model


def is_trained(model, claim):
    """Whether `model` has trained weights, so a check cell asserts `claim`; if not, says it skips it.

        if vizlib.is_trained(model, "saliency beats the centre blob"):
            assert ratio >= 2

    Only ImageNet weights marked as stand-ins skip (the test-only VIZLIB_UNTRAINED run of every notebook on
    random weights, read by `pick_model` and `imagenet_model`); on the course model or real weights the
    claim is always asserted.
    """
    if getattr(model, "trained", True):
        return True
    print(f"Skipped on random weights: {claim} (needs trained weights; this {model.name} has random stand-ins)")
    return False
