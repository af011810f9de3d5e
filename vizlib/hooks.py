"""Hooks that never outlive the `with` block that made them, on layers given by name.

Layers are named as in vizlib.wrapper (`get_layer`, `layer_names`, importable from
here too): the dotted names of the network's `named_modules()`, such as
"features.conv3" on the course model or "features.12" on SqueezeNet.
`forward_to` and `layer_features` run a network only as far as the layers asked for.
"""

from contextlib import contextmanager

from torch import nn

from vizlib.wrapper import get_layer, layer_names


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

    Yields a dict {layer name: output of the latest forward pass}. Outputs are
    cloned, so an in-place ReLU that follows a layer (as in SqueezeNet) cannot
    overwrite what was stored; with detach=False they stay in the autograd graph,
    so an objective built on them can be differentiated.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    resolved = [get_layer(model, layer) for layer in layers]
    activations = {}

    def recorder(name):
        def hook(module, inputs, output):
            activations[name] = output.detach().clone() if detach else output.clone()

        return hook

    with temporary_hooks() as handles:
        for name, module in resolved:
            handles.append(module.register_forward_hook(recorder(name)))
        yield activations


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def forward_to(model, images, layer):
    """Run the model only as far as `layer` and return that layer's output.

    The layers after it are skipped (a hook ends the pass), which saves their
    time; the output stays in the autograd graph, so it can be differentiated.
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
    """{layer name: feature maps} for `layers`, running the network only as far as the deepest one.

    Layers after the deepest requested one never run (a hook ends the forward
    pass), and the features stay in the autograd graph.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    names = [get_layer(model, layer)[0] for layer in layers]
    if not names:
        raise ValueError("give at least one layer")
    order = {name: i for i, name in enumerate(layer_names(model))}
    deepest = max(names, key=order.__getitem__)
    with capture_activations(model, names, detach=False) as features:
        forward_to(model, images, deepest)
    return {name: features[name] for name in names}
