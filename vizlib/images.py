"""Images at the edge: the one place where pixels from elsewhere become course images.

A course image is a float tensor of shape (N, 3, H, W), RGB, values in [0, 1].
`to_image_tensor` converts PIL images, numpy arrays and uint8 tensors into that;
`check_images` is what every model and technique uses to refuse anything else. `GREY` and `noise_like`
are the two neutral images the techniques start from, fill with or compare against.
"""

import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

GREY = 0.5   # mid-grey: start images, fills outside an image, the grey baseline


def noise_like(images, seed=0):
    """Seeded uniform noise in [0, 1] with the images' shape, dtype and device (the same numbers on any device)."""
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed), dtype=images.dtype)
    return noise.to(images.device)


# Images shipped inside scikit-image and scikit-learn, so they work offline.
_SKIMAGE_NAMES = (
    "astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "coins", "moon", "clock", "colorwheel",
    "retina", "stereo_motorcycle",
)
_SKLEARN_NAMES = ("china", "flower")
SAMPLE_IMAGES = tuple(sorted(_SKIMAGE_NAMES + _SKLEARN_NAMES))

_RANGE_TOLERANCE = 1e-4

# True while a public call runs whose inputs were checked at its entry (vizlib.wrapper.checks_inputs)
_VALUES_CHECKED = ContextVar("vizlib_values_checked", default=False)


@contextmanager
def values_checked():
    """Inside the block, `check_images` checks type and shape but skips its pass over the values.

    A public call checks its inputs' values once at its entry; what vizlib derives from them
    (chunks, noisy or occluded copies, optimisation steps) is clamped into [0, 1] by construction,
    so checking every intermediate batch again would only repeat a full pass over the pixels.
    """
    token = _VALUES_CHECKED.set(True)
    try:
        yield
    finally:
        _VALUES_CHECKED.reset(token)


