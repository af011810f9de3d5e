"""The course dataset: coloured shapes on natural-image clutter, with object masks.

Each sample is a 64x64 RGB image of one of eight shapes, its label and the
ground-truth mask of the object. Shapes vary in colour (shading and a little
noise included), rotation (full turn), scale (object area 4% to 25% of the
image) and position (anywhere the whole shape fits). Backgrounds are random
crops of the natural images that scikit-image and scikit-learn ship; the
held-out split draws them from images that training never sees, so accuracy
on it measures recognising shapes, not remembering clutter.

Everything is vectorised with numpy: thousands of samples per second on a
laptop CPU. Samples come in chunks of 256, each drawn from its own seed, so the
first k samples of a split are the same whatever its size.

`render_shapes` also says what the renderer chose for each sample: the object's colour
and the photograph its background was cut from (the concepts of notebook 19).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from vizlib.counts import check_int_in_range
from vizlib.images import LabelledImages, load_sample_image

CLASSES = ("disc", "ring", "square", "triangle", "cross", "star", "crescent", "heart")
IMAGE_SIZE = 64
AREA_RANGE = (0.04, 0.25)  # object area as a share of the image
TRAIN_BACKGROUNDS = (
    "coffee", "rocket", "china", "chelsea", "camera", "brick", "grass",
    "hubble_deep_field", "immunohistochemistry",
)
HELD_OUT_BACKGROUNDS = ("astronaut", "flower", "gravel")
SPLITS = {"train": TRAIN_BACKGROUNDS, "held_out": HELD_OUT_BACKGROUNDS}

_CHUNK = 256
_SUPERSAMPLE = 2  # render at 2x and average: soft, anti-aliased edges
_MIN_CONTRAST = 0.35  # RGB distance between object colour and the clutter behind it
_SCALES = (128, 256)  # short side of each background photograph: coarse and fine clutter


def _inside(shape, u, v):
    """Whether unit-frame points (u, v) lie inside `shape` (about radius 1)."""
    r2 = u * u + v * v
    if shape == "disc":
        return r2 < 1.0
    if shape == "ring":
        return (r2 < 1.0) & (r2 > 0.55**2)
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.75
    if shape == "triangle":
        return (v > -0.5) & (v < 1.0 - np.sqrt(3.0) * np.abs(u))
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au < 0.3) & (av < 0.95)) | ((av < 0.3) & (au < 0.95))
    if shape == "star":
        turns = (np.arctan2(v, u) / (2 * np.pi) * 5.0) % 1.0
        spike = np.abs(2.0 * turns - 1.0)  # 1 at the five tips, 0 between them
        return r2 < (0.42 + 0.58 * spike) ** 2
    if shape == "crescent":
        return (r2 < 1.0) & ((u - 0.45) ** 2 + v * v > 0.8**2)
    if shape == "heart":
        x, y = 1.15 * u, 1.15 * v + 0.15
        return (x * x + y * y - 1.0) ** 3 - x * x * y**3 < 0.0
    raise ValueError(f"unknown shape {shape!r}; shapes: {', '.join(CLASSES)}")


@lru_cache(maxsize=None)
def _unit_geometry(shape):
    """Area and bounding radius of a shape in its unit frame, measured on a fine grid."""
    grid = np.linspace(-1.5, 1.5, 601)
    u, v = np.meshgrid(grid, grid)
    inside = _inside(shape, u, v)
    cell = (grid[1] - grid[0]) ** 2
    return inside.sum() * cell, np.sqrt(u[inside] ** 2 + v[inside] ** 2).max()


@lru_cache(maxsize=None)
def _backgrounds(split):
    """The split's background images at two scales (coarse and fine clutter)."""
    images = []
    for name in SPLITS[split]:
        for short_side in _SCALES:
            images.append(load_sample_image(name, size=short_side)[0].numpy())
    return images


