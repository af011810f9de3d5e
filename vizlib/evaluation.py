"""Which map to trust: attribution methods scored on localisation, faithfulness and sanity.

Every attribution method of the course is a function `method(model, images, classes) -> maps`
that returns (N, H, W) maps, or (N, 3, H, W) attributions that `as_map` turns into maps by the
course's one rule (`vizlib.saliency.attribution_map`: the largest |.| over the colour channels).
Three families of scores, each against baselines that know nothing about the image:

- **localisation** (needs object masks): mask share and the pointing game of 06;
- **faithfulness** (Petsiuk et al. 2018): delete the pixels in the map's order, most
  important first, and watch the class probability fall (*deletion*: the area under the
  curve should be small); or insert them into a blurred copy and watch it rise (*insertion*:
  the area should be large). Deleted pixels become black (0); the blurred copy uses a
  Gaussian of kernel 11 and sigma 5, as the authors' reference code does;
- **sanity** (Adebayo et al. 2018): randomise the network's layers from the top down and
  measure how much each method's map changes (see `vizlib.sanity`).

`score_methods` computes the first two for any model, images, masks and methods, so a reader
can score a method of their own.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF

from vizlib.arguments import DEFAULT_BATCH_SIZE, check_batch_size, resolve_classes
from vizlib.config import progress
from vizlib.counts import check_int_in_range
from vizlib.saliency import attribution_map, mask_share, pointing_game
from vizlib.wrapper import checks_inputs

FILL = 0.0                 # deleted pixels become black (Petsiuk et al. 2018)
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0


def as_map(attributions, n, size):
    """A method's output as non-negative maps (N, H, W) by `attribution_map`: the largest |.| over the colours
    of (N, 3, H, W); (N, H, W) maps keep their positive part (evidence for the class). Anything else, or a
    value that is not finite, is a clear error."""
    if not isinstance(attributions, torch.Tensor):
        raise TypeError(f"a method must return a tensor, got {type(attributions).__name__}")
    if attributions.shape not in ((n, *size), (n, 3, *size)):
        raise ValueError(
            f"a method must return maps (N, H, W) = {(n, *size)} or attributions (N, 3, H, W), "
            f"got {tuple(attributions.shape)}"
        )
    bad = int((~torch.isfinite(attributions)).sum())
    if bad:
        raise ValueError(f"maps must be finite, got {bad} NaN or infinite value(s): they cannot be ranked")
    return attribution_map(attributions.detach().float())


def check_masks(masks, images):
    """Masks (N, H, W) matching the images, each with at least one object pixel; returned as bool."""
    if not isinstance(masks, torch.Tensor) or masks.shape != (len(images), *images.shape[-2:]):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks must be (N, H, W) = {(len(images), *images.shape[-2:])} like the images, got {shape}")
    masks = masks.bool()
    empty = (~masks.flatten(1).any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mask(s) {empty} are all zero: there is no object to find")
    return masks


def pixel_ranks(maps):
    """(N, H*W): the rank of each pixel in its map, 0 for the largest value (ties in reading order)."""
    order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def blurred(images):
    """The insertion game's start: a Gaussian blur of kernel 11, sigma 5."""
    return TF.gaussian_blur(images, kernel_size=[BLUR_KERNEL] * 2, sigma=[BLUR_SIGMA] * 2)


def _check_steps(steps, pixels):
    check_int_in_range(steps, "steps", 1, pixels, context=" (the number of pixels)")


