import pytest
import torch
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.hooks import capture_activations, output_shapes, temporary_hooks
from vizlib.models import random_imagenet_model
from vizlib.wrapper import get_layer, layer_names


def test_layers_by_name_or_module(course):
    name, module = get_layer(course, "features.conv3")
    assert isinstance(module, nn.Conv2d) and module.in_channels == 64
    assert get_layer(course, module) == ("features.conv3", module)
    assert layer_names(course)[0] == "features"  # relative to the wrapped network


def test_unknown_layer_lists_the_valid_names(course):
    with pytest.raises(ValueError, match=r"unknown layer 'conv9'.*features\.conv1.*classifier\.fc2"):
        get_layer(course, "conv9")
    with pytest.raises(ValueError, match="not part of this model"):
        get_layer(course, nn.ReLU())
    with pytest.raises(TypeError, match="name"):
        get_layer(course, 3)


def test_capture_matches_a_manual_forward_pass(course):
    images = torch.rand(2, 3, 64, 64)
    with capture_activations(course, ["features.conv1", "classifier.fc1"]) as acts:
        logits = course(images)
    normalised = (images - course.mean) / course.std
    expected_conv1 = course.net.features.conv1(normalised)
    assert torch.allclose(acts["features.conv1"], expected_conv1, atol=1e-5)
    assert torch.allclose(course.net.classifier.fc2(torch.relu(acts["classifier.fc1"])), logits, atol=1e-5)


def test_in_place_relu_cannot_overwrite_a_captured_activation():
    model = random_imagenet_model("squeezenet1_1")  # conv layers followed by ReLU(inplace=True)
    assert model.layer("features.1").inplace
    images = torch.rand(1, 3, 64, 64)
    with capture_activations(model, "features.0") as acts:
        model(images)
    expected = model.net.features[0]((images - model.mean) / model.std)
    assert acts["features.0"].min() < 0  # pre-ReLU values survived
    assert torch.allclose(acts["features.0"], expected, atol=1e-5)


def test_undetached_capture_can_be_differentiated(course):
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    before = fingerprint(course)
    with capture_activations(course, "features.conv2", detach=False) as acts:
        course(images)
        (grad,) = torch.autograd.grad(acts["features.conv2"].pow(2).sum(), images)
    assert grad.abs().sum() > 0
    assert_unchanged(course, before)


def test_hooks_are_removed_even_when_the_block_raises(course):
    before = fingerprint(course)
    with pytest.raises(RuntimeError, match="midway"):
        with capture_activations(course, ["features.conv1", "features.relu5"]):
            course(torch.rand(1, 3, 64, 64))
            raise RuntimeError("midway")
    assert_unchanged(course, before)

    def failing_hook(module, inputs, output):
        raise RuntimeError("inside the hook")

    with pytest.raises(RuntimeError, match="inside the hook"):
        with temporary_hooks() as handles:
            handles.append(course.layer("features.conv2").register_forward_hook(failing_hook))
            course(torch.rand(1, 3, 64, 64))
    assert_unchanged(course, before)


def test_a_bad_layer_name_registers_nothing(course):
    before = fingerprint(course)
    with pytest.raises(ValueError):
        with capture_activations(course, ["features.conv1", "nope"]):
            pass
    assert_unchanged(course, before)


def test_plain_modules_work_without_the_wrapper():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with capture_activations(net, "0") as acts:
        net(torch.rand(1, 3, 8, 8))
    assert acts["0"].shape == (1, 4, 6, 6)


def test_forward_to_stops_at_the_layer_and_keeps_the_graph(course):
    from vizlib.hooks import forward_to

    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    later_calls = []
    before = fingerprint(course)
    with temporary_hooks() as handles:
        handles.append(course.layer("features.conv4").register_forward_hook(lambda *a: later_calls.append(1)))
        out = forward_to(course, images, "features.relu3")
    with capture_activations(course, "features.relu3") as acts:
        course(images)
    assert later_calls == [] and torch.allclose(out, acts["features.relu3"])
    (grad,) = torch.autograd.grad(out.sum(), images)
    assert grad.abs().sum() > 0
    assert_unchanged(course, before)


def test_layer_features_ends_where_the_last_requested_layer_runs_not_where_it_is_defined():
    from tiny_networks import out_of_order_network
    from vizlib.hooks import layer_features

    model = out_of_order_network()
    net = model.net
    assert layer_names(model).index("late") < layer_names(model).index("early")   # the order this test is about
    images = torch.rand(2, 3, 8, 8, requires_grad=True)
    before = fingerprint(model)
    head_calls = []
    with temporary_hooks() as handles:
        handles.append(net.head.register_forward_hook(lambda *args: head_calls.append(1)))
        features = layer_features(model, images, ["late", "early"])
    assert head_calls == [], "the layer after the last requested one ran"
    assert list(features) == ["late", "early"]
    with torch.no_grad():
        early = net.early((images - model.mean) / model.std)
        late = net.late(torch.relu(early))
    assert torch.allclose(features["early"], early, atol=1e-6)
    assert torch.allclose(features["late"], late, atol=1e-6)
    (grad,) = torch.autograd.grad(features["late"].sum(), images)    # still in the graph
    assert grad.abs().sum() > 0
    assert_unchanged(model, before)