def check_images(images, *, name="images"):
    """Raise a clear error unless `images` is a float (N, 3, H, W) tensor, N >= 1, finite, in [0, 1].

    One rule for an empty batch everywhere: it is refused here, at every technique's entry, rather than
    answered with an empty result by some techniques and an error deep inside by others.

    The values are read in one pass (skipped inside `values_checked`).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor of shape (N, 3, H, W) in [0, 1], got "
            f"{type(images).__name__}; convert with vizlib.images.to_image_tensor"
        )
    if images.dim() != 4:
        hint = " (add a batch dimension with images.unsqueeze(0))" if images.dim() == 3 else ""
        raise ValueError(
            f"{name}: expected 4 dimensions (N, 3, H, W), got shape {tuple(images.shape)}{hint}"
        )
    if not images.is_floating_point():
        raise TypeError(
            f"{name}: expected a float tensor with values in [0, 1], got dtype {images.dtype}; "
            "convert with vizlib.images.to_image_tensor, which divides uint8 by 255"
        )
    if images.shape[1] != 3:
        raise ValueError(
            f"{name}: expected 3 colour channels (RGB) in dimension 1, got shape "
            f"{tuple(images.shape)}; repeat a greyscale channel with images.expand(-1, 3, -1, -1)"
        )
    if not images.numel():
        raise ValueError(f"{name}: the batch is empty, shape {tuple(images.shape)}; pass at least one image")
    if not _VALUES_CHECKED.get():
        low, high = torch.stack(torch.aminmax(images.detach())).tolist()  # NaN anywhere makes both NaN
        if math.isnan(low):
            raise ValueError(f"{name}: expected values in [0, 1], got NaN (not a number) in some pixels")
        if math.isinf(low) or math.isinf(high):
            raise ValueError(f"{name}: expected values in [0, 1], got infinite values in some pixels")
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            hint = " (it looks like 0-255: divide by 255)" if high > 2 else ""
            raise ValueError(f"{name}: expected values in [0, 1], got [{low:.4g}, {high:.4g}]{hint}")
    return images


def to_image_tensor(image):
    """Convert a PIL image, numpy array or tensor into a course image (N, 3, H, W).

    Accepted: PIL images; numpy arrays (H, W), (H, W, C) or (N, H, W, C), uint8 or
    bool or float in [0, 1]; tensors (3, H, W) or (N, 3, H, W), uint8 or float in
    [0, 1]. uint8 is divided by 255; greyscale repeats its channel; an alpha channel
    is dropped. Floats outside [0, 1] are an error, never rescaled silently.
    """
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype == bool:
            array = array.astype(np.float32)
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"expected a numpy image (H, W), (H, W, C) or (N, H, W, C) with C in 1, 3, 4; "
                f"got shape {image.shape}"
            )
        tensor = torch.from_numpy(np.array(array[..., :3])).permute(0, 3, 1, 2)
    elif isinstance(image, torch.Tensor):
        tensor = image.unsqueeze(0) if image.dim() == 3 else image
    else:
        raise TypeError(f"cannot make an image from {type(image).__name__}")
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
    elif tensor.is_floating_point():
        tensor = tensor.float()
    else:
        raise TypeError(f"expected uint8, bool or float pixels, got {tensor.dtype}")
    if tensor.dim() == 4 and tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    return check_images(tensor.contiguous())


def resize(images, size):
    """Resize course images; `size` is an int (square) or (H, W). Antialiased bilinear."""
    check_images(images)
    shape = (size, size) if isinstance(size, int) else tuple(size)
    out = F.interpolate(images, size=shape, mode="bilinear", antialias=True, align_corners=False)
    return out.clamp(0, 1)


def centre_crop_resize(images, size):
    """Resize the short side to `size`, then cut the central size x size square."""
    check_images(images)
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    images = resize(images, (new_h, new_w))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return images[..., top:top + size, left:left + size]


def _raw_sample(name):
    if name in _SKLEARN_NAMES:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    image = getattr(skimage.data, name)()
    return image[0] if isinstance(image, tuple) else image     # stereo_motorcycle: (left, right, disparity)


def load_sample_image(name, size=None):
    """One of the images shipped with scikit-image / scikit-learn, as (1, 3, H, W).

    `size=None` keeps the original resolution; an int resizes the short side and
    cuts the central square; a (H, W) pair resizes to exactly that. Greyscale
    images (camera, brick, grass, gravel, coins, moon, clock) come back as RGB
    with the grey channel repeated three times.
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; available: {', '.join(SAMPLE_IMAGES)}")
    image = to_image_tensor(_raw_sample(name))
    if size is None:
        return image
    if isinstance(size, int):
        return centre_crop_resize(image, size)
    return resize(image, size)


def sample_crop(name, size, box=None):
    """A square piece box = (top, left, side) of an offline image, resized to (1, 3, size, size).

    box=None takes the largest square at the top left. The texture and style samples of
    notebooks 12 to 14 are cut this way.
    """
    image = load_sample_image(name)
    height, width = image.shape[-2:]
    top, left, side = (0, 0, min(height, width)) if box is None else box
    if not (0 <= top and 0 <= left and side > 0 and top + side <= height and left + side <= width):
        raise ValueError(f"crop {box} does not fit in {name} ({height}x{width})")
    return resize(image[..., top:top + side, left:left + side], size)


def to_numpy_image(image):
    """A single course image (3, H, W) or (1, 3, H, W) as an (H, W, 3) numpy array for plotting."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    check_images(image.unsqueeze(0))
    return image.detach().cpu().permute(1, 2, 0).numpy()


@dataclass(frozen=True)
class LabelledImages:
    """Images with what is known about them: a data source's result.

    It also unpacks, `images, labels, masks = ...`, in the order of a torchvision dataset's
    items, so the common idiom keeps working; the fields say what each part is.
    """

    images: torch.Tensor          # (N, 3, H, W) in [0, 1]
    labels: torch.Tensor = None   # (N,) class indices, or None where unknown
    masks: torch.Tensor = None    # (N, H, W) bool object masks, or None where unknown

    def __iter__(self):
        return iter((self.images, self.labels, self.masks))
