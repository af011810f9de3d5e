"""The table of layers per model and role: every name exists and runs shallow to deep in its network, the
rows that follow a rule follow it, and a missing entry is an error naming what the table has.

The ImageNet architectures are built on the meta device: names and order, no weights, no download.
"""

from types import SimpleNamespace

import pytest
import torch
import torchvision

from vizlib.inversion import default_layers
from vizlib.layers import FEATURE_POOLING, LAYERS, ROLES, layer_for, layers_for
from vizlib.models import IMAGENET_MODELS, MODEL_NAMES, course_net
from vizlib.neighbours import POOLING


def network(name):
    if name == "course":
        return course_net()
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None)


def first_call_order(net, size):
    """{layer name: position of its first call} in one forward pass (on the net's own device)."""
    order = {}

    def recorder(name):
        def hook(module, inputs, output):
            order.setdefault(name, len(order))     # returns None: the output is left alone
        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in net.named_modules() if name]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, size, size, device=next(net.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return order


def test_the_table_covers_every_model_the_course_offers():
    assert set(LAYERS) == set(MODEL_NAMES) == set(FEATURE_POOLING)
    assert set(FEATURE_POOLING.values()) <= set(POOLING)
    used = {role for roles in LAYERS.values() for role in roles}
    assert used == set(ROLES)
    for name in MODEL_NAMES:       # what every notebook up to 11 needs on every model pick_model offers
        assert {"features", "patches", "gradient_ascent", "inversion", "deepdream"} <= set(LAYERS[name])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_layer_exists_and_each_role_runs_shallow_to_deep(name):
    net = network(name)
    order = first_call_order(net, 64 if name == "course" else 224)
    for role in LAYERS[name]:
        layers = layers_for(name, role)
        assert all(layer in order for layer in layers), (role, layers)     # defined, and runs
        positions = [order[layer] for layer in layers]
        assert positions == sorted(positions) and len(set(positions)) == len(positions), (role, layers)


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_imagenet_inversion_and_dream_layers_are_four_relus_spread_evenly_and_their_middle(name):
    spread = default_layers(SimpleNamespace(net=network(name)), count=4)
    assert layers_for(name, "inversion") == spread
    assert layers_for(name, "deepdream") == spread[1:3]


def test_lookup_by_model_or_name(course):
    assert layer_for(course, "gradient_ascent") == layer_for("course", "gradient_ascent") == "features.bn5"
    assert layers_for(course, "content") == ["features.relu2"]
    assert layers_for("vgg19", "style") == ["features.1", "features.6", "features.11", "features.20", "features.29"]
    layers = layers_for("course", "texture")
    layers.append("mine")                                          # a copy: the table stays as it is
    assert "mine" not in layers_for("course", "texture")


def test_a_missing_entry_names_what_the_table_has(course):
    with pytest.raises(ValueError, match=r"unknown role 'textures'; roles: features, patches, .*style"):
        layers_for(course, "textures")
    with pytest.raises(ValueError, match=r"no default texture layers for model 'tiny': the table has the models "
                                         r"course, squeezenet1_1, .*resnet18"):
        layers_for(SimpleNamespace(name="tiny"), "texture")
    with pytest.raises(ValueError, match=r"no default style layers for model 'course': it has the roles "
                                         r"features, patches, .*content"):
        layers_for(course, "style")
    with pytest.raises(ValueError, match=r"the inversion role has 5 layers \(features.relu1, .*\): use layers_for"):
        layer_for(course, "inversion")