def test_a_module_that_runs_twice_gives_its_first_call_in_every_function():
    from tiny_networks import out_of_order_network
    from vizlib.hooks import forward_to, layer_features

    model = out_of_order_network()      # early -> relu -> late -> relu -> head
    net = model.net
    images = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        first_relu = torch.relu(net.early((images - model.mean) / model.std))
        second_relu = torch.relu(net.late(first_relu))
    assert not torch.allclose(first_relu.mean(), second_relu.mean())     # the two calls differ
    before = fingerprint(model)
    # the pass may end at the first call, between the calls or after the second: always the first call
    for others in ([], ["early"], ["late"], ["head"]):
        assert torch.allclose(layer_features(model, images, ["relu"] + others)["relu"], first_relu, atol=1e-6), others
    alone = layer_features(model, images, ["relu", net.relu])          # the same module under name and object
    assert list(alone) == ["relu"] and torch.allclose(alone["relu"], first_relu, atol=1e-6)
    assert torch.allclose(forward_to(model, images, "relu"), first_relu, atol=1e-6)
    with capture_activations(model, ["relu", "late"]) as acts:
        model(images)                   # the whole pass: relu's second call comes after late's
        assert torch.allclose(acts["relu"], first_relu, atol=1e-6)
        model(images.flip(-1))          # each pass records its own first call
        with torch.no_grad():
            flipped = torch.relu(net.early((images.flip(-1) - model.mean) / model.std))
        assert torch.allclose(acts["relu"], flipped, atol=1e-6)
        net.relu(second_relu)           # a module called on its own, outside a pass: every call counts
        assert torch.equal(acts["relu"], second_relu)
    assert_unchanged(model, before)


def test_first_call_is_counted_afresh_after_a_pass_that_raised():
    from tiny_networks import out_of_order_network

    model = out_of_order_network()
    images = torch.rand(1, 3, 8, 8)
    before = fingerprint(model)

    def failing_hook(module, inputs, output):
        raise RuntimeError("inside the pass")

    other = torch.rand(1, 5, 8, 8) - 0.5
    with capture_activations(model, "relu") as acts:
        handle = model.layer("late").register_forward_hook(failing_hook)
        with pytest.raises(RuntimeError, match="inside the pass"):
            model(images)               # ends after relu's first call
        handle.remove()
        model.net.relu(other)           # the failed pass is over: a call on its own is recorded
        assert torch.equal(acts["relu"], torch.relu(other))
        model(images.flip(-1))
        with torch.no_grad():
            flipped = torch.relu(model.net.early((images.flip(-1) - model.mean) / model.std))
        assert torch.allclose(acts["relu"], flipped, atol=1e-6)
    assert_unchanged(model, before)


def test_resnet_block_relu_means_the_same_tensor_in_every_function():
    """ResNet-18's block calls its `relu` twice: the name means the first call (after bn1) everywhere, whatever
    else is asked for; the block's own name means its output (after the second call)."""
    from vizlib.hooks import forward_to, layer_features

    model = random_imagenet_model("resnet18", seed=1)
    images = torch.rand(2, 3, 64, 64)
    before = fingerprint(model)
    with torch.no_grad():
        with capture_activations(model, ["layer1.0.bn1", "layer1.0.relu", "layer1.0"]) as acts:
            model(images)
        mid_block = torch.relu(acts["layer1.0.bn1"])
        assert torch.allclose(acts["layer1.0.relu"], mid_block)
        assert acts["layer1.0"].shape == mid_block.shape and not torch.allclose(acts["layer1.0"], mid_block)
        assert torch.allclose(forward_to(model, images, "layer1.0.relu"), mid_block)
        assert torch.allclose(layer_features(model, images, ["layer1.0.relu"])["layer1.0.relu"], mid_block)
        deeper = layer_features(model, images, ["layer1.0.relu", "layer4"])
        assert torch.allclose(deeper["layer1.0.relu"], mid_block)
        assert torch.allclose(forward_to(model, images, "layer1.0"), acts["layer1.0"])
    assert_unchanged(model, before)


def test_layer_features_names_a_layer_that_never_runs():
    from tiny_networks import out_of_order_network
    from vizlib.hooks import layer_features

    model = out_of_order_network()
    before = fingerprint(model)
    with pytest.raises(RuntimeError, match=r"\['unused'\] did not run"):
        layer_features(model, torch.rand(1, 3, 8, 8), ["early", "unused"])
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="at least one layer"):
        layer_features(model, torch.rand(1, 3, 8, 8), [])


def test_output_shapes_are_those_of_a_forward_pass_and_leave_the_model_alone(course):
    before = fingerprint(course)
    shapes = output_shapes(course)
    names = [name for name in layer_names(course) if name not in ("features", "classifier")]
    with capture_activations(course, names) as seen, torch.no_grad():
        course(torch.rand(1, 3, 64, 64))
    assert {name: tuple(seen[name].shape) for name in names} == {name: shapes[name] for name in names}
    assert output_shapes(course, ["features.conv2"], size=32) == {"features.conv2": (1, 64, 8, 8)}
    with pytest.raises(ValueError, match="unknown layer"):
        output_shapes(course, ["features.nope"])
    assert_unchanged(course, before)
