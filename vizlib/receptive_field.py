"""Receptive fields: which input pixels a unit of a layer can see (notebook 04).

`receptive_field(model, layer)` computes it from the geometry (kernel, stride, padding,
dilation) of the layers on the way from the input, as a `ReceptiveField` (size, stride,
start) per axis. Sliding-window layers grow it, element-wise layers leave it alone, and
where paths split and meet again (SqueezeNet's Fire, ResNet's blocks) it is the union
over the paths. `vizlib.patches` cuts these fields out of images; any technique that
maps a unit back to pixels can use them.
"""

from dataclasses import dataclass

from torch import nn

from vizlib.efficientnet_lite import InvertedResidual, SamePadConv2d
from vizlib.wrapper import get_layer, network

__all__ = ["ReceptiveField", "receptive_field"]


@dataclass(frozen=True)
class ReceptiveField:
    """Where the units of a layer look in the input image, per axis (rows, columns).

    Unit (row, col) of the layer's output sees the input pixels
    rows `start[0] + row * stride[0]` ... `+ size[0] - 1`, and the same for columns.
    `start` is negative when padding lets the field reach past the image's edge.
    """

    size: tuple   # (height, width) of the field, in input pixels
    stride: tuple  # input pixels between the fields of neighbouring units
    start: tuple   # top-left input pixel of unit (0, 0)'s field

    def box(self, row, col):
        """(top, left, bottom, right) of unit (row, col)'s field; bottom and right are exclusive."""
        top = self.start[0] + row * self.stride[0]
        left = self.start[1] + col * self.stride[1]
        return top, left, top + self.size[0], left + self.size[1]

    def clipped_box(self, row, col, image_size):
        """The part of the field inside an image of `image_size` (H, W), as (top, left, bottom, right)."""
        top, left, bottom, right = self.box(row, col)
        height, width = image_size
        return max(top, 0), max(left, 0), min(bottom, height), min(right, width)


_IDENTITY = ReceptiveField((1, 1), (1, 1), (0, 0))

