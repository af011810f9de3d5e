"""Saliency maps (Simonyan et al. 2014) and SmoothGrad (Smilkov et al. 2017).

A saliency map asks which pixels the class score is most sensitive to: take the
gradient of the *unnormalised* class score (the logit, not the softmax
probability) with respect to the input pixels, take its absolute value, and
keep the largest of the three colour channels at each pixel. One backward pass
per batch gives a map (N, H, W) for every image.

SmoothGrad averages the saliency maps of `n_samples` noisy copies of each image.
The noise is Gaussian with standard deviation `noise_level` times the image's
own pixel range (max - min), as in the paper. Noisy copies are clamped back into
[0, 1], because every course model refuses pixels outside that range: so the
noise is slightly skewed near black and white pixels, and each gradient is taken
at the clamped copy.

To check a map against ground-truth object masks, this module also gives two
scores and two baselines:

- `mask_share`: the share of a map's total mass that falls inside the mask;
- `pointing_game` (Zhang et al. 2016): whether the map's maximum lies inside the mask;
- `centre_bias_maps`: a Gaussian centred in the image, the guess "objects are in the middle";
- `random_maps`: uniform noise, the guess "anywhere".

`roughness` measures how grainy a map is (label-free), and `show_maps` draws
images above rows of maps, with mask outlines.

`attribution_map` is the course's one rule from an attribution to a map, the rule a saliency
map is read by; the scores of 17 and the sanity check of 07 and 17 read every method's output
through it.
"""

import numpy as np
import torch

from vizlib.arguments import DEFAULT_BATCH_SIZE, check_batch_size, resolve_classes
from vizlib.config import progress
from vizlib.counts import check_positive_int
from vizlib.optim import score_gradient
from vizlib.wrapper import checks_inputs


@checks_inputs("images")
def saliency(model, images, classes=None, *, batch_size=DEFAULT_BATCH_SIZE):
    """Saliency maps (N, H, W): max over colour channels of |d score_class / d pixel|.

    classes: None (each image's predicted class), one int for every image, or one
    index per image (e.g. the true labels). The score is the unnormalised class
    score. Images go through the model `batch_size` at a time.
    """
    check_batch_size(batch_size)
    classes = resolve_classes(model, images, classes, batch_size=batch_size)
    maps = []
    for chunk, chunk_classes in zip(images.split(batch_size), classes.split(batch_size)):
        grad = score_gradient(model, chunk, chunk_classes).gradients
        # BEGIN SOLUTION
        maps.append(grad.abs().amax(dim=1))
        # END SOLUTION
    return torch.cat(maps)


def attribution_map(attributions):
    """An attribution as a map (N, H, W), one rule for every method: per pixel, the largest |.| over the
    channels of (N, C, H, W), as a saliency map is read; a map (N, H, W) keeps its positive part, the
    evidence for the class (a signed map's negative evidence is not what a heat map shows)."""
    if attributions.dim() == 4:
        return attributions.abs().amax(1)
    return attributions.clamp_min(0)


def noise_std(images, noise_level):
    """SmoothGrad's noise standard deviation per image (N,): noise_level * (max - min)."""
    flat = images.flatten(1)
    return noise_level * (flat.amax(1) - flat.amin(1))


@checks_inputs("images")
def smoothgrad(
    model, images, classes=None, *, n_samples=25, noise_level=0.15, seed=0,
    batch_size=DEFAULT_BATCH_SIZE, show_progress=None,
):
    """SmoothGrad maps (N, H, W): the mean saliency map of `n_samples` noisy copies of each image.

    Copy s of the batch is `clamp(images + noise_std(images) * z_s, 0, 1)`, where
    z_0, z_1, ... are drawn one after another as `torch.randn(images.shape)` from a
    CPU generator seeded with `seed` (so a seed gives the same noise on every
    device and for every batch size). Several copies go through the model in one
    pass, about `batch_size` images at a time. With classes=None, each image's
    class is the model's prediction on the clean image.
    """
    check_batch_size(batch_size)
    check_positive_int(n_samples, "n_samples")
    if not 0 <= noise_level <= 1:
        raise ValueError(f"noise_level must be between 0 and 1 (a fraction of the pixel range), got {noise_level}")
    classes = resolve_classes(model, images, classes, batch_size=batch_size)
    n = len(images)
    total = images.new_zeros((n, *images.shape[-2:]))
    if n == 0:
        return total
    generator = torch.Generator().manual_seed(seed)
    std = noise_std(images, noise_level).view(1, n, 1, 1, 1)
    per_pass = max(1, batch_size // n)
    for start in progress(range(0, n_samples, per_pass), desc="SmoothGrad", enabled=show_progress, leave=False):
        k = min(per_pass, n_samples - start)
        noise = torch.stack([torch.randn(images.shape, generator=generator) for _ in range(k)])
        # BEGIN SOLUTION
        noisy = (images.unsqueeze(0) + std * noise.to(images.device, images.dtype)).clamp(0, 1)
        maps = saliency(model, noisy.flatten(0, 1), classes.repeat(k), batch_size=batch_size)
        total += maps.view(k, n, *maps.shape[1:]).sum(0)
        # END SOLUTION
    return total / n_samples


# --- scoring a map against an object mask ----------------------------------------------------


def _check_maps_masks(maps, masks):
    if maps.dim() != 3 or masks.shape != maps.shape:
        raise ValueError(
            f"expected maps and masks of the same shape (N, H, W), got {tuple(maps.shape)} and {tuple(masks.shape)}"
        )
    if (maps < 0).any():
        raise ValueError("maps must be non-negative (a saliency map is)")
    return masks.to(device=maps.device, dtype=torch.bool)


def mask_share(maps, masks):
    """Share of each map's total mass inside its mask, (N,); an all-zero map scores 0."""
    masks = _check_maps_masks(maps, masks)
    inside = (maps * masks).flatten(1).sum(1)
    total = maps.flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(total))


