"""Images for a model: the course dataset, Imagenette, or the offline photographs.

`images_for_model` is how a notebook gets images that suit whichever model it
runs on. Imagenette (10 easy ImageNet classes, 160 px) is there for users who
ran `make download`, which fetches it through torchvision into VIZLIB_CACHE
(default ~/.cache/vizlib); its labels are ImageNet class indices.
"""

import torch
import torchvision

from vizlib import config
from vizlib.course_data import make_shapes
from vizlib.images import LabelledImages, centre_crop_resize, load_sample_image, to_image_tensor
from vizlib.models import DOWNLOAD_COMMAND, WeightsNotAvailableError
from vizlib.wrapper import as_viz_model

# Every colour photograph scikit-image and scikit-learn ship that loads offline (skimage's `cat` is
# `chelsea` again; its eagle, lily and skin need a download): scenes an ImageNet model has classes
# for first, then a telescope, a microscope and a fundus camera's pictures.
PHOTOGRAPHS = ("chelsea", "coffee", "rocket", "astronaut", "china", "flower", "stereo_motorcycle",
               "hubble_deep_field", "immunohistochemistry", "retina")


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
        return centre_crop_resize(to_image_tensor(image), self.size)[0], self.imagenet_index[label]


def _crop_plan(n, size, seed):
    """(photograph index, top, left) per image: the photographs whole first (top None), then seeded crops."""
    plan = [(index, None, None) for index in range(min(n, len(PHOTOGRAPHS)))]
    generator = torch.Generator().manual_seed(seed)
    while len(plan) < n:
        source = int(torch.randint(len(PHOTOGRAPHS), (1,), generator=generator))
        top, left = torch.randint(size + 1, (2,), generator=generator).tolist()
        plan.append((source, top, left))
    return plan


def photograph_crops(n, size, seed=0):
    """`n` images (n, 3, size, size) from the offline photographs.

    The photographs centre-cropped first; past them, seeded random crops of them at twice the scale.
    """
    plan = _crop_plan(n, size, seed)
    if not plan:
        return torch.zeros(0, 3, size, size)
    larger = {source: load_sample_image(PHOTOGRAPHS[source], size=2 * size)
              for source, top, _ in plan if top is not None}
    return torch.cat([
        load_sample_image(PHOTOGRAPHS[source], size=size) if top is None
        else larger[source][..., top:top + size, left:left + size]
        for source, top, left in plan
    ])


def photograph_sources(n, size, seed=0):
    """Which photograph (an index into PHOTOGRAPHS) each image of `photograph_crops(n, size, seed)` came from,
    without loading any: with only ten photographs most crops share one, and a notebook counts or leaves out
    matches that come from the query's own photograph."""
    return torch.tensor([source for source, _, _ in _crop_plan(n, size, seed)], dtype=torch.long)


def images_for_model(model, n, *, seed=0, split="held_out"):
    """`n` images suited to `model`: `LabelledImages`, whose labels or masks are None where unknown.

    - the course model: the course dataset's `split`, with labels and object masks;
    - an ImageNet model: Imagenette validation images when downloaded (ImageNet labels,
      no masks), else the offline photographs (no labels), at the model's input size.
    """
    model = as_viz_model(model)   # a bare module: input size 224 (vizlib.wrapper)
    if model.name == "course":
        return make_shapes(n, split, seed)
    try:
        data = Imagenette("val", size=model.input_size)
    except DataNotAvailableError:
        return LabelledImages(photograph_crops(n, model.input_size, seed))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    items = [data[int(i)] for i in order]
    size = model.input_size
    images = torch.stack([image for image, _ in items]) if items else torch.zeros(0, 3, size, size)
    return LabelledImages(images, torch.tensor([label for _, label in items], dtype=torch.long))
