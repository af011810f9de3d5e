"""The table of layers per model and role: every name exists, runs once per forward pass and shallow to deep
in its network, the rows that follow a rule follow it, and a missing entry is an error naming what the table has.

torchvision's architectures are built on the meta device: names and order, no weights, no download.
"""

from types import SimpleNamespace

import pytest
import torch
import torchvision
from torch import nn

from vizlib.inversion import default_layers
from vizlib.layers import FEATURE_POOLING, LAYERS, ROLES, layer_for, layers_for
from vizlib.models import MODEL_NAMES, course_net, random_imagenet_model
from vizlib.neighbours import POOLING


def network(name):
    """The bare network of a model in the table, with random weights."""
    if name == "course":
        return course_net()
    if name in torchvision.models.list_models():
        with torch.device("meta"):
            return torchvision.models.get_model(name, weights=None)
    if name not in MODEL_NAMES:
        pytest.skip(f"the table has a row for {name!r}, which vizlib.models cannot build")
    return random_imagenet_model(name).net


def input_size(name):
    return 64 if name == "course" else 224


def calls_in_one_pass(net, size):
    """{layer name: [position of each of its calls]} in one forward pass (on the net's own device); the
    positions count the calls of every layer, in the order they finish."""
    calls, count = {}, iter(range(10 ** 9))

    def recorder(name):
        def hook(module, inputs, output):
            calls.setdefault(name, []).append(next(count))     # returns None: the output is left alone
        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in net.named_modules() if name]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, size, size, device=next(net.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return calls


def test_the_table_covers_every_model_the_course_offers():
    assert set(LAYERS) == set(MODEL_NAMES) == set(FEATURE_POOLING)
    assert set(FEATURE_POOLING.values()) <= set(POOLING)
    used = {role for roles in LAYERS.values() for role in roles}
    assert used == set(ROLES)
    for name in MODEL_NAMES:       # what every notebook up to 11 needs on every model pick_model offers
        assert {"features", "patches", "gradient_ascent", "inversion", "deepdream"} <= set(LAYERS[name])


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_exists_runs_once_and_each_role_runs_shallow_to_deep(name):
    """A layer that ran twice would have two outputs to choose from (vizlib.hooks takes the first call); the
    table names only layers with one."""
    calls = calls_in_one_pass(network(name), input_size(name))
    for role in LAYERS[name]:
        layers = layers_for(name, role)
        assert all(layer in calls for layer in layers), (role, layers)     # defined, and runs
        twice = {layer: len(calls[layer]) for layer in layers if len(calls[layer]) != 1}
        assert not twice, f"{name} {role}: layers that run more than once per forward pass: {twice}"
        positions = [calls[layer][0] for layer in layers]
        assert positions == sorted(positions) and len(set(positions)) == len(positions), (role, layers)


@pytest.mark.parametrize("name", ["squeezenet1_1", "alexnet", "vgg16", "vgg19"])
def test_imagenet_inversion_and_dream_layers_are_four_relus_spread_evenly_and_their_middle(name):
    spread = default_layers(network(name), count=4)
    assert layers_for(name, "inversion") == spread
    assert layers_for(name, "deepdream") == spread[1:3]


def test_resnet18_inversion_and_dream_layers_are_relu_outputs_spread_evenly_over_its_blocks():
    """A block calls its one `relu` twice, so default_layers' "layer2.0.relu" would be two tensors: the rows name
    the block instead, whose output is its second ReLU's, spread over the stem and the 8 blocks as default_layers
    spreads 4 over the 9 ReLU modules."""
    net = network("resnet18")
    units = ["relu"] + [name for name, module in net.named_modules()
                        if isinstance(module, torchvision.models.resnet.BasicBlock)]
    outputs, relu_outputs = {}, []

    def keep(name):
        def hook(module, inputs, output):
            outputs[name] = output
        return hook

    def keep_relu(module, inputs, output):
        relu_outputs.append(output)

    handles = [net.get_submodule(unit).register_forward_hook(keep(unit)) for unit in units]
    handles += [module.register_forward_hook(keep_relu) for module in net.modules() if isinstance(module, nn.ReLU)]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, 224, 224, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    assert len(units) == 9
    assert all(any(outputs[unit] is relu for relu in relu_outputs) for unit in units)     # each one a ReLU's output
    spread = [units[round(i * (len(units) - 1) / 3)] for i in range(4)]
    assert layers_for("resnet18", "inversion") == spread == ["relu", "layer2.0", "layer3.0", "layer4.1"]
    assert layers_for("resnet18", "deepdream") == spread[1:3]


def test_lookup_by_model_or_name(course):
    assert layer_for(course, "gradient_ascent") == layer_for("course", "gradient_ascent") == "features.bn5"
    assert layers_for(course, "content") == ["features.relu2"]
    assert layers_for("vgg19", "style") == ["features.1", "features.6", "features.11", "features.20", "features.29"]
    layers = layers_for("course", "texture")
    layers.append("mine")                                          # a copy: the table stays as it is
    assert "mine" not in layers_for("course", "texture")


def test_a_missing_entry_names_what_the_table_has(course, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown role 'textures'; roles: features, patches, .*style"):
        layers_for(course, "textures")
    with pytest.raises(ValueError, match=r"no default texture layers for model 'tiny': the table has the models "
                                         r"course, .*squeezenet1_1, .*resnet18"):
        layers_for(SimpleNamespace(name="tiny"), "texture")
    monkeypatch.setitem(LAYERS, "tiny", {"features": "1", "content": "2"})
    with pytest.raises(ValueError, match=r"no default style layers for model 'tiny': it has the roles "
                                         r"features, content; name the layers yourself"):
        layers_for(SimpleNamespace(name="tiny"), "style")
    with pytest.raises(ValueError, match=r"the inversion role has 5 layers \(features.relu1, .*\): use layers_for"):
        layer_for(course, "inversion")
