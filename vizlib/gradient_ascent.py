"""Gradient ascent: pictures of what a class or a unit responds to (Simonyan et al. 2014; Yosinski et al. 2015).

Start from a nearly grey image and change its pixels to raise one number:

- a class score minus an L2 penalty on the image (Simonyan et al. 2014): `class_visualisation`;
- the activation of one channel of an intermediate layer (its mean over positions), or of
  one neuron (one channel at one position): `unit_visualisation`.

Plain ascent finds high-frequency patterns that raise the number without looking like
anything. Image regularisers turn them into pictures, all run by the shared loop
`vizlib.optim.optimise_image`: random jitter (DeepDream, Mordvintsev et al. 2015) and the
four of Yosinski et al. (2015): L2 decay (here a penalty towards grey), a periodic Gaussian
blur, clipping pixels of small norm (`clip_small_values`) and clipping pixels of small
contribution (`clip_small_contributions`); the two clippings run after each step as the
loop's callback.

The classic hyperparameters (CS231n: normalised 224-px inputs, L2 weight 1e-3, step 25,
jitter 16 px, blur sigma 0.5 every 10 steps) do not carry over to course images. Pixels
here live in [0, 1], where gradients are 1/std (about 4x) larger than in normalised units,
and an L2 penalty on the pixels themselves would pull every pixel to black; so the penalty
here pulls towards mid-grey. `settings_for(model)` gives values retuned for [0, 1] pixels
and scaled to the model's input size (see its docstring).

Two measurements on what the optimisation did *not* see: `transform_robustness` (does the
class survive random shifts and rescalings?) and `high_frequency_share` (how much of an
image's spectral power lies at high spatial frequencies).
"""

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from vizlib.arguments import check_classes, resolve_classes
from vizlib.counts import check_index, check_positive_int
from vizlib.hooks import forward_to, output_shapes
from vizlib.filters import low_frequency_mask
from vizlib.images import GREY, check_images
from vizlib.layers import layer_for
from vizlib.optim import optimise_image
from vizlib.wrapper import as_viz_model, checks_inputs, get_layer

OBJECTIVES = ("class", "unit")


@dataclass(frozen=True)
class AscentSettings:
    """Hyperparameters of one gradient-ascent run; lengths in pixels, pixel values in [0, 1]."""

    steps: int = 200
    lr: float = 0.05                # Adam step size in pixel-value units
    l2: float = 0.0                 # weight of ||image - grey||^2 (summed over the image's pixels)
    max_jitter: int = 0             # random roll of up to this many pixels before each step
    blur_every: int = 0             # Gaussian blur every this many steps (0: never)
    blur_sigma: float = 0.0         # its standard deviation in pixels
    value_percentile: float = 0.0   # after each step, pixels closer to grey than this percentile become grey
    contribution_percentile: float = 0.0  # after each step, pixels of smaller contribution become grey
    optimizer: str = "adam"

    def replace(self, **changes):
        return replace(self, **changes)


