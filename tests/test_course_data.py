import math

import pytest
import torch

from vizlib.course_data import (
    AREA_RANGE, CLASSES, HELD_OUT_BACKGROUNDS, IMAGE_SIZE, SPLITS, TRAIN_BACKGROUNDS, CourseShapes,
    _unit_geometry, make_shapes, render_shapes,
)


@pytest.fixture(scope="module")
def sample():
    return make_shapes(512, "train", seed=3)


def test_shapes_and_types(sample):
    images, labels, masks = sample
    assert images.shape == (512, 3, IMAGE_SIZE, IMAGE_SIZE) and images.dtype == torch.float32
    assert labels.shape == (512,) and labels.dtype == torch.int64
    assert masks.shape == (512, IMAGE_SIZE, IMAGE_SIZE) and masks.dtype == torch.bool
    assert images.min() >= 0 and images.max() <= 1


def test_deterministic_by_seed_and_prefix_stable(sample):
    images, labels, masks = sample
    again = make_shapes(300, "train", seed=3)
    assert torch.equal(again.images, images[:300]) and torch.equal(again.labels, labels[:300])
    assert torch.equal(again.masks, masks[:300])
    assert not torch.equal(make_shapes(8, "train", seed=4).images, images[:8])


def test_classes_balanced(sample):
    counts = torch.bincount(sample.labels, minlength=len(CLASSES))
    assert counts.tolist() == [512 // len(CLASSES)] * len(CLASSES)


def test_object_area_within_the_stated_range(sample):
    share = sample.masks.float().mean(dim=(1, 2))
    # anti-aliased edges may round the area up or down by a fraction of the outline
    assert share.min() >= AREA_RANGE[0] * 0.9 and share.max() <= AREA_RANGE[1] * 1.1
    assert share.max() - share.min() > 0.5 * (AREA_RANGE[1] - AREA_RANGE[0])


def test_objects_are_not_always_centred(sample):
    masks = sample.masks.float()
    coords = torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5
    cx = (masks.sum(1) * coords).sum(1) / masks.sum((1, 2))
    cy = (masks.sum(2) * coords).sum(1) / masks.sum((1, 2))
    assert cx.std() > 6 and cy.std() > 6  # pixels
    assert ((cx - 32).abs() > 16).any() and ((cy - 32).abs() > 16).any()


def test_the_object_differs_from_its_surroundings(sample):
    images, _, masks = sample
    m = masks[:, None].float()
    inside = (images * m).sum((2, 3)) / m.sum((2, 3))
    ring = torch.nn.functional.max_pool2d(m, 5, 1, 2) - m  # a band just outside the object
    outside = (images * ring).sum((2, 3)) / ring.sum((2, 3))
    assert (inside - outside).norm(dim=1).median() > 0.2


def test_held_out_backgrounds_were_never_seen_in_training():
    assert not set(TRAIN_BACKGROUNDS) & set(HELD_OUT_BACKGROUNDS)
    train, held_out = make_shapes(64, "train"), make_shapes(64, "held_out")
    assert not torch.equal(train.images, held_out.images)


@pytest.mark.parametrize(
    "shape, area",
    [
        ("disc", math.pi),
        ("ring", math.pi * (1 - 0.55**2)),
        ("square", 1.5**2),
        ("triangle", 3 * math.sqrt(3) / 4),  # equilateral, circumradius 1
        ("cross", 2 * (0.6 * 1.9) - 0.6**2),
    ],
)
def test_unit_shape_areas_match_closed_forms(shape, area):
    assert _unit_geometry(shape)[0] == pytest.approx(area, rel=0.01)


def test_dataset_items_and_bad_arguments():
    data = CourseShapes("held_out", size=10, seed=1)
    image, label, mask = data[9]
    assert len(data) == 10 and image.shape == (3, 64, 64) and 0 <= label < len(CLASSES)
    assert mask.any()
    with pytest.raises(ValueError, match="held_out"):
        make_shapes(4, "test")
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        make_shapes(-1)
    assert make_shapes(0).images.shape == (0, 3, 64, 64)


# Pixel sums of samples 0, 1, 2, 255, 256 and 299 (two chunks), their labels and mask areas, recorded from the
# renderer that trained the shipped course model: rendering must not change, or the model and every notebook's
# numbers would no longer match their data. Sums to 1e-3 of ~5000 allow float rounding across machines only.
RECORDED = {
    ("train", 0): ([5341.874, 5348.052, 4189.083, 5816.247, 7258.003, 3115.765], [1, 3, 5, 7, 3, 4],
                   [502, 382, 248, 700, 394, 690]),
    ("held_out", 5): ([4417.052, 6391.099, 4937.372, 2743.895, 5649.159, 4428.338], [7, 4, 5, 1, 4, 2],
                      [546, 360, 438, 531, 284, 611]),
}


@pytest.mark.parametrize("split, seed", list(RECORDED))
def test_the_rendered_images_are_those_the_course_model_was_trained_on(split, seed):
    sums, labels, areas = RECORDED[(split, seed)]
    images, got_labels, masks = make_shapes(300, split, seed)
    picked = [0, 1, 2, 255, 256, 299]
    assert images[picked].double().sum((1, 2, 3)).tolist() == pytest.approx(sums, abs=2e-3)
    assert got_labels[picked].tolist() == labels
    assert masks[picked].sum((1, 2)).tolist() == areas


def test_render_shapes_adds_colours_and_photographs_to_the_same_samples():
    rendered = render_shapes(300, "held_out", seed=2)
    for mine, plain in zip((rendered.images, rendered.labels, rendered.masks), make_shapes(300, "held_out", seed=2)):
        assert torch.equal(mine, plain)
    assert rendered.colours.shape == (300, 3) and rendered.background_names == HELD_OUT_BACKGROUNDS
    # the object's pixels average to its colour: the shading ramp averages about 1, the noise about 0
    inside = rendered.masks[:, None].float()
    mean = (rendered.images * inside).sum((2, 3)) / inside.sum((2, 3))
    assert (mean - rendered.colours).norm(dim=1).median() < 0.05
    assert torch.bincount(rendered.backgrounds, minlength=3).min() > 60       # each photograph drawn about a third
    assert render_shapes(0).colours.shape == (0, 3)


@pytest.mark.parametrize("split", list(SPLITS))
def test_each_sample_names_its_background_photograph(split):
    """The grey photographs (camera, brick, grass, gravel) give R = G = B away from the object; the others do not."""
    rendered = render_shapes(256, split, seed=4)
    away = torch.nn.functional.max_pool2d(rendered.masks[:, None].float(), 5, 1, 2)[:, 0] == 0
    spread = (rendered.images.amax(1) - rendered.images.amin(1))          # (n, H, W): 0 on grey pixels
    grey = [(spread[i][away[i]].max() == 0).item() for i in range(len(spread))]
    for i, background in enumerate(rendered.backgrounds.tolist()):
        name = rendered.background_names[background]
        assert grey[i] == (name in ("camera", "brick", "grass", "gravel")), (i, name)
