"""Streaming top-k and patches.

Oracles: the streaming top-k against a brute-force pass written here; patches against
the field cut from a padded image. (Receptive fields: tests/test_receptive_field.py.)

Oracles (where each homework region's expected values come from):
- merge_top_k(): a brute-force top-k over all images in numpy, on exact integer activations so ties are exact.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib import patches
from vizlib.course_data import make_shapes
from vizlib.plotting import figure_png
from vizlib.receptive_field import ReceptiveField, receptive_field

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
        top = patches.top_activations(net, data, layer, k=5, batch_size=batch_size, show_progress=False)
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
        top = patches.top_activations(course, data, "features.relu3", k=6, batch_size=16,
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

    top = patches.top_activations(course, stream(), "features.relu2", k=4, show_progress=False)
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
    field = ReceptiveField((7, 9), (4, 3), (-5, -2))
    image_index, position = torch.tensor([0, 2, 1, 2]), torch.tensor([[0, 0], [2, 3], [5, 8], [1, 0]])
    cropped = patches.crop_patches(images, field, image_index, position, fill=(0.2, 0.5, 0.9))
    cut, inside = cropped.images, cropped.inside
    pad = 20  # an independent crop: pad every side with the fill colour, then slice
    padded = torch.stack([F.pad(images[:, c], (pad, pad, pad, pad), value=v) for c, v in enumerate((0.2, 0.5, 0.9))], 1)
    for n, (i, (row, col)) in enumerate(zip(image_index.tolist(), position.tolist())):
        top, left = -5 + 4 * row + pad, -2 + 3 * col + pad
        assert torch.equal(cut[n], padded[i, :, top:top + 7, left:left + 9])
        t, left_edge, b, r = field.clipped_box(row, col, (20, 24))
        expected = torch.zeros(7, 9, dtype=torch.bool)
        expected[t - (top - pad):b - (top - pad), left_edge - (left - pad):r - (left - pad)] = True
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
    top = patches.top_activations(course, images, "features.relu2", k=4, show_progress=False)
    before = fingerprint(course)
    similarity = patches.feature_similarity(course, images, top, seed=0)
    top_similarity, random_similarity = similarity.top, similarity.random
    assert top_similarity.shape == random_similarity.shape == (64,)
    assert abs(random_similarity.mean()) < 0.15 < top_similarity.mean()
    assert_unchanged(course, before)


def test_unit_features_are_the_activation_vector_at_the_unit(course):
    images, _, _ = make_shapes(6, "held_out", seed=4)
    index, position = torch.tensor([5, 0, 5, 2]), torch.tensor([[0, 1], [7, 7], [3, 2], [4, 0]])
    got = patches.unit_features(course, images, "features.relu3", index, position, batch_size=2)
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
        patches.top_activations(course, images, "features.conv7", k=2)
    with pytest.raises(ValueError, match=r"k must be an int from 1 to 5 \(the dataset has 5 images\), got 6"):
        patches.top_activations(course, images, "features.relu2", k=6)
    with pytest.raises(ValueError, match=r"k must be an int from 1 to 5 \(the dataset has 5 images\), got 6"):
        patches.top_activations(course, iter(images.split(2)), "features.relu2", k=6, show_progress=False)
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        patches.top_activations(course, images, "features.relu2", k=0)
    with pytest.raises(ValueError, match="the batch is empty"):
        patches.top_activations(course, images[:0], "features.relu2", k=1)
    with pytest.raises(ValueError, match="dataset is empty"):
        patches.top_activations(course, iter([]), "features.relu2", k=1, show_progress=False)
    with pytest.raises(ValueError, match=r"not activation maps \(N, C, h, w\)"):
        patches.top_activations(course, images, "classifier.fc1", k=2, show_progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        patches.top_activations(course, images * 255, "features.relu2", k=2, show_progress=False)
    top = patches.top_activations(course, images, "features.relu2", k=3, show_progress=False)
    field = receptive_field(course, "features.relu2")
    for channel in (64, -1):
        with pytest.raises(ValueError, match=f"channel must be an int from 0 to 63 \\(layer 'features.relu2'\\), "
                                             f"got {channel}"):
            patches.channel_patches(images, field, top, channel)
    with pytest.raises(ValueError, match=r"k must be an int from 1 to 3 \(3 images per channel were kept\), got 4"):
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
    tops = [patches.top_activations(course, images, layer, k=4, show_progress=False)
            for layer in ("features.relu2", "features.relu3")]
    field = receptive_field(course, "features.relu3")
    fig = patches.show_top_patches(images, field, tops[1], [0, 5, 127])
    assert len(fig.axes) == 12
    fig = patches.show_channel(images, field, tops[1], 3)
    assert len(fig.axes) == 8
    plt.close("all")
    picker = patches.patch_picker(course, images, tops)
    (layer_box, channel_box), picture = picker.children[0].children, picker.children[-1]

    def expected(layer, channel):  # the picture the picker should show, drawn directly
        top = tops[0] if layer == "features.relu2" else tops[1]
        fig = patches.show_channel(images, receptive_field(course, layer), top, channel)
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
