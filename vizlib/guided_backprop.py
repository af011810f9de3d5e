"""Guided backpropagation (Springenberg et al. 2015) and the deconvnet (Zeiler & Fergus 2014).

Both are the gradient of a score with respect to the pixels, computed with a different
rule for going backwards through each ReLU. With `g` the gradient arriving from above,
`x` the ReLU's input and `t` its upper clip (none for `nn.ReLU`, 6 for `nn.ReLU6`, as in
MobileNet and EfficientNet-Lite, `t` for `nn.Hardtanh(0, t)`):

    plain gradient   g * (0 < x < t)             the chain rule
    deconvnet        g * (g > 0)                 ignores which units were on in the forward pass
    guided backprop  g * (g > 0) * (0 < x < t)   both: only positive signal through active units

A unit clipped at `t` is as flat as one below 0, so it counts as off. A Hardtanh whose
`min_val` is not 0 (the usual Hardtanh(-1, 1)) lets negative values through: it is not a
ReLU, neither paper says what its rule would be, and leaving it with its plain backward
pass would mix two rules in one map without saying so; so `modified_relus` refuses a
model that has one (ValueError naming it).

- `modified_relus(model, rule)`: a context manager; inside it, every ReLU module of the
  model (`nn.ReLU`, `nn.ReLU6`, `nn.Hardtanh(0, t)`) that runs builds a graph whose
  backward pass follows `rule`.
- `guided_backprop`, `deconvnet`: class-score maps (N, 3, H, W); `class_gradient` takes the
  rule as an argument, `channel_gradient` the same for a channel of an intermediate layer.
- `gradient_image`: a signed gradient as a picture (grey = 0), normalised per image.
- `cascading_randomisation`: the sanity check of Adebayo et al. (2018) for these rules
  (`vizlib.sanity`): re-initialise a copy of the model from the top layer down and
  measure how much each map changes (Spearman rank correlation with the trained map).

How the rule is installed. A forward-pre hook on each ReLU module keeps the module's
input `x` and hands the module `x.detach()`, so the module computes its output outside
the graph (an in-place ReLU, as in SqueezeNet, AlexNet, VGG and MobileNet, overwrites the
memory it would have overwritten anyway); the forward hook then returns
`_ModifiedReLU.apply(x, output, rule, t)`: the same values, attached to `x` in the graph
by a backward pass that follows the rule. Inputs waiting for their forward hook sit on a
stack local to the `with` block, never on the module, so one ReLU module used in several
places (as in torchvision's ResNet) gets each use right. All hooks are removed when the
block ends, even on error; no module is swapped and no flag is changed.

Hooks only see ReLUs that are modules. A ReLU applied as a function inside `forward`
(`F.relu`, `torch.relu`, `x.relu()`, as in torchvision's GoogLeNet; `F.relu6`,
`F.hardtanh`) would silently keep its plain backward pass and give a map that is neither
guided backprop nor a gradient. So while the block runs, a `TorchFunctionMode` (which sees
every torch function called from Python) watches for ReLU-like functions called outside a
ReLU module's own forward and stops with `FunctionalReLUError` naming the call and the
line that made it.
"""

import math
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from vizlib.arguments import check_classes, resolve_classes
from vizlib.counts import check_index
from vizlib.hooks import capture_activations, temporary_hooks
from vizlib.images import check_images
from vizlib.sanity import randomisation_check
from vizlib.wrapper import checks_inputs, get_layer, network

RULES = ("plain", "deconvnet", "guided")
REDUCTIONS = ("max", "mean")


class FunctionalReLUError(TypeError):
    """The model applies a ReLU as a function, where no module hook can modify it."""


class _ModifiedReLU(torch.autograd.Function):
    """min(max(x, 0), t) forwards; backwards, the deconvnet or the guided-backprop rule."""

    @staticmethod
    def forward(ctx, x, output, rule, t):
        # `output` is min(max(x, 0), t), computed by the ReLU module itself (t = inf for nn.ReLU);
        # `x` links to the graph. The output is kept, not x: an in-place ReLU has overwritten x,
        # and 0 < output < t exactly where 0 < x < t.
        ctx.rule, ctx.t = rule, t
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        # BEGIN SOLUTION
        grad_input = grad_output.clamp(min=0)       # deconvnet: pass positive signal only
        if ctx.rule == "guided":
            on = (output > 0) & (output < ctx.t)    # 0 < x < t: a unit held at its clip t is off too
            grad_input *= on                        # guided: ...and only through units that were on
        # END SOLUTION
        return grad_input, None, None, None


# ReLU-like functions that hooks on ReLU modules cannot reach when called directly.
_RELU_FUNCTIONS = {
    F.relu: "F.relu", torch.relu: "torch.relu", torch.relu_: "torch.relu_", torch.Tensor.relu: "Tensor.relu",
    torch.Tensor.relu_: "Tensor.relu_", F.relu6: "F.relu6", F.hardtanh: "F.hardtanh", F.hardtanh_: "F.hardtanh_",
    F.leaky_relu: "F.leaky_relu", F.leaky_relu_: "F.leaky_relu_", F.threshold: "F.threshold",
    F.threshold_: "F.threshold_",
}


