"""Network dissection: IoU on a hand-computed case and against a brute force, thresholds against numpy, bad input.

Oracles (where each homework region's expected values come from):
- _Tally.add(): a brute force written here, every activation map upsampled with F.interpolate, thresholded and
  compared with each concept's mask by numpy; and a 4x4 case counted by hand.
- _Tally.iou(): the same brute force's set sizes, |A and B| / |A or B| in numpy; and the hand-computed IoUs.
"""

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import CLASSES, render_shapes
from vizlib.dissection import (
    COLOUR_NAMES, Concepts, activation_thresholds, colour_bins, course_concepts, detector_examples, dissect,
    dissect_layers, show_detector_counts, show_detectors, unit_regions,
)
from vizlib.hooks import capture_activations
from vizlib.wrapper import VizModel, freeze


def plain_model(net, size):
    """A network behind the wrapper with no normalisation (mean 0, std 1): its layers see the pixels."""
    return freeze(VizModel(net, name="plain", class_names="ab", input_size=size, mean=(0.0,) * 3, std=(1.0,) * 3))


@pytest.fixture(scope="module")
def rendered():
    return render_shapes(24, "held_out", seed=3)


# --- a case counted by hand ----------------------------------------------------------------------------------


def hand_case():
    """Two 4x4 images seen by an identity layer: unit 0 is the red channel, unit 1 the green, unit 2 the blue."""
    images = torch.zeros(2, 3, 4, 4)
    images[0, 0, 0, 0] = images[0, 0, 0, 1] = images[0, 0, 1, 0] = images[1, 0, 3, 3] = 1.0   # 4 red pixels
    images[:, 1] = 0.5                                                                        # flat green
    labels = torch.full((2, 2, 4, 4), -1, dtype=torch.int16)
    labels[0, 0, 0, :3] = 0                  # "A": three pixels of image 0's top row ...
    labels[1, 0, 3, 2:] = 0                  # ... and two of image 1's bottom row: 5 pixels
    labels[0, 0, 3, :] = 1                   # "B": image 0's bottom row, 4 pixels
    labels[1, 1] = 2                         # "C", another kind: all of image 1, 16 pixels
    concepts = Concepts(("A", "B", "C"), ("letter", "letter", "image"), labels)
    return plain_model(nn.Sequential(nn.Identity()), 4), images, concepts


def test_iou_on_a_case_counted_by_hand():
    model, images, concepts = hand_case()
    # 32 red values, 28 zeros and 4 ones: numpy's 0.9 quantile sits at position 31 * 0.9 = 27.9, between
    # zero (the 28th value) and one, so T = 0.9 and the region is the four red pixels.
    result = dissect(model, images, "0", concepts, quantile=0.1)
    assert result.thresholds.tolist() == pytest.approx([0.9, 0.5, 0.0])
    # unit 0 and A: 2 shared pixels in image 0, 1 in image 1; union 4 + 5 - 3 = 6.
    # unit 0 and B: none shared. unit 0 and C: 1 shared (image 1's red pixel), union 4 + 16 - 1 = 19.
    assert result.iou[0].tolist() == pytest.approx([3 / 6, 0.0, 1 / 19])
    assert result.areas.tolist() == [4, 0, 0]
    # green is 0.5 everywhere, its threshold too: nothing lies above it; blue is 0 everywhere, likewise.
    assert result.iou[1:].abs().sum() == 0
    assert result.detected == ("A", None, None)
    assert result.counts() == {"letter": 1, "image": 0} and result.detectors("letter") == [0]
    # at a threshold above 1/2, unit 0 detects nothing (fixed before counting, as Bau et al. fix 0.04)
    assert dissect(model, images, "0", concepts, quantile=0.1, iou_threshold=0.6).detected == (None, None, None)


# --- a brute force, written independently ---------------------------------------------------------------------