def settings_for(model, *, objective="class", regularised=True, **changes):
    """Hyperparameters retuned for pixels in [0, 1] and scaled to `model.input_size`.

    Tuned by eye and by the notebook's measurements on the 64-px course model:
    Adam with step 0.05, 200 steps; L2 weight 0.1 for class scores (which reach hundreds)
    and 0.003 for channel means (tens); jitter 1/14 of the size (5 px; 16 px at 224 as in
    CS231n); blur sigma 0.5 px every 4 steps; the 10% of pixels closest to grey and the 20%
    of smallest contribution set to grey (the first 10% of the latter are mostly the
    same pixels: a grey pixel contributes nothing).
    For other input sizes, lengths (jitter, blur) scale with the size and the L2
    weight with 1/size^2, because a score's gradient spreads over size^2 pixels.
    `regularised=False` keeps optimiser, step size and step count and switches every
    regulariser off: plain gradient ascent, with pixels only clamped into [0, 1].
    Keyword arguments override single values.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    model = as_viz_model(model)   # a bare module: input size 224 (vizlib.wrapper)
    if not regularised:
        return AscentSettings(**changes)
    scale = model.input_size / 64
    settings = AscentSettings(
        l2=(0.1 if objective == "class" else 0.003) / scale**2,
        max_jitter=max(1, round(model.input_size / 14)),
        blur_every=4,
        blur_sigma=0.5 * scale,
        value_percentile=10.0,
        contribution_percentile=20.0,
    )
    return settings.replace(**changes)


def default_layer(model):
    """The layer whose channels the notebook visualises: a late convolutional stage (vizlib.layers)."""
    return layer_for(model, "gradient_ascent")


def start_image(n, size, *, seed=0, noise=0.1, device=None):
    """Mid-grey plus a little Gaussian noise, (n, 3, size, size) in [0, 1]; same seed, same image.

    The noise matters for unit visualisation: a unit that is silent (ReLU at 0) on a
    perfectly flat image has no gradient to climb.
    """
    generator = torch.Generator().manual_seed(seed)
    images = GREY + noise * torch.randn(n, 3, size, size, generator=generator)
    return images.clamp(0, 1).to(device)


def _check_percentile(value, name):
    if not 0 <= value < 100:
        raise ValueError(f"{name} must be in [0, 100), got {value}")


def _below_percentile(values, percentile):
    """(N, H, W) mask of each image's smallest `percentile`% of `values` (N, H, W), ties included."""
    flat = values.flatten(1)
    count = int(percentile / 100 * flat.shape[1])
    if count == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    if flat.device.type == "cpu":  # numpy's selection is several times faster than kthvalue on a CPU
        selected = np.partition(flat.detach().numpy(), count - 1, axis=1)[:, count - 1]
        threshold = torch.from_numpy(selected)
    else:
        threshold = flat.kthvalue(count, dim=1).values
    return values <= threshold.view(-1, 1, 1)


def clip_small_values(images, percentile):
    """Set to grey the pixels whose colour is closest to grey (below `percentile`, per image).

    Yosinski et al.'s "clip pixels with small norm", in [0, 1] space: a pixel's norm is its
    distance from mid-grey over the three colour channels. Returns a new tensor.
    """
    _check_percentile(percentile, "value_percentile")
    if percentile == 0:
        return images
    return images.masked_fill(_small_values(images, percentile), GREY)


def _small_values(images, percentile):
    return _below_percentile((images - GREY).pow(2).sum(1), percentile).unsqueeze(1)


def pixel_contributions(images, grad):
    """|sum over colour channels of (image - grey) * grad|, per pixel: (N, H, W).

    Yosinski et al.'s linear estimate of how much the objective would change if the pixel
    were set to "zero", which for [0, 1] images is mid-grey (the mean of the data in their
    normalised units). `grad` is the objective's gradient with respect to `images`.
    """
    return ((images - GREY) * grad).sum(1).abs()


def clip_small_contributions(images, grad, percentile):
    """Set to grey the pixels whose contribution (`pixel_contributions`) lies below `percentile`, per image.

    Yosinski et al. (2015)'s "clip pixels with small contribution". Returns a new tensor.
    """
    _check_percentile(percentile, "contribution_percentile")
    if percentile == 0:
        return images
    small = _below_percentile(pixel_contributions(images, grad), percentile).unsqueeze(1)
    return images.masked_fill(small, GREY)


def class_objective(model, classes, *, l2=0.0):
    """The loss to minimise: -(score of each image's class - l2 * ||image - grey||^2), summed over images."""
    def objective(images):
        # BEGIN SOLUTION
        scores = model(images).gather(1, classes[:, None].to(images.device)).squeeze(1)
        penalty = (images - GREY).pow(2).flatten(1).sum(1)
        return -(scores - l2 * penalty).sum()
        # END SOLUTION

    return objective


