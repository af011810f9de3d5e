import numpy as np
import pytest
import torch
from PIL import Image

from vizlib.imagenette import DataNotAvailableError, Imagenette

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
