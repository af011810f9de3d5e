import numpy as np
import pytest
import torch
from PIL import Image

from vizlib import config
from vizlib.datasets import (
    PHOTOGRAPHS, DataNotAvailableError, Imagenette, images_for_model, photograph_crops, photograph_sources,
)
from vizlib.images import load_sample_image
from vizlib.models import random_imagenet_model

# ImageNet class indices of two Imagenette classes (from the ImageNet class list)
TENCH, SPRINGER = ("n01440764", 0), ("n02102040", 217)


def make_tiny_imagenette(root):
    """Two classes, one image each, laid out as torchvision's Imagenette expects."""
    for (wnid, _), value in ((TENCH, 30), (SPRINGER, 200)):
        folder = root / "imagenette2-160" / "val" / wnid
        folder.mkdir(parents=True)
        Image.fromarray(np.full((160, 213, 3), value, np.uint8)).save(folder / f"{wnid}_1.JPEG")
    return root


def test_loader_reads_the_torchvision_layout(tmp_path):
    data = Imagenette("val", root=make_tiny_imagenette(tmp_path), size=128)
    assert len(data) == 2 and data.class_names == ("tench", "English springer")
    (first, label_a), (second, label_b) = data[0], data[1]
    assert first.shape == (3, 128, 128) and first.dtype == torch.float32
    assert {label_a, label_b} == {TENCH[1], SPRINGER[1]}
    brightness = {label_a: first.mean().item(), label_b: second.mean().item()}
    assert brightness[TENCH[1]] == pytest.approx(30 / 255, abs=0.02)


def test_missing_dataset_names_the_download_command(tmp_path):
    with pytest.raises(DataNotAvailableError, match="make download"):
        Imagenette("val", root=tmp_path)


def test_images_for_the_course_model_come_with_labels_and_masks(course):
    images, labels, masks = images_for_model(course, 5, seed=2)
    assert images.shape == (5, 3, 64, 64) and labels.shape == (5,) and masks.shape == (5, 64, 64)


def test_imagenet_models_get_photographs_offline_and_imagenette_when_present(tmp_path, monkeypatch):
    model = random_imagenet_model("squeezenet1_1")
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "empty")
    n = len(PHOTOGRAPHS) + 2
    images, labels, masks = images_for_model(model, n, seed=0)
    assert images.shape == (n, 3, 224, 224) and labels is None and masks is None
    assert torch.equal(images[:1], load_sample_image(PHOTOGRAPHS[0], size=224))
    assert not torch.equal(images[-2], images[-1])  # random crops beyond the photographs themselves

    monkeypatch.setattr(config, "CACHE_DIR", make_tiny_imagenette(tmp_path / "data"))
    images, labels, masks = images_for_model(model, 2, seed=0)
    assert images.shape == (2, 3, 224, 224) and sorted(labels.tolist()) == [TENCH[1], SPRINGER[1]]


def test_every_offline_photograph_is_in_colour_and_each_crop_knows_its_photograph():
    for name in PHOTOGRAPHS:
        image = load_sample_image(name, size=32)
        assert (image[:, 0] - image[:, 1]).abs().mean() > 0.01, f"{name} is grey"
    n, size = len(PHOTOGRAPHS) + 6, 40
    images, sources = photograph_crops(n, size, seed=3), photograph_sources(n, size, seed=3)
    assert sources[:len(PHOTOGRAPHS)].tolist() == list(range(len(PHOTOGRAPHS)))
    for image, source in zip(images[len(PHOTOGRAPHS):], sources[len(PHOTOGRAPHS):]):
        # brute force: the crop is some size x size window of its photograph at twice the scale
        photo = load_sample_image(PHOTOGRAPHS[source], size=2 * size)[0]
        windows = photo.unfold(1, size, 1).unfold(2, size, 1)         # (3, rows, cols, size, size)
        errors = (windows - image[:, None, None]).abs().amax(dim=(0, 3, 4))
        assert errors.min() == 0
