"""Imagenette (10 easy ImageNet classes, 160 px) for users who have downloaded it.

`make download` fetches it through torchvision into VIZLIB_CACHE (default
~/.cache/vizlib). Labels are ImageNet class indices, so an ImageNet model's
prediction can be compared with them directly.
"""

import torch
import torchvision

from vizlib import config
from vizlib.images import center_crop_resize, to_image_tensor
from vizlib.models import DOWNLOAD_COMMAND, WeightsNotAvailableError


class DataNotAvailableError(WeightsNotAvailableError):
    """A dataset that must be downloaded first is not on this machine."""


def _imagenet_categories():
    return torchvision.models.get_model_weights("squeezenet1_1").DEFAULT.meta["categories"]


class Imagenette(torch.utils.data.Dataset):
    """Imagenette at 160 px: items are (image (3, size, size) in [0, 1], ImageNet class index)."""

    def __init__(self, split="val", *, root=None, size=160, download=False):
        root = config.CACHE_DIR if root is None else root
        try:
            self._data = torchvision.datasets.Imagenette(root, split=split, size="160px", download=download)
        except (RuntimeError, FileNotFoundError) as error:
            raise DataNotAvailableError(
                f"Imagenette is not in {root}. Download it once with `{DOWNLOAD_COMMAND}` (needs internet)."
            ) from error
        categories = _imagenet_categories()
        self.size = size
        self.class_names = tuple(names[0] for names in self._data.classes)
        self.imagenet_index = tuple(categories.index(name) for name in self.class_names)

    def __len__(self):
        return len(self._data)

    def __getitem__(self, index):
        image, label = self._data[index]
        return center_crop_resize(to_image_tensor(image), self.size)[0], self.imagenet_index[label]
