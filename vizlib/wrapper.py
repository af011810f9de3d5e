"""The model wrapper, layers by name, and the one entry check of every technique.

A `VizModel` takes course images (float, (N, 3, H, W), values in [0, 1]), normalises
them inside, and knows its class names, input size and layer names. Models that vizlib
loads come frozen (`freeze`): eval mode, no parameter requires grad. Techniques take
gradients with respect to the input only.

Layer names are the dotted names of the network's `named_modules()`, such as
"features.conv3" on the course model or "features.12" on SqueezeNet; for a `VizModel`
they are relative to the wrapped network (`network(model)`), without a "net." prefix.

A user's own network comes in through `wrap(net)`: ImageNet's normalisation, class
names and input size by default, every default stated in its docstring, the network
checked once on a zero image. It puts the network in eval mode and turns off its
parameters' gradients in place, as vizlib's own loaders do (the wrapper shares the
network, it does not copy it).

A bare module (a network not wrapped) gets one rule everywhere: it is taken *as given*.
Every function that takes a model and needs more than its layers (every technique,
through `checks_inputs`) sees it through `as_viz_model`, which puts the module behind
the wrapper's interface with these stated defaults: the pixels reach it as they
are, unnormalised (mean 0, std 1) and in their own layout; its class names are "class 0",
"class 1", ..., counted from its output on one zero image (none when that output is not
(N, classes) scores: a feature network, as style transfer takes); its input size is 224;
its name is its class name in lowercase (vizlib.layers has no entry for it: name the
layers). The module itself is left exactly as it is: not frozen, not copied, its modes
and flags untouched (a module in training mode is refused, as every model is). What it
cannot answer is a clear error, never an AttributeError. A technique cannot know how a
network was trained, so it guesses no normalisation: a network trained on normalised
pixels, as every torchvision classifier is, needs `wrap` (whose defaults are ImageNet's).
This is what the functions that took bare networks before did (`predict` and guided
backprop on "any module returning (N, classes) scores", occlusion), now the same in all.

Every public function that takes a model and images starts with the same check,
`checks_inputs`, run once per call:

- the model must be a torch module whose batch-norm and dropout layers are in eval
  mode: in training mode batch norm would use (and update) the statistics of the batch
  and dropout would make every result random, so that is a ValueError naming
  `model.eval()`, never a silent switch of mode;
- the images must pass `check_images` (float (N, 3, H, W), finite, in [0, 1]); they are
  then converted to the model's dtype (float64 from numpy, float16, ...), as the network
  needs them. Layout (channels-last, non-contiguous) and `requires_grad` are left as given;
- a bare module is then put behind the wrapper's interface (`as_viz_model`, above), its
  classes counted on a zero image of the size of the call's images.

Inside the call nothing is checked twice (`vizlib.images.values_checked`). Called
directly, `model(images)` checks its images itself; it then feeds the network the
memory format that runs fastest on the images' device, so every technique gains from it.
"""

import functools
import inspect
import itertools
import math
from contextvars import ContextVar

import torch
from torch import nn

from vizlib.counts import check_positive_int
from vizlib.images import check_images, values_checked

# torchvision's normalisation of ImageNet images, which its classifiers were trained on (vizlib.models
# wraps its ImageNet networks with the same): `wrap`'s defaults, with the input size those networks take.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 224

# Convolutions run faster on channels-last inputs on these devices (measured on a 2-core CPU:
# SqueezeNet 1.1 forward and backward at 224 px about 1.4-1.7x, the course model at 64 px about 1.2x);
# on CUDA it is the layout cuDNN's fastest kernels use. Other devices get the layout they are given.
FAST_MEMORY_FORMAT = {"cpu": torch.channels_last, "cuda": torch.channels_last}

def _depends_on_mode(module):
    """Whether training mode changes what `module` computes or stores: dropout, and a batch or instance norm
    that keeps running statistics (in training mode it updates them; without them, both modes compute alike)."""
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return True
    return isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats


