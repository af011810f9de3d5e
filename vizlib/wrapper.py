"""The model wrapper, layers by name, and the one entry check of every technique.

A `VizModel` takes course images (float, (N, 3, H, W), values in [0, 1]), normalises
them inside, and knows its class names, input size and layer names. Models that vizlib
loads come frozen (`freeze`): eval mode, no parameter requires grad. Techniques take
gradients with respect to the input only.

Layer names are the dotted names of the network's `named_modules()`, such as
"features.conv3" on the course model or "features.12" on SqueezeNet; for a `VizModel`
they are relative to the wrapped network (`network(model)`), without a "net." prefix.

Every public function that takes a model and images starts with the same check,
`checks_inputs`, run once per call:

- the model must be a torch module whose batch-norm and dropout layers are in eval
  mode: in training mode batch norm would use (and update) the statistics of the batch
  and dropout would make every result random, so that is a ValueError naming
  `model.eval()`, never a silent switch of mode;
- the images must pass `check_images` (float (N, 3, H, W), finite, in [0, 1]); they are
  then converted to the model's dtype (float64 from numpy, float16, ...), as the network
  needs them. Layout (channels-last, non-contiguous) and `requires_grad` are left as given.

Inside the call nothing is checked twice (`vizlib.images.values_checked`). Called
directly, `model(images)` checks its images itself; it then feeds the network the
memory format that runs fastest on the images' device, so every technique gains from it.
"""

import functools
import inspect
import itertools

import torch
from torch import nn

from vizlib.images import check_images, values_checked

# Convolutions run faster on channels-last inputs on these devices (measured on a 2-core CPU:
# SqueezeNet 1.1 forward and backward at 224 px about 1.4-1.7x, the course model at 64 px about 1.2x);
# on CUDA it is the layout cuDNN's fastest kernels use. Other devices get the layout they are given.
FAST_MEMORY_FORMAT = {"cpu": torch.channels_last, "cuda": torch.channels_last}

# Layers whose training mode changes what they compute, or what they store.
MODE_DEPENDENT_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


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


def model_dtype(model):
    """The floating-point dtype a model computes in: that of its first floating parameter or buffer."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


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
        raise TypeError(f"{name}: expected a torch.nn.Module such as vizlib.load_model(), got {type(model).__name__}")
    training = [
        layer for layer, module in network(model).named_modules()
        if isinstance(module, MODE_DEPENDENT_LAYERS) and module.training
    ]
    if training:
        raise ValueError(
            f"{name} is in training mode ({', '.join(training[:3])} ...): its batch-norm statistics "
            "would change and dropout would make scores random; call model.eval() first"
        )
    return model


def prepare_images(model, images, *, name="images"):
    """`check_images`, then the images in the model's dtype (the same tensor when it already is)."""
    return check_images(images, name=name).to(model_dtype(model))


def checks_inputs(*image_args, models=("model",)):
    """Decorator: the entry check of a public function, run once per call.

    `models` name its model arguments (`check_model`), `image_args` its image arguments,
    each checked and converted by `prepare_images` before the function runs; None (not
    given) and option strings (such as init="content") are left to the function.
    The function then runs inside `values_checked`, so neither the techniques it calls nor
    the model's forward pass read the pixels again.
    """

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            arguments = bound.arguments
            model = check_model(arguments.get(models[0]), name=models[0])
            for name in models[1:]:  # optional further models, such as style_transfer's style_model
                if arguments.get(name) is not None:
                    check_model(arguments[name], name=name)
            for name in image_args:
                if arguments.get(name) is not None and not isinstance(arguments[name], str):
                    arguments[name] = prepare_images(model, arguments[name], name=name)
            with values_checked():
                return function(*bound.args, **bound.kwargs)

        checked.checked_inputs = image_args  # says, after functools.wraps too, which arguments are checked
        return checked

    return decorate