def brute_force_iou(maps, thresholds, labels, n_concepts):
    """IoU (K, C) from full activation maps (N, K, h, w): every map upsampled, thresholded, compared by numpy."""
    size = labels.shape[-2:]
    regions = (F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
               > thresholds[None, :, None, None]).numpy()                                # (N, K, H, W)
    iou = np.zeros((maps.shape[1], n_concepts))
    for c in range(n_concepts):
        concept = (labels.numpy() == c).any(axis=1)                                      # (N, H, W)
        for k in range(maps.shape[1]):
            both = np.logical_and(regions[:, k], concept).sum()
            either = np.logical_or(regions[:, k], concept).sum()
            iou[k, c] = both / either if either else 0.0
    return iou


def numpy_thresholds(maps, quantile):
    values = maps.transpose(0, 1).flatten(1).double().numpy()                          # (K, N*h*w)
    return np.quantile(values, 1 - quantile, axis=1)


@pytest.mark.parametrize("layers", [["features.relu2", "features.relu5"], ["features.relu1"]])
def test_iou_equals_a_brute_force_on_the_course_model(course, rendered, layers):
    concepts = course_concepts(rendered)
    with capture_activations(course, layers) as acts, torch.no_grad():
        course(rendered.images)
    before = fingerprint(course)
    results = dissect_layers(course, rendered.images, layers, concepts, quantile=0.02, batch_size=7,
                             show_progress=False)
    assert_unchanged(course, before)
    for result, layer in zip(results, layers):
        maps = acts[layer]
        np.testing.assert_allclose(result.thresholds.numpy(), numpy_thresholds(maps, 0.02), rtol=1e-5, atol=1e-7)
        expected = brute_force_iou(maps, result.thresholds, concepts.labels.long(), len(concepts.names))
        np.testing.assert_allclose(result.iou.numpy(), expected, atol=1e-6)
        assert result.layer == layer and result.n_sampled == result.n_values == 24 * maps.shape[2] * maps.shape[3]
    # any batch size gives the same tallies
    again = dissect_layers(course, rendered.images, layers, concepts, quantile=0.02, batch_size=24,
                           show_progress=False)
    for first, second in zip(results, again):
        assert torch.equal(first.iou, second.iou) and first.detected == second.detected