def pointing_game(maps, masks):
    """Whether each map's maximum lies inside its mask, (N,) bool (Zhang et al. 2016, no tolerance).

    Ties go to the first maximum in reading order (row by row).
    """
    masks = _check_maps_masks(maps, masks)
    peak = maps.flatten(1).argmax(1)
    return masks.flatten(1).gather(1, peak[:, None]).squeeze(1)


def centre_bias_maps(n, height, width, *, sigma=0.25, device=None):
    """(n, H, W) copies of a Gaussian centred in the image; `sigma` is a fraction of the image size."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2) / (sigma * height)
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2) / (sigma * width)
    gaussian = torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    return gaussian.expand(n, height, width).clone()


def random_maps(n, height, width, *, seed=0):
    """(n, H, W) maps of independent uniform noise, from a generator seeded with `seed`."""
    return torch.rand((n, height, width), generator=torch.Generator().manual_seed(seed))


def roughness(maps):
    """How grainy each map is, (N,): mean |difference| of neighbouring pixels over the map's mean.

    Scale-free (doubling a map leaves it unchanged); 0 for a constant map.
    """
    if maps.dim() != 3:
        raise ValueError(f"expected maps of shape (N, H, W), got {tuple(maps.shape)}")
    across = (maps[..., :, 1:] - maps[..., :, :-1]).abs().flatten(1).mean(1)
    down = (maps[..., 1:, :] - maps[..., :-1, :]).abs().flatten(1).mean(1)
    level = maps.flatten(1).mean(1)
    return torch.where(level > 0, (across + down) / 2 / level.clamp_min(torch.finfo(maps.dtype).tiny), 0.0)


# --- pictures -------------------------------------------------------------------------------


def show_maps(images, maps, masks=None, *, titles=None, cmap="inferno", size=1.8, percentile=99.0, across=False):
    """The images in the top row, then one row per entry of `maps` ({row name: (N, H, W)}); with
    `across=True`, one row per image instead, the image first (wide pictures, for a projector).

    Each map is drawn pixel for pixel, from 0 (dark) to its own `percentile`-th percentile (bright): the brightest
    1% saturate rather than leave every other pixel dark, as pixel attributions are usually drawn (captum's
    `visualize_image_attr` clips 2%); `percentile=100` scales to the maximum;
    where `masks` are given, the object outline is drawn as a thin line on the
    image (yellow) and on every map (cyan), between pixels, hiding none of them.
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from vizlib.images import to_numpy_image
    from vizlib.plotting import FONT_SIZE

    n = len(images)
    if n == 0:
        raise ValueError("no images to show")
    for name, batch in maps.items():
        if len(batch) != n:
            raise ValueError(f"{name}: got {len(batch)} maps for {n} images")
    rows = [("", images)] + list(maps.items())
    if across:
        fig, axes = plt.subplots(n, len(rows), figsize=(size * len(rows), (size + 0.35) * n), squeeze=False)
        axes = axes.T                                    # axes[row of maps, image] either way
    else:
        fig, axes = plt.subplots(len(rows), n, figsize=(size * n, (size + 0.35) * len(rows)), squeeze=False)
    for r, (name, batch) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.axis("off")
            if r == 0:
                ax.imshow(to_numpy_image(images[i]), interpolation="nearest")
                ax.set_title(str(titles[i]) if titles is not None else "", fontsize=FONT_SIZE)
            else:
                values = batch[i].detach().cpu().float().numpy()
                bright = float(np.percentile(values, percentile)) if values.size else 0.0
                ax.imshow(values, cmap=cmap, vmin=0, vmax=max(bright, 1e-30), interpolation="nearest")
                ax.set_title(name, fontsize=FONT_SIZE)
            if masks is not None:
                outline = masks[i].detach().cpu().float().numpy() if hasattr(masks[i], "detach") else masks[i]
                ax.contour(outline, levels=[0.5], colors=["yellow" if r == 0 else "cyan"], linewidths=1.2)
    fig.tight_layout()
    return fig


@checks_inputs("images")
def saliency_explorer(model, images, classes=None, *, max_samples=25, titles=None):
    """A live explorer for a lecture: one image, its saliency or SmoothGrad map, and the controls
    a lecturer reaches for (the image, the method, SmoothGrad's noise level and number of samples).

    Each change recomputes one image's map (`max_samples` forward and backward passes at most).
    Returns the `vizlib.plotting.live_figure` panel.
    """
    import ipywidgets

    from vizlib.plotting import image_picker, live_figure

    max_samples = check_positive_int(max_samples, "max_samples")
    classes = resolve_classes(model, images, classes)
    names, image = image_picker(len(images), titles)
    method = ipywidgets.ToggleButtons(options=["saliency", "SmoothGrad"], value="SmoothGrad", description="method")
    noise = ipywidgets.FloatSlider(value=0.15, min=0.0, max=0.5, step=0.05, description="noise level",
                                   continuous_update=False)
    samples = ipywidgets.IntSlider(value=min(10, max_samples), min=1, max=max_samples, description="samples",
                                   continuous_update=False)

    def draw(image, method, noise_level, samples):
        one, target = images[image:image + 1], classes[image:image + 1]
        if method == "saliency":
            maps, label = saliency(model, one, target), "saliency"
        else:
            maps = smoothgrad(model, one, target, n_samples=samples, noise_level=noise_level, show_progress=False)
            label = f"SmoothGrad, {samples} x {noise_level:.0%} noise"
        return show_maps(one, {label: maps}, titles=[names[image]], size=3.6, across=True)

    return live_figure(draw, image=image, method=method, noise_level=noise, samples=samples)