def check_unit(model, layer, channels, position=None, *, image_size=None):
    """Validate a layer, channel indices and an optional (row, col) position; return (name, channels).

    The layer's output shape is found with one forward pass of a grey image. A layer
    with a flat output (N, C), such as a fully connected one, takes channels but no position.
    """
    model = as_viz_model(model)   # a bare module: input size 224 (vizlib.wrapper)
    name, _ = get_layer(model, layer)
    shape = output_shapes(model, [name], size=image_size)[name]
    if len(shape) not in (2, 4):
        raise ValueError(f"layer {name!r} outputs shape {shape}: expected (N, C, H, W) or (N, C)")
    channels = torch.as_tensor(channels).flatten()
    if channels.numel() == 0:
        raise ValueError("no channels given")
    channels = torch.tensor([check_index(c, shape[1], "channel", context=f" (layer {name!r})") for c in channels])
    if position is not None:
        if len(shape) == 2:
            raise ValueError(f"layer {name!r} has no spatial positions (output shape {shape}); use position=None")
        if len(position) != 2:
            raise ValueError(f"position must be (row, col), got {position!r}")
        row, col = position
        if not (0 <= row < shape[2] and 0 <= col < shape[3]):
            raise ValueError(
                f"position {tuple(position)} is outside layer {name!r}'s {shape[2]}x{shape[3]} feature map: "
                f"valid rows 0 to {shape[2] - 1}, columns 0 to {shape[3] - 1}"
            )
    return name, channels


def unit_values(maps, position=None):
    """Each image's value of its unit, (N,): the mean of a channel's map (N, h, w) over positions, its value
    at `position` (row, col), or a flat layer's value (N,) as it is. Notebook 18's objectives read it too."""
    # BEGIN SOLUTION
    if maps.dim() == 1:
        return maps
    if position is None:
        return maps.flatten(1).mean(1)
    return maps[:, position[0], position[1]]
    # END SOLUTION


def unit_objective(model, layer, channels, *, position=None, l2=0.0):
    """The loss to minimise for channel visualisation (mean over positions) or one neuron (`position`).

    Image i drives channel `channels[i]` of `layer`. `layer` must be a valid name (see check_unit).
    """
    def objective(images):
        output = forward_to(model, images, layer)         # the layers after it never run
        maps = output[torch.arange(len(images)), channels.to(images.device)]  # (N, h, w) or (N,)
        # BEGIN SOLUTION
        penalty = (images - GREY).pow(2).flatten(1).sum(1)
        return -(unit_values(maps, position) - l2 * penalty).sum()
        # END SOLUTION

    return objective


def _ascend(model, objective, n, settings, init, seed, desc, show_progress):
    _check_percentile(settings.value_percentile, "value_percentile")
    _check_percentile(settings.contribution_percentile, "contribution_percentile")
    if init is None:
        init = start_image(n, model.input_size, seed=seed, device=model.device)
    check_images(init, name="init")
    if len(init) != n:
        raise ValueError(f"init has {len(init)} images, expected {n} (one per class or channel)")

    def clip(step, images, grad):  # the loop's callback: edits the images in place, without gradient
        # grad is the whole objective's (score and L2 penalty), at the images before the step, as in Yosinski et al.
        images.masked_fill_(_small_values(images, settings.value_percentile), GREY)
        images.copy_(clip_small_contributions(images, grad, settings.contribution_percentile))

    clipping = settings.value_percentile > 0 or settings.contribution_percentile > 0
    return optimise_image(
        objective, init, steps=settings.steps, lr=settings.lr, optimizer=settings.optimizer,
        max_jitter=settings.max_jitter, blur_every=settings.blur_every, blur_sigma=settings.blur_sigma,
        callback=clip if clipping else None, seed=seed, desc=desc,
        show_progress=show_progress,
    )


@checks_inputs("init")
def class_visualisation(model, classes, *, settings=None, init=None, seed=0, show_progress=None):
    """One image per class index in `classes` that the model scores highly for that class.

    `settings` default to `settings_for(model)`; `init` to `start_image(..., seed=seed)`.
    Returns vizlib.optim.OptimisationResult: `images` (N, 3, H, W) in [0, 1] and
    `losses` per step. The same seed gives the same images.
    """
    settings = settings_for(model) if settings is None else settings
    classes = check_classes(model, classes).to(model.device)
    objective = class_objective(model, classes, l2=settings.l2)
    return _ascend(model, objective, len(classes), settings, init, seed, "class visualisation", show_progress)