@pytest.mark.parametrize("mask_size", [(5, 5), (12, 12), (7, 21)])
def test_maps_larger_or_smaller_than_the_masks(mask_size):
    """A 3x3 convolution on 12x12 or 12x36 images: maps of 12x12 (or 12x36) against masks of another size."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
    width = 36 if mask_size == (7, 21) else 12
    model = plain_model(net, None)
    images = torch.rand(9, 3, 12, width)
    labels = torch.randint(-1, 2, (9, 2, *mask_size), generator=torch.Generator().manual_seed(1))
    labels[:, 1] = torch.where(labels[:, 1] >= 0, labels[:, 1] + 2, -1)              # kind "two": concepts 2, 3
    labels = labels.to(torch.int16)
    concepts = Concepts(("p", "q", "r", "s"), ("one", "one", "two", "two"), labels)
    result = dissect(model, images, "1", concepts, quantile=0.05, batch_size=4)
    with torch.no_grad():
        maps = net(images)
    np.testing.assert_allclose(result.thresholds.numpy(), numpy_thresholds(maps, 0.05), rtol=1e-5)
    expected = brute_force_iou(maps, result.thresholds, labels.long(), 4)
    np.testing.assert_allclose(result.iou.numpy(), expected, atol=1e-6)
    assert expected.max() > 0


# --- pass 1: the quantile ------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantile", [0.005, 0.05, 0.5, 0.99])
def test_thresholds_are_numpys_quantile_of_every_value(course, rendered, quantile):
    layers = ["features.relu1", "features.relu4"]
    with capture_activations(course, layers) as acts, torch.no_grad():
        course(rendered.images)
    thresholds = activation_thresholds(course, rendered.images, layers, quantile=quantile, batch_size=5,
                                       show_progress=False)
    for layer, found in zip(layers, thresholds):
        np.testing.assert_allclose(found.numpy(), numpy_thresholds(acts[layer], quantile), rtol=1e-5, atol=1e-7)


def test_a_sampled_quantile_stays_within_its_stated_error(course, rendered):
    """Past max_kept the quantile is exact on a sample; the share of all values above it then has the standard
    deviation sqrt(q (1 - q) / n_sampled) of a sampled proportion: every unit within four of them."""
    layer, quantile = "features.relu1", 0.05
    concepts = course_concepts(rendered)
    result = dissect(course, rendered.images, layer, concepts, quantile=quantile, max_kept=32 * 150, seed=2)
    assert result.n_sampled < result.n_values / 4
    with capture_activations(course, layer) as acts, torch.no_grad():
        course(rendered.images)
    values = acts[layer].transpose(0, 1).flatten(1)
    above = (values > result.thresholds[:, None]).double().mean(1)
    sd = math.sqrt(quantile * (1 - quantile) / result.n_sampled)
    assert (above - quantile).abs().max() < 4 * sd, ((above - quantile).abs().max(), sd)
    assert (above - quantile).abs().max() > 0                     # it is a sample: not exact


# --- the course's concepts ----------------------------------------------------------------------------------


def test_colour_bins_name_the_six_hue_sextants():
    primaries = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1], [0.9, 0.1, 0.2], [0.5, 0.45, 0.9]]
    assert [COLOUR_NAMES[i] for i in colour_bins(torch.tensor(primaries))] == [
        "red", "yellow", "green", "cyan", "blue", "magenta", "red", "blue"]


def test_course_concepts_label_the_object_and_its_background(rendered):
    concepts = course_concepts(rendered)
    assert concepts.names == CLASSES + COLOUR_NAMES + ("astronaut", "flower", "gravel")
    assert concepts.kinds.count("shape") == 8 and concepts.kinds.count("colour") == 6
    shape, colour, background = concepts.labels.long().unbind(1)
    masks = rendered.masks
    assert torch.equal(shape >= 0, masks) and torch.equal(colour >= 0, masks) and torch.equal(background >= 0, ~masks)
    assert torch.equal(shape.amax((1, 2)), rendered.labels)
    assert torch.equal(colour.amax((1, 2)) - 8, colour_bins(rendered.colours))
    assert torch.equal(background.amax((1, 2)) - 14, rendered.backgrounds)
    half = course_concepts(rendered, size=(32, 32))
    assert half.size == (32, 32) and torch.equal(half.labels, concepts.labels[..., ::2, ::2])


@pytest.mark.parametrize("n_concepts", [5, 400])     # 6**3 combinations numbered by a table; 401**3 by sorting
def test_each_pixels_combination_holds_exactly_its_labels(n_concepts):
    generator = torch.Generator().manual_seed(2)
    labels = torch.randint(-1, n_concepts // 3, (6, 3, 5, 7), generator=generator)
    labels = torch.where(labels >= 0, labels + torch.arange(3)[None, :, None, None] * (n_concepts // 3), -1)
    concepts = Concepts(tuple(f"c{i}" for i in range(n_concepts)), ("k",) * n_concepts, labels.to(torch.int16))
    one_hot = torch.zeros(6, 5 * 7, n_concepts + 1, dtype=torch.float64)
    one_hot.scatter_(2, labels.flatten(2).transpose(1, 2) + 1, 1)          # column 0: "none"
    held = concepts.combination_concepts[concepts.pixel_combinations.long()]
    assert torch.equal(held, one_hot[..., 1:])
    assert len(concepts.combination_concepts) == len(torch.unique(labels.flatten(2).transpose(1, 2).reshape(-1, 3),
                                                                  dim=0))
    assert torch.equal(concepts.areas(), one_hot[..., 1:].sum((0, 1)))


def test_unit_regions_give_the_iou_that_dissection_counted(course, rendered):
    concepts = course_concepts(rendered)
    result = dissect(course, rendered.images, "features.relu5", concepts, quantile=0.02)
    unit = int(result.best_iou.argmax())
    concept = int(result.iou[unit].argmax())
    regions = unit_regions(course, rendered.images, result, unit)
    assert regions.sum() == result.areas[unit]
    shown = (concepts.labels == concept).any(1)
    assert (regions & shown).sum() / (regions | shown).sum() == pytest.approx(result.iou[unit, concept].item())


def test_pictures_are_figures(course, rendered):
    concepts = course_concepts(rendered)
    results = dissect_layers(course, rendered.images, ["features.relu4", "features.relu5"], concepts, quantile=0.02)
    examples = detector_examples(course, rendered.images, results[1], [0, 3], k=3)
    assert examples.image_index.shape == (2, 3) and examples.regions.shape == (2, 3, 64, 64)
    assert examples.titles[0].startswith("unit 0: ")
    for fig in (show_detectors(rendered.images, examples, concept_masks=rendered.masks),
                show_detector_counts({"trained": results, "again": results})):
        assert isinstance(fig, matplotlib.figure.Figure)
        matplotlib.pyplot.close(fig)


def test_bar_labels_are_the_shortest_endings_that_tell_the_layers_apart():
    from vizlib.dissection import _short_names
    assert _short_names(["features.relu1", "features.relu5"]) == ["relu1", "relu5"]
    assert _short_names(["features.12", "classifier.1"]) == ["features.12", "classifier.1"]
    assert _short_names(["features.stem.relu", "features.stage2", "features.head.relu"]) == [
        "stem.relu", "stage2", "head.relu"]


# --- bad input ----------------------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error_and_leaves_the_model_as_found(course, rendered):
    concepts = course_concepts(rendered)
    images = rendered.images
    before = fingerprint(course)
    for quantile in (0, 1, -0.1, 1.5, 0.0):
        with pytest.raises(ValueError, match="quantile must lie strictly between 0 and 1"):
            dissect(course, images, "features.relu5", concepts, quantile=quantile)
        with pytest.raises(ValueError, match="quantile must lie strictly between 0 and 1"):
            activation_thresholds(course, images, ["features.relu5"], quantile=quantile)
    with pytest.raises(TypeError, match="quantile must be a number"):
        dissect(course, images, "features.relu5", concepts, quantile="0.005")
    with pytest.raises(ValueError, match="iou_threshold must lie strictly between 0 and 1"):
        dissect(course, images, "features.relu5", concepts, iou_threshold=4)
    with pytest.raises(ValueError, match="the concept masks .* do not match the images"):
        dissect(course, images[:20], "features.relu5", concepts)                # 24 sets of masks, 20 images
    wide = Concepts(concepts.names, concepts.kinds, concepts.labels[..., :32])
    with pytest.raises(ValueError, match="at the images' aspect ratio"):
        dissect(course, images, "features.relu5", wide)
    with pytest.raises(ValueError, match="not activation maps"):
        dissect(course, images, "classifier.fc1", concepts)
    with pytest.raises(ValueError, match="unknown layer"):
        dissect(course, images, "features.relu9", concepts)
    with pytest.raises(TypeError, match="concepts must be a vizlib.dissection.Concepts"):
        dissect(course, images, "features.relu5", rendered.masks)
    with pytest.raises(ValueError, match="one thresholds tensor per layer"):
        dissect_layers(course, images, ["features.relu4", "features.relu5"], concepts, thresholds=[torch.zeros(128)])
    assert_unchanged(course, before)
    with pytest.raises(ValueError, match=r"between -1 \(none\) and 16"):
        Concepts(concepts.names, concepts.kinds, concepts.labels + 3)
    with pytest.raises(TypeError, match="integer concept indices"):
        Concepts(concepts.names, concepts.kinds, concepts.labels.float())
    with pytest.raises(ValueError, match=r"tensor \(N, S, h, w\)"):
        Concepts(concepts.names, concepts.kinds, concepts.labels[:, 0])
    with pytest.raises(ValueError, match="at least one label map"):
        Concepts(concepts.names, concepts.kinds, concepts.labels[:, :0])
    with pytest.raises(ValueError, match=r"more than one label map: \['red'\]"):
        red_shapes = torch.full_like(concepts.labels[:, :1], 8)                 # "red" in the shape map too
        Concepts(concepts.names, concepts.kinds, torch.cat([red_shapes, concepts.labels[:, 1:]], 1))
    with pytest.raises(ValueError, match="unique concept names"):
        Concepts(("a", "a"), ("k", "k"), torch.zeros(1, 1, 2, 2, dtype=torch.long))