@checks_inputs("images")
def perturbation_curves(model, images, maps, classes=None, *, mode="deletion", steps=16,
                        batch_size=DEFAULT_BATCH_SIZE, show_progress=None):
    """Class probability (N, steps + 1) as pixels are deleted (or inserted) in the order of `maps`.

    Step k has changed the ceil(H W / steps) * k highest-ranked pixels (all of them at the last
    step). The steps x N perturbed images go through the model `batch_size` at a time.
    """
    check_batch_size(batch_size)
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    n, _, height, width = images.shape
    maps = as_map(maps, n, (height, width))
    _check_steps(steps, height * width)
    classes = resolve_classes(model, images, classes)
    images = images.detach()
    per_step = math.ceil(height * width / steps)
    ranks = pixel_ranks(maps).view(n, 1, height, width).to(images.device)
    start, end = (images, torch.full_like(images, FILL)) if mode == "deletion" else (blurred(images), images)
    curves = images.new_empty(n, steps + 1)
    # pair p: image p // (steps + 1), step p % (steps + 1)
    pairs = torch.arange(n * (steps + 1), device=images.device)
    with torch.no_grad():
        for chunk in progress(pairs.split(batch_size), desc=mode, enabled=show_progress, leave=False):
            image, step = chunk // (steps + 1), chunk % (steps + 1)
            # BEGIN SOLUTION
            changed = ranks[image] < (step * per_step).view(-1, 1, 1, 1)
            perturbed = torch.where(changed, end[image], start[image])
            probabilities = model(perturbed).softmax(1).gather(1, classes[image, None])[:, 0]
            # END SOLUTION
            curves[image, step] = probabilities
    return curves


def area_under_curve(curves):
    """Trapezoid area under each curve (N,), with the steps spread evenly over [0, 1]."""
    steps = curves.shape[1] - 1
    return (curves.sum(1) - (curves[:, 0] + curves[:, -1]) / 2) / steps


@dataclass(frozen=True)
class Scores:
    """One row per method (and per baseline map): name -> {score name: mean over the images}."""
    maps: dict          # name -> (N, H, W) maps that were scored
    table: dict
    curves: dict        # name -> {"deletion": (N, steps + 1), "insertion": (N, steps + 1)}

    def format(self, digits=3):
        columns = list(next(iter(self.table.values())))
        width = max(map(len, self.table)) + 2
        lines = [" " * width + "".join(f"{c:>15s}" for c in columns)]
        for name, row in self.table.items():
            lines.append(f"{name:<{width}s}" + "".join(f"{row[c]:>15.{digits}f}" for c in columns))
        return "\n".join(lines)


@checks_inputs("images")
def score_maps(model, images, maps, classes=None, *, masks=None, steps=16, batch_size=DEFAULT_BATCH_SIZE):
    """Localisation (with masks) and faithfulness of ready-made maps {name: (N, H, W)}: a `Scores`."""
    if not isinstance(maps, Mapping):
        raise TypeError(f"maps must be a dict {{name: maps (N, H, W)}}, got {type(maps).__name__}")
    classes = resolve_classes(model, images, classes)
    if masks is not None:
        masks = check_masks(masks, images).to(images.device)
    table, kept, curves = {}, {}, {}
    for name, batch in maps.items():
        batch = as_map(batch, len(images), images.shape[-2:]).to(images.device)
        row = {}
        if masks is not None:
            row["mask share"] = mask_share(batch, masks).mean().item()
            row["pointing game"] = pointing_game(batch, masks).float().mean().item()
        curves[name] = {mode: perturbation_curves(model, images, batch, classes, mode=mode, steps=steps,
                                                  batch_size=batch_size, show_progress=False)
                        for mode in ("deletion", "insertion")}
        row["deletion AUC"] = area_under_curve(curves[name]["deletion"]).mean().item()
        row["insertion AUC"] = area_under_curve(curves[name]["insertion"]).mean().item()
        table[name], kept[name] = row, batch
    return Scores(table=table, maps=kept, curves=curves)


@checks_inputs("images")
def score_methods(model, images, methods, classes=None, *, masks=None, baselines=None, steps=16,
                  batch_size=DEFAULT_BATCH_SIZE, show_progress=None):
    """Score attribution methods side by side: a `Scores` with one row per method and baseline.

    methods:   {name: method(model, images, classes) -> (N, H, W) maps or (N, 3, H, W) attributions}.
    baselines: {name: (N, H, W) maps that know nothing about the image}, scored the same way.
    masks:     (N, H, W) object masks for the localisation scores, or None to skip them.
    """
    check_batch_size(batch_size)
    classes = resolve_classes(model, images, classes)
    if not methods:
        raise ValueError("give at least one method: {name: method(model, images, classes) -> maps}")
    maps = {}
    for name, method in progress(list(methods.items()), desc="methods", enabled=show_progress):
        maps[name] = as_map(method(model, images, classes), len(images), images.shape[-2:])
    return score_maps(model, images, {**maps, **(baselines or {})}, classes, masks=masks, steps=steps,
                      batch_size=batch_size)


