"""Receptive fields, streaming top-k and patches.

Oracles: the receptive field against the input pixels that a unit's gradient reaches
(on a linear copy of each network the two boxes must be equal, with the nonlinearities
in they must nest); the streaming top-k against a brute-force pass written here.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib import patches
from vizlib.course_data import make_shapes
from vizlib.hooks import temporary_hooks
from vizlib.models import random_imagenet_model
from vizlib.plotting import figure_png

# ---------------------------------------------------------------------------------------------
# Receptive field against the gradient
# ---------------------------------------------------------------------------------------------


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
        field = patches.receptive_field(net, layer)
        assert patches.receptive_field(linear, layer) == field
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
    assert patches.receptive_field(course, "features.relu3") == patches.ReceptiveField((37, 37), (8, 8), (-15, -15))
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
    field = patches.receptive_field(net, "3")
    # by hand: the dilated 3x3 spans 5 pixels from -2; pooling (3, stride 2, pad 1) makes 7 from -3 at stride 2;
    # then rows: 3 taps 3 apart at stride 2 add 12, no padding; cols: 5 taps add 8, padding 3 moves the start by 6
    assert field == patches.ReceptiveField((19, 15), (4, 2), (-3, -9))
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
    field, small = patches.receptive_field(model, "features.4"), patches.receptive_field(model, "features.4.expand1x1")
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
        patches.receptive_field(net, "2")
    with pytest.raises(ValueError, match="whole image"):
        patches.receptive_field(course, "classifier.fc1")
    with pytest.raises(ValueError, match="unknown layer 'features.conv9'.*features.conv1"):
        patches.receptive_field(course, "features.conv9")
    resnet = random_imagenet_model("resnet18")
    with pytest.raises(ValueError, match="runs more than once"):
        patches.receptive_field(resnet, "layer1.0.relu")


# ---------------------------------------------------------------------------------------------
# Streaming top-k against brute force
# ---------------------------------------------------------------------------------------------


def brute_force_top_k(maps, k):
    """maps (N, C, h, w) as numpy: per channel, the k images with the largest maximum (ties: earlier image),
    and the first position of each maximum in row-major order."""
    n, channels, h, w = maps.shape
    flat = maps.reshape(n, channels, h * w)
    maxima = flat.max(axis=2)
    values = np.zeros((channels, k))
    index = np.zeros((channels, k), dtype=np.int64)
    position = np.zeros((channels, k, 2), dtype=np.int64)
    for c in range(channels):
        order = sorted(range(n), key=lambda i: (-maxima[i, c], i))[:k]
        for j, i in enumerate(order):
            values[c, j] = maxima[i, c]
            index[c, j] = i
            first = int(np.flatnonzero(flat[i, c] == maxima[i, c])[0])
            position[c, j] = divmod(first, w)
    return values, index, position


def exact_net():
    """Integer weights on images quantised to quarters: every activation is exact, so ties are exact too."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(5, 6, 3))
    with torch.no_grad():
        for conv in (net[0], net[3]):
            conv.weight.copy_(torch.randint(-2, 3, conv.weight.shape).float())
    return net.eval().requires_grad_(False)


def exact_images():
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 5, (14, 3, 12, 12), generator=generator).float() / 4
    images[:, :, :, 6:] = 0  # half of every image is flat: ties inside an activation map
    return torch.cat([images, images[:6], torch.zeros(3, 3, 12, 12)])  # duplicate images: ties between images


@pytest.mark.parametrize("batch_size", [1, 4, 7, 64])
@pytest.mark.parametrize("layer", ["1", "3"])
def test_streaming_top_k_equals_brute_force_with_exact_ties(batch_size, layer):
    net, images = exact_net(), exact_images()
    before = fingerprint(net)
    with torch.no_grad():
        maps = net[: int(layer) + 1](images).numpy()
    values, index, position = brute_force_top_k(maps, k=5)
    assert (values[:, :-1] == values[:, 1:]).any(), "the test set should contain ties"
    for data in (images, ((batch, None) for batch in images.split(batch_size))):
        top = patches.top_activations(net, layer, data, k=5, batch_size=batch_size, show_progress=False)
        assert top.layer == layer and top.n_images == len(images) and top.map_size == maps.shape[-2:]
        assert np.array_equal(top.values.numpy(), values)
        assert np.array_equal(top.image_index.numpy(), index)
        assert np.array_equal(top.position.numpy(), position)
    assert_unchanged(net, before)