class _FastLayout(torch.autograd.Function):
    """Images in `dtype` and in the memory format fastest on their device. Their gradient comes
    back in their own dtype, and contiguous when they were, so a technique's maps are laid out
    as they would be without the fast format."""

    @staticmethod
    def forward(ctx, images, dtype):
        ctx.dtype, ctx.contiguous = images.dtype, images.is_contiguous()
        memory_format = FAST_MEMORY_FORMAT.get(images.device.type, torch.preserve_format)
        return images.to(dtype, memory_format=memory_format, copy=True)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.to(ctx.dtype)
        return (grad.contiguous() if ctx.contiguous else grad), None


class VizModel(nn.Module):
    """A network behind the course's conventions; normalisation lives in `forward`."""

    def __init__(self, net, *, name, class_names, input_size, mean, std):
        super().__init__()
        self.net = net
        self.name = name
        self.class_names = tuple(class_names)
        self.input_size = input_size
        self.trained = True     # False: random stand-in weights (config.UNTRAINED); see models.is_trained
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images):
        check_images(images)
        pixels = _FastLayout.apply(images, self.dtype)
        try:
            return self.net((pixels - self.mean) / self.std)
        except RuntimeError as error:  # most often a network that cannot take this size: say so
            height, width = images.shape[-2:]
            # A size the network cannot take is a plain RuntimeError; a subclass (out of memory, a
            # layer's own error) already names another cause and must reach the caller as it is.
            if type(error) is not RuntimeError:
                raise
            if self.input_size is None or (height, width) == (self.input_size, self.input_size):
                raise
            raise ValueError(
                f"the model cannot run on images of size {height}x{width} (its input size is "
                f"{self.input_size}x{self.input_size}; resize with vizlib.images.resize): {error}"
            ) from error

    @property
    def device(self):
        return self.mean.device

    @property
    def dtype(self):
        return model_dtype(self)

    @property
    def layer_names(self):
        return layer_names(self)

    def layer(self, layer):
        """The submodule with this dotted name (see `layer_names`)."""
        return get_layer(self, layer)[1]

    def extra_repr(self):
        return f"name={self.name!r}, classes={len(self.class_names)}, input_size={self.input_size}"


def freeze(model):
    """Eval mode and no parameter gradients: how every model vizlib loads is handed out."""
    model.eval()
    model.requires_grad_(False)
    return model


def network(model):
    """The network inside a VizModel; any other module is its own network."""
    return model.net if isinstance(model, VizModel) else model


def model_device(model):
    """The device a model computes on: that of its first parameter or buffer (the CPU if it has none)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def model_dtype(model):
    """The floating-point dtype a model computes in: that of its first floating parameter or buffer."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


# --- a user's own network, and the rule for bare modules ---------------------------------------