def _caller_line():
    """'file:line (code)' of the innermost frame outside torch and this module, for error messages."""
    for frame in reversed(traceback.extract_stack()):
        if "torch" not in Path(frame.filename).parts and frame.filename != __file__:
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "an unknown line"


class _FunctionalReLUGuard(TorchFunctionMode):
    """Stops at a ReLU-like function called while no ReLU module's forward is running."""

    def __init__(self, state):
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELU_FUNCTIONS and not self.state.inside_relu_module:
            raise FunctionalReLUError(
                f"the model calls {_RELU_FUNCTIONS[func]} as a function (at {_caller_line()}), not through an nn.ReLU, "
                f"nn.ReLU6 or Hardtanh(0, t) module; the {self.state.rule!r} rule replaces the backward pass of ReLU "
                "modules only, so this map would be silently wrong. Use nn.ReLU (or nn.ReLU6) modules in the model's "
                "forward."
            )
        return func(*args, **(kwargs or {}))


@dataclass
class _RuleState:
    rule: str
    pending: list = field(default_factory=list)  # (input kept for the graph, copy given to the module)
    calls: int = 0                                 # ReLU module calls modified so far

    @property
    def inside_relu_module(self):
        return bool(self.pending)


def _clip(module):
    """t for a ReLU module clipped at t (inf for nn.ReLU), None for any other module."""
    if isinstance(module, nn.ReLU):
        return math.inf
    if isinstance(module, nn.Hardtanh) and module.min_val == 0:  # nn.ReLU6 is Hardtanh(0, 6)
        return module.max_val
    return None


def is_relu(module):
    """Whether the rules apply to `module`: nn.ReLU, nn.ReLU6 or nn.Hardtanh(0, t)."""
    return _clip(module) is not None


def _check_rule(rule):
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}, got {rule!r}")


@contextmanager
def modified_relus(model, rule="guided"):
    """Inside the block, forward passes through `model` build graphs whose ReLUs follow `rule`.

    rule: "guided", "deconvnet" or "plain" (nothing is changed). The ReLU modules are
    nn.ReLU, nn.ReLU6 and nn.Hardtanh(0, t). Yields an object whose `calls` counts the
    ReLU module calls modified. Only the forward pass must run inside the block; the
    gradient can be taken after it. A ReLU applied as a function during the block raises
    FunctionalReLUError; a model without any ReLU module, or with a Hardtanh whose
    min_val is not 0, ValueError.
    """
    _check_rule(rule)
    state = _RuleState(rule)
    if rule == "plain":
        yield state
        return
    modules = list(network(model).named_modules())
    # A Hardtanh that does not start at 0 passes negative values: no ReLU rule fits it, and
    # leaving it with its plain backward pass would mix two rules in one map without a word.
    not_relus = [f"{name or 'the model'!r} ({module})" for name, module in modules
                 if isinstance(module, nn.Hardtanh) and _clip(module) is None]
    if not_relus:
        raise ValueError(
            f"the {rule!r} rule is defined for ReLUs (nn.ReLU, nn.ReLU6, Hardtanh(0, t)), and this model has a "
            f"Hardtanh with min_val != 0, which is not a ReLU: {', '.join(not_relus)}"
        )
    relus = [module for _, module in modules if _clip(module) is not None]
    if not relus:
        raise ValueError(
            f"the {rule!r} rule modifies ReLU modules, and this model has no nn.ReLU, nn.ReLU6 or Hardtanh(0, t) "
            "module: its map would be the plain gradient (if it applies ReLU as a function, F.relu, use nn.ReLU "
            "modules instead)"
        )

    def keep_input(module, args):
        (x,) = args
        # The module computes its output from a detached alias of x, outside the graph. An
        # in-place ReLU overwrites x's storage as it would anyway (never a leaf's: that is copied).
        given = x.detach().clone() if module.inplace and x.is_leaf else x.detach()
        state.pending.append((x, given))
        return (given,)

    def replace_output(module, args, output):
        x, given = state.pending.pop()
        if args[0] is not given:
            raise RuntimeError("ReLU hooks out of step: a ReLU module's forward-pre and forward hooks did not pair up")
        state.calls += 1
        return _ModifiedReLU.apply(x, output, rule, _clip(module))

    with temporary_hooks() as handles, _FunctionalReLUGuard(state):
        for module in relus:
            handles.append(module.register_forward_pre_hook(keep_input))
            handles.append(module.register_forward_hook(replace_output))
        yield state


def _pixels(images):
    check_images(images)
    return images.detach().clone().requires_grad_(True)