@checks_inputs("images")
def deletion_explorer(model, images, maps, classes=None, *, steps=16, curves=None, titles=None, show_progress=None):
    """A live explorer for a lecture: scrub through the deletion (or insertion) game. For one image and one
    method of `maps` ({name: maps or attributions}), the image as it is after k of `steps` steps beside every
    method's curve of the class probability, the chosen one marked at step k.

    The curves are computed once, here (every method, both games: a progress bar), unless `curves` brings
    them: `score_maps(...).curves` of the same maps and steps. Moving a control only redraws. Returns the
    `vizlib.plotting.live_figure` panel.
    """
    import ipywidgets
    import matplotlib.pyplot as plt

    from vizlib.plotting import image_picker, live_figure

    if not isinstance(maps, Mapping) or not maps:
        raise TypeError(f"maps must be a dict {{name: maps (N, H, W)}}, got {type(maps).__name__}")
    n, _, height, width = images.shape
    _check_steps(steps, height * width)
    classes = resolve_classes(model, images, classes)
    read = {name: as_map(m, n, (height, width)) for name, m in maps.items()}
    if curves is None:
        curves = {name: {mode: perturbation_curves(model, images, m, classes, mode=mode, steps=steps,
                                                   show_progress=show_progress) for mode in ("deletion", "insertion")}
                  for name, m in read.items()}
    missing = [name for name in read if name not in curves or curves[name]["deletion"].shape != (n, steps + 1)]
    if missing:
        raise ValueError(f"curves must hold (N, steps + 1) = {(n, steps + 1)} curves for every map; not for {missing}")
    curves = {(name, mode): curves[name][mode].cpu() for name in read for mode in ("deletion", "insertion")}
    per_step = math.ceil(height * width / steps)
    names, image = image_picker(n, titles)
    method = ipywidgets.Dropdown(options=list(read), value=next(iter(read)), description="order")
    game = ipywidgets.ToggleButtons(options=["deletion", "insertion"], value="deletion", description="game")
    step = ipywidgets.IntSlider(value=steps // 4, min=0, max=steps, description="step", continuous_update=True)

    def draw(image, method, game, step):
        one = images[image:image + 1].detach()
        start, end = (one, torch.full_like(one, FILL)) if game == "deletion" else (blurred(one), one)
        changed = pixel_ranks(read[method][image:image + 1]).view(1, 1, height, width).to(one.device) < step * per_step
        shown = torch.where(changed, end, start)[0]        # as perturbation_curves builds step `step`
        fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.6), gridspec_kw={"width_ratios": [1, 1.5]})
        left.imshow(shown.permute(1, 2, 0).cpu().clamp(0, 1).numpy(), interpolation="nearest")
        left.set_title(f"{names[image]}: {min(step * per_step, height * width) / (height * width):.0%} "
                       f"{'deleted' if game == 'deletion' else 'inserted'}")
        left.axis("off")
        fractions = torch.linspace(0, 1, steps + 1)
        for name in read:
            curve = curves[name, game][image]
            right.plot(fractions, curve, "-" if name == method else ":", lw=2.5 if name == method else 1.2,
                       label=f"{name} (AUC {area_under_curve(curve[None])[0]:.2f})")
        right.plot([fractions[step]], [curves[method, game][image, step]], "o", color="black")
        right.set_xlabel(f"fraction of pixels {'deleted' if game == 'deletion' else 'inserted'}")
        right.set_ylabel(f"p({model.class_names[int(classes[image])]})")
        right.set_ylim(-0.02, 1.02)
        right.legend(fontsize=8)
        fig.tight_layout()
        return fig

    return live_figure(draw, image=image, method=method, game=game, step=step)