def test_streaming_top_k_on_the_course_model(course):
    images, _, _ = make_shapes(40, "held_out", seed=3)
    before = fingerprint(course)
    with torch.no_grad():
        normalised = (images - course.mean) / course.std
        maps = course.net.features[:11](normalised).numpy()  # conv1 ... relu3
    values, index, _ = brute_force_top_k(maps, k=6)
    dataset = torch.utils.data.TensorDataset(images, torch.arange(len(images)))  # items (image, label)
    for stop_early, data in ((True, images), (False, images), (True, dataset)):
        top = patches.top_activations(course, "features.relu3", data, k=6, batch_size=16,
                                      stop_early=stop_early, show_progress=False)
        assert np.allclose(top.values.numpy(), values, atol=1e-5)
        # the image order must agree wherever neighbouring values are not (nearly) tied
        gaps = np.abs(np.diff(values, axis=1)) > 1e-4
        clear = np.concatenate([gaps[:, :1], gaps[:, 1:] | gaps[:, :-1], gaps[:, -1:]], axis=1)
        assert np.array_equal(top.image_index.numpy()[clear], index[clear])
        # each kept position holds its image's maximum
        c, j = np.indices(top.values.shape)
        at = maps[top.image_index.numpy(), c, top.position[..., 0].numpy(), top.position[..., 1].numpy()]
        assert np.allclose(at, top.values.numpy(), atol=1e-5)
    assert_unchanged(course, before)


def test_memory_stays_k_by_channels_for_a_long_stream(course):
    pool, _, _ = make_shapes(8, "held_out", seed=0)

    def stream():  # 12 batches made on the fly (shifted copies of a few images), never held together
        for shift in range(12):
            yield torch.roll(pool, shifts=3 * shift, dims=3)

    top = patches.top_activations(course, "features.relu2", stream(), k=4, show_progress=False)
    assert top.values.shape == top.image_index.shape == (64, 4) and top.position.shape == (64, 4, 2)
    assert top.n_images == 96 and top.image_index.max() < 96


def test_merge_top_k_keeps_the_earlier_entry_on_ties():
    kept = (torch.tensor([[3.0, 1.0]]), torch.tensor([[0, 1]]), torch.tensor([[[0, 0], [1, 1]]]))
    new = (torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([[2, 3, 4]]), torch.tensor([[[2, 2], [3, 3], [4, 4]]]))
    values, index, position = patches.merge_top_k(kept, new, 3)
    assert values.tolist() == [[3.0, 3.0, 2.0]] and index.tolist() == [[0, 3, 4]]
    assert position.tolist() == [[[0, 0], [3, 3], [4, 4]]]


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------