@checks_inputs("images")
def class_gradient(model, images, classes=None, *, rule="guided"):
    """Gradient of the unnormalised class scores w.r.t. the images (N, 3, H, W) under `rule`.

    classes: None (each image's predicted class), one int for every image, or one index
    per image. `model` is a VizModel, or any network returning (N, classes) scores (as in
    the tests).
    """
    _check_rule(rule)
    if classes is None or hasattr(model, "class_names"):  # fail before any work
        classes = resolve_classes(model, images, classes)
    pixels = _pixels(images)
    with torch.enable_grad():
        with modified_relus(model, rule):
            scores = model(pixels)
        if not hasattr(model, "class_names"):
            classes = check_classes(scores.shape[1], classes, len(images))
        selected = scores.gather(1, classes.to(scores.device)[:, None])
        (grad,) = torch.autograd.grad(selected.sum(), pixels)
    return grad


@checks_inputs("images")
def guided_backprop(model, images, classes=None):
    """Guided backpropagation of the class scores (Springenberg et al. 2015): (N, 3, H, W).

    classes: None (each image's predicted class), one int for every image, or one per image.
    """
    return class_gradient(model, images, classes, rule="guided")


@checks_inputs("images")
def deconvnet(model, images, classes=None):
    """Deconvnet reconstruction of the class scores (Zeiler & Fergus 2014): (N, 3, H, W).

    classes: None (each image's predicted class), one int for every image, or one per image.
    """
    return class_gradient(model, images, classes, rule="deconvnet")


def _channel_objective(activation, channel, reduce, layer, clip=None):
    if activation.dim() not in (2, 4):
        raise ValueError(f"layer {layer!r} outputs shape {tuple(activation.shape)}; expected (N, C) or (N, C, H, W)")
    channel = check_index(channel, activation.shape[1], "channel", context=f" (layer {layer!r})")
    values = activation[:, channel:channel + 1].flatten(1)  # (N, H*W), or (N, 1) for a linear layer
    if reduce == "max":
        # On a clipped ReLU (ReLU6) the strongest units sit at the clip, where every rule passes nothing
        # back: the neuron is the strongest one below it.
        ranked = values.detach()
        if clip is not None:
            ranked = ranked.masked_fill(ranked >= clip, -math.inf)
        position = ranked.argmax(1, keepdim=True)
        return values.gather(1, position).squeeze(1)
    return values.mean(1)


@checks_inputs("images")
def channel_gradient(model, images, layer, channel, *, rule="guided", reduce="max"):
    """Gradient w.r.t. the images of one channel of an intermediate layer's output, under `rule`.

    The objective is the channel's activation at its strongest position in each image
    (reduce="max": one neuron, as in Zeiler & Fergus and Springenberg et al.) or its mean
    over positions (reduce="mean"). For a fully connected layer, `channel` is a unit. On a
    clipped ReLU layer (ReLU6) the neuron is the strongest below the clip: one held at the
    clip has a zero gradient under every rule.
    """
    _check_rule(rule)
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduce!r}")
    name, module = get_layer(model, layer)
    clip = _clip(module)        # inf for nn.ReLU, None for a layer that is not a ReLU
    pixels = _pixels(images)
    with torch.enable_grad():
        with modified_relus(model, rule), capture_activations(model, name, detach=False) as acts:
            model(pixels)
        objective = _channel_objective(acts[name], channel, reduce, name, clip)
        (grad,) = torch.autograd.grad(objective.sum(), pixels)
    return grad


def gradient_image(grad, *, percentile=99.0):
    """A signed gradient (N, 3, H, W) as images in [0, 1]: grey is 0, per-image scale.

    Each image is divided by the `percentile` of its absolute values (so a few extreme
    pixels do not make the rest invisible), mapped to 0.5 + 0.5 * g and clipped.
    """
    if grad.dim() != 4:
        raise ValueError(f"expected a gradient of shape (N, C, H, W), got {tuple(grad.shape)}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    flat = grad.detach().abs().flatten(1).float()
    scale = torch.quantile(flat, percentile / 100, dim=1) if flat.shape[1] else flat.new_zeros(len(flat))
    scale = torch.where(scale > 0, scale, flat.amax(1)).clamp_min(1e-30).view(-1, 1, 1, 1)
    return (0.5 + 0.5 * grad.detach().float() / scale).clamp(0, 1)


@checks_inputs("images")
def cascading_randomisation(model, images, classes=None, *, rules=("plain", "guided"), steps=None, seed=0, keep=4):
    """Adebayo et al. (2018) for the ReLU rules: `vizlib.sanity.randomisation_check` on `class_gradient`.

    Each rule's map is compared with the trained model's map of the same rule as the
    layers are randomised from the top down. A map that is all zeros (the class score
    cut off by a ReLU for every pixel, as can happen after SqueezeNet's last ReLU) has no
    correlation (NaN) and is left out of the means. Returns a RandomisationResult.
    """
    for rule in rules:
        _check_rule(rule)
    methods = {rule: partial(class_gradient, rule=rule) for rule in rules}
    return randomisation_check(model, images, methods, classes, steps=steps, seed=seed, keep=keep)
