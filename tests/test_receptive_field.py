"""Receptive fields against the input pixels that a unit's gradient reaches.

On a linear copy of each network the field, clipped to the image, and the gradient's
bounding box must be equal; with the nonlinearities in, the gradient's box lies inside.

Oracles (where each homework region's expected values come from):
- _through_window(): the bounding box of the input pixels that a unit's gradient reaches, on a linearised copy
  of the network.
"""

import copy

import pytest
import torch
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.hooks import temporary_hooks
from vizlib.models import random_imagenet_model
from vizlib.receptive_field import ReceptiveField, receptive_field


def linearised(net):
    """A copy of `net` that is linear in its input: ReLUs become Identity, max-pooling average-pooling
    of the same geometry. BatchNorm in eval mode is affine and stays."""
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1)), "average pooling has no dilation"
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
    return net


class Stop(Exception):
    """Raised once the layer has run: the gradient needs nothing after it."""


def gradient_boxes(net, layer, image_size, units, seed=0):
    """For each unit (channel, row, col): the bounding box (top, left, bottom, right; exclusive) of the input
    pixels whose gradient is non-zero, or None when no pixel reaches the unit. One batch, one image per unit."""
    module = dict(net.named_modules())[layer]
    outputs = []

    def hook(module, inputs, output):
        outputs.append(output)
        raise Stop

    handle = module.register_forward_hook(hook)
    try:
        generator = torch.Generator().manual_seed(seed)
        x = torch.rand(1, 3, *image_size, generator=generator, dtype=torch.float64).repeat(len(units), 1, 1, 1)
        x.requires_grad_(True)
        with pytest.raises(Stop):
            net(x)
    finally:
        handle.remove()
    picked = torch.stack([outputs[0][i, c, r, q] for i, (c, r, q) in enumerate(units)])
    (grad,) = torch.autograd.grad(picked.sum(), x)
    boxes = []
    for nonzero in grad.abs().sum(1) > 0:
        rows, cols = nonzero.any(1).nonzero().flatten(), nonzero.any(0).nonzero().flatten()
        boxes.append(None if len(rows) == 0 else  # None: a unit switched off by its ReLU
                     (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1))
    return boxes


def output_size(net, layer, image_size):
    with temporary_hooks() as handles, torch.no_grad():
        sizes = []
        handles.append(dict(net.named_modules())[layer].register_forward_hook(
            lambda m, i, o: sizes.append(tuple(o.shape[1:]))))
        net(torch.zeros(1, 3, *image_size, dtype=torch.float64))
    return sizes[0]


def units_to_check(height, width, per_axis=5):
    """Up to per_axis x per_axis units spread over an activation map, corners and edges included."""
    rows = sorted({round(i * (height - 1) / (per_axis - 1)) for i in range(per_axis)})
    cols = sorted({round(i * (width - 1) / (per_axis - 1)) for i in range(per_axis)})
    return [(r, c) for r in rows for c in cols]


def inside(box, expected):
    return box is None or (expected[0] <= box[0] and expected[1] <= box[1]
                           and box[2] <= expected[2] and box[3] <= expected[3])


def check_fields(net, layers, image_size, *, channels=(0,), exact_at_border=True, exact=True, per_axis=5):
    """On the linear copy the gradient box equals the field clipped to the image; on the network it lies inside.

    exact_at_border=False: equality only for units whose whole field lies in the image; at the
    border a dilated layer's taps can skip the image's last rows (its bounding box, clipped,
    is then an upper bound), and so can a layer whose last window stops short of them.
    exact=False: "inside" only, also on the linear copy.
    """
    net = copy.deepcopy(net).double().eval()  # a copy: the caller's model stays as it was
    linear = linearised(net)
    reached = interior = 0
    for layer in layers:
        field = receptive_field(net, layer)
        assert receptive_field(linear, layer) == field
        _, height, width = output_size(net, layer, image_size)
        units = [(c, r, q) for r, q in units_to_check(height, width, per_axis) for c in channels]
        for (c, r, q), linear_box, box in zip(units, gradient_boxes(linear, layer, image_size, units),
                                              gradient_boxes(net, layer, image_size, units)):
            expected = field.clipped_box(r, q, image_size)
            whole = expected == field.box(r, q)
            interior += whole
            if exact and (whole or exact_at_border):
                assert linear_box == expected, (layer, c, r, q)
            assert inside(linear_box, expected), (layer, c, r, q)
            reached += box is not None
            assert inside(box, expected), (layer, c, r, q)
    assert reached, "every unit checked was switched off: the nonlinear check proved nothing"
    return interior