@checks_inputs("init")
def unit_visualisation(model, layer, channels, *, position=None, settings=None, init=None, seed=0,
                       show_progress=None):
    """One image per index in `channels` that drives that channel of `layer` hard.

    Without `position` the channel's mean activation over the feature map is maximised;
    with `position=(row, col)` only that one neuron's. `settings` default to
    `settings_for(model, objective="unit")`. Returns an OptimisationResult.
    """
    settings = settings_for(model, objective="unit") if settings is None else settings
    size = model.input_size if init is None else init.shape[-1]
    name, channels = check_unit(model, layer, channels, position, image_size=size)
    objective = unit_objective(model, name, channels, position=position, l2=settings.l2)
    return _ascend(model, objective, len(channels), settings, init, seed, f"{name} channels", show_progress)


# ------------------------------------------------------- measurements on what was not optimised

def shift_rescale(images, scale, shift):
    """Rescale images about their centre by `scale` (antialiased) and shift by (dy, dx) pixels.

    The result has the input's size; uncovered borders are mid-grey and whatever moves
    out of the frame is cut off.
    """
    check_images(images)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    height, width = images.shape[-2:]
    new_h, new_w = max(1, round(scale * height)), max(1, round(scale * width))
    resized = images
    if (new_h, new_w) != (height, width):
        resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    dy, dx = (int(round(s)) for s in shift)
    top, left = (height - new_h) // 2 + dy, (width - new_w) // 2 + dx
    out = torch.full_like(images, GREY)
    y0, y1 = max(top, 0), min(top + new_h, height)
    x0, x1 = max(left, 0), min(left + new_w, width)
    if y1 > y0 and x1 > x0:
        out[..., y0:y1, x0:x1] = resized[..., y0 - top:y1 - top, x0 - left:x1 - left]
    return out.clamp(0, 1)


def random_transforms(n, *, max_shift=0.2, scale_range=(0.6, 1.4), seed=0):
    """`n` random (scale, (dy, dx)) pairs: scale uniform in `scale_range`, shifts up to
    `max_shift` of the image size along each axis (as fractions; multiply by the size)."""
    generator = torch.Generator().manual_seed(seed)
    scales = torch.empty(n).uniform_(*scale_range, generator=generator)
    shifts = torch.empty(n, 2).uniform_(-max_shift, max_shift, generator=generator)
    return [(float(s), tuple(float(v) for v in d)) for s, d in zip(scales, shifts)]


@checks_inputs("images")
def transform_robustness(model, images, classes=None, *, n=64, max_shift=0.2, scale_range=(0.6, 1.4), seed=0):
    """Per image, the share of `n` random shift-and-rescale copies still classified as its class.

    classes: None (each image's predicted class), one int for every image, or one per image.
    Every image sees the same `n` transforms (same seed, same transforms), so two sets
    of images can be compared pair by pair.
    """
    n = check_positive_int(n, "n (the number of transforms)")
    classes = resolve_classes(model, images, classes)
    size = images.shape[-1]
    kept = torch.zeros(len(images), device=images.device)
    with torch.no_grad():
        for scale, (dy, dx) in random_transforms(n, max_shift=max_shift, scale_range=scale_range, seed=seed):
            copies = shift_rescale(images, scale, (dy * size, dx * size))
            kept += (model(copies).argmax(1) == classes).float()
    return kept / n


def high_frequency_share(images, cutoff=0.25):
    """Per image, the share of spectral power above `cutoff` cycles per pixel (Nyquist: 0.5).

    The power spectrum is that of each colour channel minus its mean, summed over the
    channels; a coefficient's frequency is its radius sqrt(fy^2 + fx^2), the bins beyond 01's
    `low_frequency_mask`. A flat image has 0.
    """
    check_images(images)
    centred = images - images.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(centred).abs().pow(2).sum(1)                          # (N, H, W)
    high = ~low_frequency_mask(*images.shape[-2:], cutoff, device=images.device)
    return (power * high).sum(dim=(1, 2)) / power.sum(dim=(1, 2)).clamp_min(1e-30)