# Layers that work on each position separately: they do not change where a unit looks.
_POINTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.Identity, nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.LocalResponseNorm,
)
# Layers after which every unit sees the whole image (or no longer has a position).
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _sliding_window(module):
    """(kernel, stride, padding, dilation) per axis of a layer that slides a window, else None."""
    if isinstance(module, nn.Conv2d):
        kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
        if isinstance(module, SamePadConv2d):   # TensorFlow's "SAME": (k - s) // 2 before, on sizes s divides
            padding = tuple((k - s) // 2 for k, s in zip(kernel, _pair(module.stride)))
        elif module.padding == "valid":
            padding = (0, 0)
        elif module.padding == "same":  # PyTorch pads d * (k - 1) // 2 before, the rest after
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        else:
            padding = _pair(module.padding)
        return kernel, _pair(module.stride), padding, dilation
    if isinstance(module, nn.MaxPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        return _pair(module.kernel_size), _pair(stride), _pair(module.padding), _pair(module.dilation)
    if isinstance(module, nn.AvgPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        return _pair(module.kernel_size), _pair(stride), _pair(module.padding), (1, 1)
    return None


def _through_window(field, kernel, stride, padding, dilation):
    """The field of the units after a sliding-window layer, given the field of its input units."""
    sizes, strides, starts = [], [], []
    for axis in range(2):
        size, jump, start = field.size[axis], field.stride[axis], field.start[axis]
        k, s, p, d = kernel[axis], stride[axis], padding[axis], dilation[axis]
        # BEGIN SOLUTION
        # Output unit j reads input units j*s - p ... j*s - p + d*(k - 1); each of those sees
        # `size` pixels starting at start + (its index) * jump.
        starts.append(start - p * jump)
        sizes.append(size + d * (k - 1) * jump)
        strides.append(jump * s)
        # END SOLUTION
    return ReceptiveField(tuple(sizes), tuple(strides), tuple(starts))


def _union(fields, where):
    """Bounding box of the fields of parallel paths that meet again (concatenation or sum)."""
    strides = {field.stride for field in fields}
    if len(strides) != 1:
        raise ValueError(f"the paths through {where} have different strides {sorted(strides)}; "
                         "their receptive fields do not line up")
    starts = [min(field.start[axis] for field in fields) for axis in range(2)]
    ends = [max(field.start[axis] + field.size[axis] for field in fields) for axis in range(2)]
    return ReceptiveField(tuple(e - s for s, e in zip(starts, ends)), fields[0].stride, tuple(starts))


def _branching_blocks():
    """Known blocks with parallel paths: (trunk, branches, after), each a list of child names.

    A name that is None-valued in the module (a missing `downsample`) is the identity.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck
    from torchvision.models.squeezenet import Fire

    return {
        Fire: (["squeeze", "squeeze_activation"],
               [["expand1x1", "expand1x1_activation"], ["expand3x3", "expand3x3_activation"]], []),
        BasicBlock: ([], [["conv1", "bn1", "relu", "conv2", "bn2"], ["downsample"]], ["relu"]),
        Bottleneck: ([], [["conv1", "bn1", "relu", "conv2", "bn2", "relu", "conv3", "bn3"], ["downsample"]],
                     ["relu"]),
    }


def _paths(module):
    """(trunk, branches, after) of a block with parallel paths, else None."""
    if isinstance(module, InvertedResidual):   # EfficientNet-Lite's MBConv: its steps, plus the input if added
        steps = list(InvertedResidual.STEPS)
        return ([], [steps, []], []) if module.residual else (steps, [[]], [])
    return _branching_blocks().get(type(module))


def _chain_types():
    """Containers whose children run one after another in the order they were defined."""
    from torchvision.models import VGG, AlexNet, ResNet, SqueezeNet

    return (nn.Sequential, AlexNet, VGG, SqueezeNet, ResNet)


_KNOWN = ("Conv2d, MaxPool2d, AvgPool2d, element-wise layers (ReLU, BatchNorm2d, Dropout, ...), "
          "nn.Sequential chains and the branching blocks Fire (SqueezeNet), BasicBlock and Bottleneck (ResNet) "
          "and InvertedResidual (EfficientNet-Lite)")


def _through(field, module, name):
    """The field after running all of `module`, given the field of its input."""
    if module is None or isinstance(module, _POINTWISE):
        return field
    window = _sliding_window(module)
    if window is not None:
        return _through_window(field, *window)
    if isinstance(module, _GLOBAL):
        raise ValueError(f"after {name!r} ({type(module).__name__}) a unit sees the whole image, or has no "
                         "position at all: choose a convolutional layer before it")
    paths = _paths(module)
    if paths is not None:
        trunk, branches, after = paths
        field = _through_names(field, module, trunk, name)
        field = _union([_through_names(field, module, branch, name) for branch in branches], name)
        return _through_names(field, module, after, name)
    if isinstance(module, _chain_types()):
        for child_name, child in module.named_children():
            field = _through(field, child, f"{name}.{child_name}" if name else child_name)
        return field
    raise ValueError(f"the receptive field through {name!r} ({type(module).__name__}) is unknown: "
                     f"vizlib knows {_KNOWN}")


def _through_names(field, module, names, name):
    for child_name in names:
        field = _through(field, getattr(module, child_name), f"{name}.{child_name}")
    return field


def _to_target(field, module, name, parts, target):
    """The field of the output of the descendant `parts` of `module`, given the field of its input."""
    if not parts:
        return _through(field, module, name)
    paths = _paths(module)
    child_name, rest = parts[0], parts[1:]
    if paths is not None:
        trunk, branches, after = paths
        occurrences = sum(part.count(child_name) for part in [trunk, after] + branches)
        if occurrences == 0:
            raise ValueError(f"cannot place {target!r} inside {type(module).__name__}")
        if occurrences > 1:
            raise ValueError(f"{target!r} runs more than once in each forward pass of {name!r}, so its units "
                             f"have no single receptive field: choose {name!r} itself or a conv or batch-norm "
                             "layer inside it")
        if child_name in trunk:
            before = trunk[:trunk.index(child_name)]
        elif child_name in after:
            field = _union([_through_names(_through_names(field, module, trunk, name), module, branch, name)
                            for branch in branches], name)
            before = after[:after.index(child_name)]
        else:
            branch = next(branch for branch in branches if child_name in branch)
            before = trunk + branch[:branch.index(child_name)]
        field = _through_names(field, module, before, name)
        return _to_target(field, getattr(module, child_name), f"{name}.{child_name}", rest, target)
    if isinstance(module, _chain_types()):
        for current_name, child in module.named_children():
            full = f"{name}.{current_name}" if name else current_name
            if current_name == child_name:
                return _to_target(field, child, full, rest, target)
            field = _through(field, child, full)
    raise ValueError(f"the receptive field of {target!r} inside {name or 'the model'!r} "
                     f"({type(module).__name__}) is unknown: vizlib knows {_KNOWN}")


def receptive_field(model, layer):
    """The receptive field of the units of `layer` (a dotted name or a module of `model`).

    Computed from the geometry of every layer between the input and `layer`: each
    convolution or pooling of kernel k, stride s, padding p and dilation d grows the
    field by d*(k-1) times the current stride, multiplies the stride by s and moves the
    start back by p times the current stride. Where paths split and meet again (a
    SqueezeNet Fire module, a ResNet block) the field is the bounding box of the union
    over the paths (in a Fire module, the channels of the 1x1 path see less: their field lies
    inside). Padding is taken to be zeros. A layer of unknown geometry is an error naming
    what is known.
    """
    name, _ = get_layer(model, layer)
    return _to_target(_IDENTITY, network(model), "", name.split("."), name)
