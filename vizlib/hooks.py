"""Hooks that never outlive the `with` block that made them, on layers given by name.

Layers are named as in vizlib.wrapper (`get_layer`, `layer_names`, importable from
here too): the dotted names of the network's `named_modules()`, such as
"features.conv3" on the course model or "features.12" on SqueezeNet.
`forward_to` and `layer_features` run a network only as far as the layers asked for.

A module that runs more than once in one forward pass (ResNet's blocks call their `relu`
twice: after bn1, then after the residual sum) has one meaning in every function here: the
output of its *first* call in each pass. Refusing such a module instead would need a whole
forward pass to find out, which is what `forward_to` and `layer_features` exist to avoid.
For another call, name a layer that runs once: "layer1.0" is the output of ResNet's block,
its second ReLU. The layer table (vizlib.layers) names only layers that run once.
"""

from contextlib import contextmanager

import torch
from torch import nn

from vizlib.images import GREY
from vizlib.wrapper import as_viz_model, get_layer, layer_names, model_device, network


@contextmanager
def temporary_hooks():
    """Collect hook handles in a list; every one is removed when the block ends, even on error.

        with temporary_hooks() as handles:
            handles.append(module.register_forward_hook(fn))
    """
    handles = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_activations(model, layers, *, detach=True):
    """Record the outputs of `layers` during forward passes inside the block.

    Yields a dict {layer name: output of the latest forward pass}; a module that runs
    more than once in a pass gives its first call's output. Outputs are cloned, so an
    in-place ReLU that follows a layer (as in SqueezeNet) cannot overwrite what was
    stored; with detach=False they stay in the autograd graph, so an objective built
    on them can be differentiated.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    resolved = dict(get_layer(model, layer) for layer in layers)    # one hook per module, even if asked for twice
    activations = {}
    recorded = []   # per forward pass of the network under way, the layers it has recorded

    def start_pass(module, inputs):
        recorded.append(set())

    def end_pass(module, inputs, output):
        if recorded:    # empty if an earlier pre-hook raised before start_pass ran
            recorded.pop()

    def recorder(name):
        def hook(module, inputs, output):
            if recorded:    # outside a pass of the whole network (a submodule called directly) every call counts
                if name in recorded[-1]:
                    return      # a later call of a module that runs more than once: the first call counts
                recorded[-1].add(name)
            activations[name] = output.detach().clone() if detach else output.clone()

        return hook

    with temporary_hooks() as handles:
        root = network(model)
        handles.append(root.register_forward_pre_hook(start_pass))
        handles.append(root.register_forward_hook(end_pass, always_call=True))     # even when the pass raises
        for name, module in resolved.items():
            handles.append(module.register_forward_hook(recorder(name)))
        yield activations


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def forward_to(model, images, layer):
    """Run the model only as far as `layer` and return that layer's output.

    The layers after it are skipped (a hook ends the pass at the layer's first call),
    which saves their time; the output stays in the autograd graph, so it can be
    differentiated.
    """
    _, module = get_layer(model, layer)
    captured = {}

    def stop(module, inputs, output):
        captured["output"] = output
        raise _StopForward

    with temporary_hooks() as handles:
        handles.append(module.register_forward_hook(stop))
        try:
            model(images)
        except _StopForward:
            pass
    if "output" not in captured:
        raise RuntimeError(f"layer {layer!r} did not run in the forward pass")
    return captured["output"]


def layer_features(model, images, layers):
    """{layer name: feature maps} for `layers`, ending the forward pass once every one of them has run.

    The end is found by running, not by where a layer is defined: a network may define
    its modules in another order than `forward` calls them. Layers that would run after
    the last requested one never do, and the features stay in the autograd graph. A
    module that runs more than once in a pass gives its first call's output, whatever
    else is requested.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    named = [get_layer(model, layer) for layer in layers]
    resolved = dict(named)      # one hook per module, even if asked for twice
    if not resolved:
        raise ValueError("give at least one layer")

    with capture_activations(model, list(resolved), detach=False) as features, temporary_hooks() as handles:
        def stop_once_all_ran(module, inputs, output):
            if len(features) == len(resolved):
                raise _StopForward

        # registered after capture_activations' hooks, so each runs once the output is recorded
        for module in resolved.values():
            handles.append(module.register_forward_hook(stop_once_all_ran))
        try:
            model(images)
        except _StopForward:
            pass
    missing = [name for name in resolved if name not in features]
    if missing:
        raise RuntimeError(f"layer(s) {missing} did not run in the forward pass")
    return {name: features[name] for name, _ in named}


def output_shapes(model, layers=None, *, size=None):
    """{layer name: output shape} on one grey image of `size` x `size` (default: the model's input
    size), in one forward pass without gradients; every named layer when `layers` is None.

    The one way the course learns what a layer puts out before computing anything on it (which
    layers give feature maps, how many channels and positions a unit may be picked from). A layer
    whose output is not one tensor, or that did not run, is left out.
    """
    model = as_viz_model(model)   # a bare module: input size 224 (vizlib.wrapper)
    names = layer_names(model) if layers is None else [get_layer(model, layer)[0] for layer in layers]
    size = size or model.input_size
    shapes = {}

    def recorder(name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(output.shape)
        return hook

    with temporary_hooks() as handles, torch.no_grad():
        for name in names:
            handles.append(model.layer(name).register_forward_hook(recorder(name)))
        model(torch.full((1, 3, size, size), GREY, device=model_device(model)))
    return {name: shapes[name] for name in names if name in shapes}