def wrap(net, *, class_names=None, input_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD, name=None):
    """Any image classifier behind the course's conventions: a frozen VizModel every technique takes.

    net: a torch module taking normalised images (N, 3, H, W) and returning class scores
        (N, classes), a float tensor (logits, or any scores whose largest is the prediction).
    class_names: one name per class; None: "class 0", "class 1", ...
    input_size: the side, in pixels, of the square images the network is made for: where
        techniques draw images from nothing (gradient ascent, feature visualisation) and what
        errors about image sizes name. None: 224, the size of torchvision's ImageNet classifiers.
        The network still runs on any size it can take.
    mean, std: the per-channel (RGB) statistics the network's training images were normalised
        with; the wrapper computes (images - mean) / std, so techniques work on pixels in [0, 1].
        Default: ImageNet's (0.485, 0.456, 0.406) and (0.229, 0.224, 0.225), torchvision's.
        A network that takes pixels in [0, 1] as they are: mean=(0, 0, 0), std=(1, 1, 1).
    name: how the model is called, and its row in vizlib.layers's table of default layers
        (name="resnet18" for torchvision's ResNet-18 gives every technique its layers).
        None: the network's class name in lowercase ("resnet" for a ResNet).

    The network runs once on a zero image of `input_size`, in eval mode and without gradients:
    that counts its classes and checks its output is (N, classes) scores. Then it is frozen in
    place, as every model vizlib loads is: `net.eval()` and `net.requires_grad_(False)` (the
    wrapper shares the network, it does not copy it; to train it again, call `net.train()` and
    `net.requires_grad_(True)`). When wrapping fails, the network is left as it was.
    A VizModel comes back unchanged when no option is given, and is an error with options.

    Errors: a net that is not a torch module is a TypeError; a mean or std without 3 values, a
    std that is not positive, class names that do not match the output, or an output that is
    not a float (N, classes) tensor are ValueErrors saying what was given.
    """
    options = dict(class_names=class_names, input_size=input_size, name=name)
    if isinstance(net, VizModel):
        given = [option for option, value in options.items() if value is not None]
        given += [option for option, value, default in (("mean", mean, IMAGENET_MEAN), ("std", std, IMAGENET_STD))
                  if value is not default]
        if given:
            raise ValueError(f"vizlib.wrap: the model is already wrapped (VizModel {net.name!r}), so "
                             f"{', '.join(given)} cannot be set again; wrap its network instead: "
                             "vizlib.wrap(model.net, ...)")
        return net
    if not isinstance(net, nn.Module):
        raise TypeError(f"vizlib.wrap: net must be a torch.nn.Module (an image classifier), got "
                        f"{type(net).__name__}: {_short_repr(net)}")
    mean, std = _channel_values(mean, "mean"), _channel_values(std, "std")
    if min(std) <= 0:
        raise ValueError(f"vizlib.wrap: std must be positive in every channel (images are divided by it), got {std}")
    size = DEFAULT_INPUT_SIZE if input_size is None else check_positive_int(input_size, "vizlib.wrap: input_size")
    if name is None:
        name = type(net).__name__.lower()
    elif not isinstance(name, str):
        raise TypeError(f"vizlib.wrap: name must be a str, got {type(name).__name__}: {_short_repr(name)}")
    elif not name:
        raise ValueError("vizlib.wrap: name must not be empty")
    if class_names is not None:
        class_names = _names(class_names)
    model = _on_device_of(VizModel(net, name=name, class_names=(), input_size=size, mean=mean, std=std))
    modes = [(module, module.training) for module in net.modules()]
    try:
        net.eval()   # before it runs: batch norm in training mode would update its statistics on the probe
        try:
            scores = _probe(model, (size, size))
        except RuntimeError as error:
            if type(error) is not RuntimeError:  # out of memory, a layer's own error: another cause, as it is
                raise
            given = "input_size" if input_size is not None else "the default input_size"
            raise ValueError(f"vizlib.wrap: the network cannot run on a {size}x{size} image ({given}); pass "
                             f"the input_size it takes: {error}") from error
        count = _class_count(scores)
        if count is None:
            hint = _FEATURE_HINT if isinstance(scores, torch.Tensor) and scores.dim() > 2 else ""
            raise ValueError(f"vizlib.wrap: the network must return class scores, a float tensor (N, classes); "
                             f"for one {size}x{size} zero image it returned {_describe(scores)}{hint}")
        if class_names is not None and len(class_names) != count:
            raise ValueError(f"vizlib.wrap: {len(class_names)} class names given, but the network scores "
                             f"{count} classes")
    except BaseException:
        for module, training in modes:   # a failed wrap leaves the network as it was
            module.train(training)
        raise
    model.class_names = class_names if class_names is not None else tuple(f"class {i}" for i in range(count))
    return freeze(model)


_FEATURE_HINT = " (feature maps: wrap the whole classifier, or add a head that pools them into class scores)"


