"""The model wrapper and layers by name, below every module that runs a model.

A `VizModel` takes course images (float, (N, 3, H, W), values in [0, 1]), normalises
them inside, and knows its class names, input size and layer names. Models that vizlib
loads come frozen (`freeze`): eval mode, no parameter requires grad. Techniques take
gradients with respect to the input only.

Layer names are the dotted names of the network's `named_modules()`, such as
"features.conv3" on the course model or "features.12" on SqueezeNet; for a `VizModel`
they are relative to the wrapped network (`network(model)`), without a "net." prefix.
"""

import torch
from torch import nn

from vizlib.images import check_images


class VizModel(nn.Module):
    """A network behind the course's conventions; normalisation lives in `forward`."""

    def __init__(self, net, *, name, class_names, input_size, mean, std):
        super().__init__()
        self.net = net
        self.name = name
        self.class_names = tuple(class_names)
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images):
        check_images(images)
        try:
            return self.net((images - self.mean) / self.std)
        except RuntimeError as error:  # most often a network that cannot take this size: say so
            height, width = images.shape[-2:]
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