def test_course_model_fields_match_the_gradient(course):
    before = fingerprint(course)
    layers = ["features.conv1", "features.pool1", "features.relu2", "features.pool2", "features.conv3",
              "features.bn4", "features.relu5", "features.pool5"]
    assert receptive_field(course, "features.relu3") == ReceptiveField((37, 37), (8, 8), (-15, -15))
    check_fields(course.net, layers, (64, 64))  # no dilation, and every layer reaches the last row: exact
    assert_unchanged(course, before)


def test_fields_with_dilation_padding_and_rectangles_match_the_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(4, 4, (3, 5), stride=(2, 1), padding=(0, 3), dilation=(3, 1)), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 3, 3, padding="same", dilation=2), nn.ReLU(),
        nn.Sequential(nn.Conv2d(3, 2, 4, stride=3, padding=2), nn.ReLU()),
    )
    net[4].running_mean.uniform_(-1, 1)
    net[4].running_var.uniform_(0.5, 2)
    field = receptive_field(net, "3")
    # by hand: the dilated 3x3 spans 5 pixels from -2; pooling (3, stride 2, pad 1) makes 7 from -3 at stride 2;
    # then rows: 3 taps 3 apart at stride 2 add 12, no padding; cols: 5 taps add 8, padding 3 moves the start by 6
    assert field == ReceptiveField((19, 15), (4, 2), (-3, -9))
    for layer in ["0", "2", "3", "6", "7", "9.0", "9"]:
        interior = check_fields(net, [layer], (129, 90), channels=(0, 1), exact_at_border=False)
        assert interior >= 2, f"layer {layer}: too few units whose field lies inside the image"


def test_squeezenet_fire_fields_are_the_union_of_both_paths():
    model = random_imagenet_model("squeezenet1_1", seed=0)
    before = fingerprint(model)
    net = model.net.features
    size = (81, 81)  # odd: the first 3x3 convolution of stride 2 reaches the last row (at 80 it skips it)
    check_fields(net, ["2"], size)
    # the channels of the expand3x3 path follow those of expand1x1 (64 in Fires 3-4, 128 in 6-7)
    check_fields(net, ["3", "4", "5"], size, channels=(64, 70))
    check_fields(net, ["7"], size, channels=(128, 140))
    check_fields(net, ["3.expand1x1", "4.squeeze"], size)
    # a channel of the 1x1 path sees less than the union: inside it
    check_fields(net, ["4", "7"], size, channels=(0,), exact=False)
    field, small = receptive_field(model, "features.4"), receptive_field(model, "features.4.expand1x1")
    assert field.size == (23, 23) and small.size == (15, 15)
    assert_unchanged(model, before)


def test_resnet_blocks_with_a_shortcut_match_the_gradient():
    net = random_imagenet_model("resnet18", seed=0).net
    check_fields(net, ["maxpool", "layer1.0", "layer1.1.conv2", "layer2.0", "layer2.0.downsample"], (72, 72),
                 per_axis=3)


def test_unknown_geometry_is_a_clear_error(course):
    class Mystery(nn.Module):
        def forward(self, x):
            return x

    net = nn.Sequential(nn.Conv2d(3, 4, 3), Mystery(), nn.Conv2d(4, 4, 3))
    with pytest.raises(ValueError, match=r"'1' \(Mystery\) is unknown.*Conv2d.*Fire"):
        receptive_field(net, "2")
    with pytest.raises(ValueError, match="whole image"):
        receptive_field(course, "classifier.fc1")
    with pytest.raises(ValueError, match="unknown layer 'features.conv9'.*features.conv1"):
        receptive_field(course, "features.conv9")
    resnet = random_imagenet_model("resnet18")
    with pytest.raises(ValueError, match="runs more than once"):
        receptive_field(resnet, "layer1.0.relu")