class _AsGiven(VizModel):
    """A bare module behind the wrapper's interface, for one call (`as_viz_model`): the pixels reach it
    as they are, and the module keeps its own modes and flags."""

    def __init__(self, net, *, probe_size=None):
        super().__init__(net, name=type(net).__name__.lower(), class_names=(), input_size=DEFAULT_INPUT_SIZE,
                         mean=(0.0,) * 3, std=(1.0,) * 3)
        self.training = net.training          # its own flag only: the module's modes stay as they are
        self._probe_size = probe_size or (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
        self._class_names = None
        _on_device_of(self)

    def forward(self, images):
        check_images(images)
        return self.net(images.to(self.dtype))

    @property
    def class_names(self):
        """"class 0", "class 1", ... counted on a zero image the first time they are asked for; () for a
        module whose output is a tensor but not (N, classes) scores (a feature network)."""
        if self._class_names is None:
            scores = _probe(self, self._probe_size)
            if not isinstance(scores, torch.Tensor):
                raise ValueError(f"model: a bare {type(self.net).__name__} must return a tensor, class scores "
                                 f"(N, classes) or feature maps; for one zero image it returned {_describe(scores)}")
            count = _class_count(scores)
            self._class_names = () if count is None else tuple(f"class {i}" for i in range(count))
        return self._class_names

    @class_names.setter
    def class_names(self, names):
        self._class_names = tuple(names) if names else None


def as_viz_model(model, *, size=None):
    """`model` itself when it is a VizModel; a bare module behind the wrapper's interface, taken as given.

    The rule for bare modules (module docstring): pixels unnormalised (mean 0, std 1), class names
    "class 0", ... counted on one zero image of `size` (H, W) (default 224x224) when first needed,
    input size 224, name the class name in lowercase; the module is not changed. A non-module is the
    TypeError of `check_model`.
    """
    if isinstance(model, VizModel):
        return model
    check_model(model)
    return _AsGiven(model, probe_size=None if size is None else tuple(size))


def _probe(model, size):
    """The network's output for one zero image of `size` (H, W), in the model's dtype, without gradients."""
    zeros = torch.zeros(1, 3, *size, dtype=model.dtype, device=model.device)
    with torch.no_grad():
        return model.net((zeros - model.mean) / model.std)


def _class_count(scores):
    """The number of classes in a float (1, classes) tensor; None for any other output."""
    if (not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != 1 or scores.shape[1] == 0
            or not scores.is_floating_point()):
        return None
    return scores.shape[1]


def _describe(output):
    if isinstance(output, torch.Tensor):
        return f"a {output.dtype} tensor of shape {tuple(output.shape)}"
    return f"a {type(output).__name__}, not a tensor"


def _short_repr(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _on_device_of(model):
    """The wrapper's mean and std moved to the network's device and floating dtype (the network is not moved)."""
    device, dtype = model_device(model.net), model_dtype(model.net)
    model.mean, model.std = model.mean.to(device, dtype), model.std.to(device, dtype)
    return model


def _channel_values(values, name):
    """Three finite floats, one per RGB channel, from a sequence, array or tensor."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"vizlib.wrap: {name} must be 3 numbers, one per RGB channel, got {values!r}")
    try:
        flat = torch.as_tensor(values, dtype=torch.float64).flatten().tolist()
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"vizlib.wrap: {name} must be 3 numbers, one per RGB channel, got {values!r}") from error
    if len(flat) != 3:
        raise ValueError(f"vizlib.wrap: {name} must have 3 values, one per RGB channel, got {len(flat)}: {values!r}")
    if not all(math.isfinite(value) for value in flat):
        raise ValueError(f"vizlib.wrap: {name} must be finite, got {values!r}")
    return tuple(flat)


def _names(class_names):
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, (list, tuple)):
        raise TypeError(f"vizlib.wrap: class_names must be a list or tuple of str, one per class, got "
                        f"{type(class_names).__name__}: {_short_repr(class_names)}")
    wrong = [name for name in class_names if not isinstance(name, str)]
    if wrong:
        raise TypeError(f"vizlib.wrap: class_names must be str, got {_short_repr(wrong)}")
    return tuple(class_names)


# --- layers by name ---------------------------------------------------------------------------


def layer_names(model):
    """Every named submodule of the model, in definition order."""
    return [name for name, _ in network(model).named_modules() if name]


def get_layer(model, layer):
    """Resolve a layer given by dotted name or as a module object: returns (name, module)."""
    named = dict(network(model).named_modules())
    named.pop("", None)
    if isinstance(layer, nn.Module):
        for name, module in named.items():
            if module is layer:
                return name, module
        raise ValueError(f"{type(layer).__name__} module is not part of this model")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a name (str) or a module, got {type(layer).__name__}")
    if layer not in named:
        raise ValueError(f"unknown layer {layer!r}; valid layer names: {', '.join(named)}")
    return layer, named[layer]


# --- the entry check --------------------------------------------------------------------------


def check_model(model, *, name="model"):
    """Refuse a model no technique can run on: not a torch module, or batch norm or dropout in training mode."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}: expected a torch.nn.Module such as vizlib.load_model() or vizlib.wrap(net), "
                        f"got {type(model).__name__}")
    training = [
        layer for layer, module in network(model).named_modules()
        if _depends_on_mode(module) and module.training
    ]
    if training:
        wrapping = "" if isinstance(model, VizModel) else " (or wrap it: vizlib.wrap(net) freezes it)"
        raise ValueError(
            f"{name} is in training mode ({', '.join(training[:3])} ...): its normalisation statistics "
            f"would change and dropout would make scores random; call model.eval() first{wrapping}"
        )
    return model


def prepare_images(model, images, *, name="images"):
    """`check_images`, then the images in the model's dtype (the same tensor when it already is)."""
    return check_images(images, name=name).to(model_dtype(model))


_CHECKED_CALL = ContextVar("inside a checked vizlib call", default=False)


def checks_inputs(*image_args, models=("model",)):
    """Decorator: the entry check of a public function, run once per call.

    `models` name its model arguments (`check_model`), `image_args` its image arguments,
    each checked and converted by `prepare_images` before the function runs; None (not
    given) and option strings (such as init="content") are left to the function. A bare
    module is then put behind the wrapper's interface (`as_viz_model`), its classes counted
    before the function runs (so that the count's one pass meets no hook of the function's)
    on a zero image of the size of the first image argument.
    The function then runs inside `values_checked`, so neither the techniques it calls nor
    the model's forward pass read the pixels again, and a public technique it calls in turn
    (smoothgrad's saliency per chunk, deepdream's step) runs unchecked: its inputs were derived
    from inputs already checked, so binding and model walk happen once per outermost call.
    """

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def checked(*args, **kwargs):
            if _CHECKED_CALL.get():
                return function(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            arguments = bound.arguments
            model = check_model(arguments.get(models[0]), name=models[0])
            for name in models[1:]:  # optional further models, such as style_transfer's style_model
                if arguments.get(name) is not None:
                    check_model(arguments[name], name=name)
            size = None
            for name in image_args:
                if arguments.get(name) is not None and not isinstance(arguments[name], str):
                    arguments[name] = prepare_images(model, arguments[name], name=name)
                    size = size or tuple(arguments[name].shape[-2:])
            for name in models:
                if arguments.get(name) is not None and not isinstance(arguments[name], VizModel):
                    arguments[name] = as_viz_model(arguments[name], size=size)
                    arguments[name].class_names  # noqa: B018 -- counted now, before the function's hooks
            token = _CHECKED_CALL.set(True)
            try:
                with values_checked():
                    return function(*bound.args, **bound.kwargs)
            finally:
                _CHECKED_CALL.reset(token)

        checked.checked_inputs = image_args  # says, after functools.wraps too, which arguments are checked
        return checked

    return decorate