def test_patches_are_the_field_cut_from_a_padded_image():
    images = torch.rand(3, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    field = patches.ReceptiveField((7, 9), (4, 3), (-5, -2))
    image_index, position = torch.tensor([0, 2, 1, 2]), torch.tensor([[0, 0], [2, 3], [5, 8], [1, 0]])
    cut, inside = patches.crop_patches(images, field, image_index, position, fill=(0.2, 0.5, 0.9))
    pad = 20  # an independent crop: pad every side with the fill colour, then slice
    padded = torch.stack([F.pad(images[:, c], (pad, pad, pad, pad), value=v) for c, v in enumerate((0.2, 0.5, 0.9))], 1)
    for n, (i, (row, col)) in enumerate(zip(image_index.tolist(), position.tolist())):
        top, left = -5 + 4 * row + pad, -2 + 3 * col + pad
        assert torch.equal(cut[n], padded[i, :, top:top + 7, left:left + 9])
        t, l, b, r = field.clipped_box(row, col, (20, 24))
        expected = torch.zeros(7, 9, dtype=torch.bool)
        expected[t - (top - pad):b - (top - pad), l - (left - pad):r - (left - pad)] = True
        assert torch.equal(inside[n], expected)
    assert not inside[0].all() and inside[1].all()  # the corner unit's field leaves the image


def test_feature_similarity_counts_pairs_and_leaves_the_channel_out():
    features = torch.tensor([[1.0, 0.0, 5.0], [0.0, 1.0, 5.0], [1.0, 1.0, -3.0]])
    # without channel 2: cos(a, b) = 0, cos(a, c) = cos(b, c) = 1/sqrt(2)
    assert patches.mean_pairwise_cosine(features, exclude=2) == pytest.approx((0 + 2 * 2 ** -0.5) / 3)
    # centred on (1, 1, 0) and without channel 2: (0, -1), (-1, 0), (0, 0); the zero vector counts as 0
    assert patches.mean_pairwise_cosine(features, exclude=2, centre=torch.tensor([1.0, 1.0, 0.0])) == 0
    # centred on (0.5, 0.5, 0): (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5): cosines -1, 0, 0
    centre = torch.tensor([0.5, 0.5, 0.0])
    assert patches.mean_pairwise_cosine(features, exclude=2, centre=centre) == pytest.approx(-1 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        patches.mean_pairwise_cosine(features[:1])


def test_top_units_are_more_alike_than_random_ones(course):
    images, _, _ = make_shapes(64, "held_out", seed=5)
    top = patches.top_activations(course, "features.relu2", images, k=4, show_progress=False)
    before = fingerprint(course)
    top_similarity, random_similarity = patches.feature_similarity(course, images, top, seed=0)
    assert top_similarity.shape == random_similarity.shape == (64,)
    assert abs(random_similarity.mean()) < 0.15 < top_similarity.mean()
    assert_unchanged(course, before)


def test_unit_features_are_the_activation_vector_at_the_unit(course):
    images, _, _ = make_shapes(6, "held_out", seed=4)
    index, position = torch.tensor([5, 0, 5, 2]), torch.tensor([[0, 1], [7, 7], [3, 2], [4, 0]])
    got = patches.unit_features(course, "features.relu3", images, index, position, batch_size=2)
    with torch.no_grad():
        maps = course.net.features[:11]((images - course.mean) / course.std)
    expected = maps[index, :, position[:, 0], position[:, 1]]
    assert torch.allclose(got, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Bad input, pictures, and the model left as it was
# ---------------------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error_and_leaves_the_model_alone(course):
    images, _, _ = make_shapes(5, "held_out", seed=0)
    before = fingerprint(course)
    with pytest.raises(ValueError, match="unknown layer 'features.conv7'; valid layer names: features, features.conv1"):
        patches.top_activations(course, "features.conv7", images, k=2)
    with pytest.raises(ValueError, match=r"k=6 is out of range: choose k between 1 and 5"):
        patches.top_activations(course, "features.relu2", images, k=6)
    with pytest.raises(ValueError, match=r"k=6 is out of range: choose k between 1 and 5"):
        patches.top_activations(course, "features.relu2", iter(images.split(2)), k=6, show_progress=False)
    with pytest.raises(ValueError, match="k=0 is out of range"):
        patches.top_activations(course, "features.relu2", images, k=0)
    with pytest.raises(ValueError, match="dataset is empty"):
        patches.top_activations(course, "features.relu2", images[:0], k=1)
    with pytest.raises(ValueError, match="dataset is empty"):
        patches.top_activations(course, "features.relu2", iter([]), k=1, show_progress=False)
    with pytest.raises(ValueError, match=r"not activation maps \(N, C, h, w\)"):
        patches.top_activations(course, "classifier.fc1", images, k=2, show_progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        patches.top_activations(course, "features.relu2", images * 255, k=2, show_progress=False)
    top = patches.top_activations(course, "features.relu2", images, k=3, show_progress=False)
    field = patches.receptive_field(course, "features.relu2")
    for channel in (64, -1):
        with pytest.raises(ValueError, match=f"channel {channel} does not exist in 'features.relu2': "
                                             "valid channels are 0 to 63"):
            patches.channel_patches(images, field, top, channel)
    with pytest.raises(ValueError, match="k=4 is out of range: 3 images per channel were kept, so choose k "
                                         "between 1 and 3"):
        patches.channel_patches(images, field, top, 0, k=4)
    with pytest.raises(TypeError, match="channel must be an int"):
        patches.show_top_patches(images, field, top, ["a"])
    assert_unchanged(course, before)


def test_pictures_and_the_picker_draw_headless(course):
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    images, _, _ = make_shapes(12, "held_out", seed=0)
    before = fingerprint(course)
    tops = [patches.top_activations(course, layer, images, k=4, show_progress=False)
            for layer in ("features.relu2", "features.relu3")]
    field = patches.receptive_field(course, "features.relu3")
    fig = patches.show_top_patches(images, field, tops[1], [0, 5, 127])
    assert len(fig.axes) == 12
    fig = patches.show_channel(images, field, tops[1], 3)
    assert len(fig.axes) == 8
    plt.close("all")
    picker = patches.patch_picker(course, images, tops)
    (layer_box, channel_box), picture = picker.children[0].children, picker.children[1]

    def expected(layer, channel):  # the picture the picker should show, drawn directly
        top = tops[0] if layer == "features.relu2" else tops[1]
        fig = patches.show_channel(images, patches.receptive_field(course, layer), top, channel)
        png = figure_png(fig)
        plt.close(fig)
        return png

    assert channel_box.max == 63 and picture.value == expected("features.relu2", 0)  # drawn at once
    layer_box.value = "features.relu3"
    assert channel_box.max == 127 and picture.value == expected("features.relu3", 0)
    channel_box.value = 100
    assert picture.value == expected("features.relu3", 100)
    layer_box.value = "features.relu2"  # channel 100 does not exist there: clamped to 63
    assert channel_box.value == 63 and picture.value == expected("features.relu2", 63)
    assert not plt.get_fignums()  # figures closed, not piling up
    plt.close("all")
    assert_unchanged(course, before)