def _hsv_to_rgb(h, s, v):
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _render_chunk(split, seed, chunk_index):
    rng = np.random.default_rng([seed, list(SPLITS).index(split), chunk_index])
    n, size = _CHUNK, IMAGE_SIZE

    labels = rng.permutation(np.arange(n) % len(CLASSES))

    # Backgrounds: random crops, flips and a mild brightness/contrast change.
    pool = _backgrounds(split)
    picks = rng.integers(len(pool), size=n)
    backgrounds = np.empty((n, 3, size, size), np.float32)
    for i, pick in enumerate(picks):
        image = pool[pick]
        top = rng.integers(image.shape[1] - size + 1)
        left = rng.integers(image.shape[2] - size + 1)
        crop = image[:, top:top + size, left:left + size]
        backgrounds[i] = crop[:, :, ::-1] if rng.random() < 0.5 else crop
    contrast = rng.uniform(0.7, 1.1, (n, 1, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-0.1, 0.1, (n, 1, 1, 1)).astype(np.float32)
    backgrounds = (backgrounds - 0.5) * contrast + 0.5 + brightness

    # Geometry: area share -> scale; the whole shape stays inside the image.
    area = rng.uniform(*AREA_RANGE, n) * size * size
    unit_area, unit_radius = np.array([_unit_geometry(CLASSES[k]) for k in labels]).T
    scale = np.sqrt(area / unit_area)
    radius = scale * unit_radius
    centre = rng.uniform(radius[:, None], size - radius[:, None], (n, 2))
    angle = rng.uniform(0, 2 * np.pi, n)

    def unit_frame(coords):  # image coordinates -> each shape's own rotated, scaled frame
        dx = coords[None, None, :] - centre[:, 0, None, None]
        dy = coords[None, :, None] - centre[:, 1, None, None]
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        inv = (1.0 / scale)[:, None, None]
        return ((cos * dx + sin * dy) * inv).astype(np.float32), ((cos * dy - sin * dx) * inv).astype(np.float32)

    u, v = unit_frame((np.arange(size * _SUPERSAMPLE, dtype=np.float32) + 0.5) / _SUPERSAMPLE)
    inside = np.zeros(u.shape, bool)
    for k, shape in enumerate(CLASSES):
        rows = labels == k
        inside[rows] = _inside(shape, u[rows], v[rows])
    alpha = inside.reshape(n, size, _SUPERSAMPLE, size, _SUPERSAMPLE).sum(axis=(2, 4), dtype=np.float32)
    alpha /= _SUPERSAMPLE**2
    masks = alpha >= 0.5

    # Colour: the first of eight random colours that stands out from the clutter.
    candidates = _hsv_to_rgb(
        rng.uniform(0, 1, n * 8), rng.uniform(0.3, 1.0, n * 8), rng.uniform(0.3, 1.0, n * 8)
    ).reshape(n, 8, 3)
    behind = (backgrounds * masks[:, None]).sum(axis=(2, 3)) / masks.sum(axis=(1, 2))[:, None]
    distance = np.linalg.norm(candidates - behind[:, None], axis=2)
    good = distance > _MIN_CONTRAST
    choice = np.where(good.any(axis=1), good.argmax(axis=1), distance.argmax(axis=1))
    colour = candidates[np.arange(n), choice]

    # Shading: a linear ramp across the object plus a little pixel noise.
    um, vm = unit_frame(np.arange(size, dtype=np.float32) + 0.5)
    tilt = rng.normal(0, 0.12, (n, 2)).astype(np.float32)
    shade = 1.0 + tilt[:, 0, None, None] * um + tilt[:, 1, None, None] * vm
    noise = 0.03 * rng.standard_normal((n, 3, size, size), dtype=np.float32)
    objects = colour.astype(np.float32)[:, :, None, None] * shade[:, None] + noise

    a = alpha[:, None]
    images = np.clip(backgrounds * (1 - a) + objects * a, 0.0, 1.0).astype(np.float32)
    return images, labels, masks, colour.astype(np.float32), picks // len(_SCALES)


@dataclass(frozen=True)
class RenderedShapes:
    """Samples of the course dataset with what the renderer chose for each of them."""

    images: torch.Tensor        # (n, 3, 64, 64) in [0, 1]
    labels: torch.Tensor        # (n,) shape class, an index into CLASSES
    masks: torch.Tensor         # (n, 64, 64) bool, the object
    colours: torch.Tensor       # (n, 3) the object's RGB colour before shading and noise
    backgrounds: torch.Tensor   # (n,) the background photograph, an index into background_names
    background_names: tuple     # the split's photographs


def render_shapes(n, split="train", seed=0):
    """Render `n` samples of a split with their colours and background photographs: a `RenderedShapes`.

    The images, labels and masks are exactly those of `make_shapes(n, split, seed)`.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    check_int_in_range(n, "n", 0)
    chunks = [_render_chunk(split, seed, c) for c in range(-(-n // _CHUNK))]
    if not chunks:
        chunks = [(np.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32), np.zeros(0, np.int64),
                   np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), bool), np.zeros((0, 3), np.float32), np.zeros(0, np.int64))]
    images, labels, masks, colours, backgrounds = (np.concatenate(parts)[:n] for parts in zip(*chunks))
    return RenderedShapes(
        torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(masks),
        torch.from_numpy(colours), torch.from_numpy(backgrounds.astype(np.int64)), SPLITS[split],
    )


def make_shapes(n, split="train", seed=0):
    """Render `n` samples of a split: `LabelledImages` of images (n, 3, 64, 64), labels (n,), masks (n, 64, 64).

    Deterministic in (split, seed); the classes are balanced within every chunk.
    """
    rendered = render_shapes(n, split, seed)
    return LabelledImages(rendered.images, rendered.labels, rendered.masks)


class CourseShapes(torch.utils.data.Dataset):
    """The course dataset as a torch Dataset: each item is (image, label, mask)."""

    classes = CLASSES

    def __init__(self, split="train", size=1024, seed=0):
        self.split, self.seed = split, seed
        self.images, self.labels, self.masks = make_shapes(size, split, seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index], self.masks[index]

