"""Occlusion sensitivity (Zeiler & Fergus 2014): hide part of the image, watch the class score fall.

A grey square (the *window*) slides over the image in steps of `stride` pixels.
Each occluded copy goes through the model, and the drop of the class score,
score(original) - score(occluded), is recorded for that window position:

- `grid`: one number per window position, (N, rows, cols), the coarse map;
- `maps`: one number per pixel, (N, H, W), the average drop over all the
  windows that cover the pixel.

The layout follows captum's `Occlusion`: the first window sits in the top-left
corner, windows start every `stride` pixels, and positions continue until the
image is covered, so the last window in a row or column may hang over the edge
and is then cut off (smaller than the others). A positive value means hiding
that part lowers the score: the model needs it.
"""

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch

from vizlib.arguments import check_batch_size, check_classes
from vizlib.config import progress
from vizlib.images import GREY
from vizlib.plotting import FONT_SIZE, as_display_array, image_picker, live_figure, overlay_image
from vizlib.wrapper import checks_inputs

SCORES = ("logit", "probability")


@dataclass(frozen=True)
class OcclusionResult:
    maps: torch.Tensor         # (N, H, W) score drop per pixel, averaged over covering windows
    grid: torch.Tensor         # (N, rows, cols) score drop per window position
    classes: torch.Tensor      # (N,) the class whose score was watched
    scores: torch.Tensor       # (N,) that class's score on the unoccluded image
    row_starts: torch.Tensor   # (rows,) top edge of each window row
    col_starts: torch.Tensor   # (cols,) left edge of each window column
    window: tuple              # (height, width)
    stride: tuple              # (vertical, horizontal)


def _pair(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, tuple, list)):
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    return pair


def check_window(image_size, window, stride):
    """Validate `window` and `stride` for an image of `image_size` (H, W); return them as pairs."""
    window, stride = _pair(window, "window"), _pair(stride, "stride")
    for axis, size, k, s in zip(("height", "width"), image_size, window, stride):
        if not 1 <= k <= size:
            raise ValueError(
                f"window {axis} must be between 1 and the image {axis} {size}, got {k} "
                f"(window {window}, image {tuple(image_size)})"
            )
        if k < size and not 1 <= s <= k:
            raise ValueError(
                f"stride ({axis}) must be between 1 and the window {axis} {k}, so that every pixel "
                f"is covered, got {s}"
            )
        if s < 1:
            raise ValueError(f"stride ({axis}) must be at least 1, got {s}")
    return window, stride


def window_starts(size, window, stride):
    """Where windows start along one axis: 0, stride, 2*stride, ... until the axis is covered.

    As in captum: ceil((size - window) / stride) + 1 positions; the last window may
    run past the edge (it is then cut off).
    """
    check_window((size, size), window, stride)
    count = -(-(size - window) // stride) + 1
    return torch.arange(count) * stride


def cover_matrix(size, window, stride, device=None):
    """(positions, size) boolean: entry [i, y] says whether window position i covers pixel y."""
    starts = window_starts(size, window, stride).to(device)
    pixels = torch.arange(size, device=device)
    return (pixels >= starts[:, None]) & (pixels < starts[:, None] + window)


def grid_to_pixels(grid, cover_rows, cover_cols):
    """Per-pixel map from the window grid: each pixel gets the mean over the windows covering it.

    The windows are products of a row interval and a column interval, so the sum
    over windows is two matrix products, cover_rows^T @ grid @ cover_cols, and the
    number of covering windows is the outer product of the per-axis counts.
    """
    rows, cols = cover_rows.to(grid.dtype), cover_cols.to(grid.dtype)
    # BEGIN SOLUTION
    total = rows.T @ grid @ cols                                   # (N, H, W)
    count = rows.sum(0)[:, None] * cols.sum(0)[None, :]            # (H, W)
    # END SOLUTION
    return total / count


def _check_fill(fill, images):
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device)
    if fill.numel() not in (1, 3):
        raise ValueError(f"fill must be one grey level or an RGB triple, got {fill.numel()} values")
    if fill.min() < 0 or fill.max() > 1:
        raise ValueError(f"fill values must be in [0, 1] like the images, got {fill.tolist()}")
    return fill.reshape(-1, 1, 1).expand(3, 1, 1)


def _score(logits, score):
    return logits if score == "logit" else logits.softmax(1)


@checks_inputs("images")
def occlusion(model, images, classes=None, *, window=8, stride=4, fill=GREY, batch_size=256,
              score="logit", show_progress=None):
    """Occlusion sensitivity of `model` for `images` (N, 3, H, W) in [0, 1].

    classes:    None (each image's predicted class), one int for every image, or one index per image.
    window:     side of the occluding square in pixels (int) or (height, width).
    stride:     step between window positions, between 1 and the window side.
    fill:       value of the occluded pixels: a grey level in [0, 1] or an RGB triple.
    batch_size: occluded copies per forward pass (copies of several images may share a batch).
    score:      "logit" (the unnormalised class score, default) or "probability" (after softmax).

    Returns an `OcclusionResult` with the per-pixel `maps` (N, H, W), the window `grid`
    (N, rows, cols), the classes watched and their unoccluded scores. The model is only
    evaluated (under torch.no_grad); nothing about it changes.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    check_batch_size(batch_size)
    n, _, height, width = images.shape
    (wh, ww), (sh, sw) = check_window((height, width), window, stride)
    device = images.device
    fill = _check_fill(fill, images)
    images = images.detach()

    def evaluate(batch):
        return _score(model(batch), score)

    with torch.no_grad():
        scores = evaluate(images)
        if scores.dim() != 2:
            raise ValueError(f"the model must return (N, classes) scores, got shape {tuple(scores.shape)}")
        # the prediction is the top class of these very scores (softmax keeps the order)
        classes = scores.argmax(1) if classes is None else check_classes(scores.shape[1], classes, n).to(device)
        base = scores.gather(1, classes[:, None])[:, 0]

        rows = cover_matrix(height, wh, sh, device)                # (R, H)
        cols = cover_matrix(width, ww, sw, device)                 # (C, W)
        n_rows, n_cols = len(rows), len(cols)
        per_image = n_rows * n_cols
        drops = torch.empty(n * per_image, dtype=base.dtype, device=device)
        batches = range(0, n * per_image, batch_size)
        for start in progress(batches, desc="occlusion", enabled=show_progress):
            index = torch.arange(start, min(start + batch_size, n * per_image), device=device)
            image_index, window_index = index // per_image, index % per_image
            # BEGIN SOLUTION
            mask = rows[window_index // n_cols, :, None] & cols[window_index % n_cols, None, :]  # (B, H, W)
            copies = torch.where(mask[:, None], fill, images[image_index])                       # (B, 3, H, W)
            occluded = evaluate(copies).gather(1, classes[image_index, None])[:, 0]
            drops[start:start + len(index)] = base[image_index] - occluded
            # END SOLUTION

    grid = drops.reshape(n, n_rows, n_cols)
    return OcclusionResult(
        maps=grid_to_pixels(grid, rows, cols), grid=grid, classes=classes, scores=base,
        row_starts=window_starts(height, wh, sh), col_starts=window_starts(width, ww, sw),
        window=(wh, ww), stride=(sh, sw),
    )


def peak_positions(maps):
    """(N, 2) row and column of each map's largest value (the first one, in reading order, on ties)."""
    flat = maps.flatten(1).argmax(1)
    return torch.stack([flat // maps.shape[-1], flat % maps.shape[-1]], dim=1)


def largest_drop_points(result):
    """(N, 2) pixel (row, column) at the centre of the window whose occlusion lowered the score most.

    For a window cut off at the image edge, the centre of its visible part.
    """
    best = peak_positions(result.grid).cpu()
    height, width = result.maps.shape[-2:]
    points = []
    for starts, index, window, size in zip(
        (result.row_starts, result.col_starts), best.T, result.window, (height, width)
    ):
        first = starts[index]
        last = torch.clamp(first + window, max=size)  # one past the window's last visible pixel
        points.append((first + last) // 2)
    return torch.stack(points, dim=1)


def show_occlusion(images, result, *, titles=None, alpha=0.5, size=2.2, across=False):
    """One column per image: the image, its window grid, its per-pixel map overlaid; returns the Figure.
    With `across=True`, one row per image instead (wide pictures, for a projector).

    The grid is drawn red where hiding the window lowers the score and blue where it
    raises it (white is no change); the cross marks `largest_drop_points`.
    """
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    points = largest_drop_points(result)
    if across:
        fig, axes = plt.subplots(n, 3, figsize=(3 * size + 0.8, size * n + 0.4), squeeze=False)
        axes = axes.T                                    # axes[part, image] either way
    else:
        fig, axes = plt.subplots(3, n, figsize=(size * n + 0.8, 3 * size + 0.4), squeeze=False)
    for i in range(n):
        grid, pixel_map = result.grid[i].cpu().numpy(), result.maps[i].cpu().numpy()
        limit = max(float(abs(grid).max()), 1e-12)
        axes[0, i].imshow(as_display_array(images[i].cpu()))
        axes[1, i].imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[2, i].imshow(overlay_image(images[i].cpu(), pixel_map, alpha=alpha))
        row, col = points[i].tolist()
        axes[2, i].plot(col, row, marker="+", color="white", markersize=16, markeredgewidth=3)
        if titles is not None:
            axes[0, i].set_title(str(titles[i]), fontsize=FONT_SIZE)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    rows, cols = result.grid.shape[-2:]
    for ax, label in zip(axes[:, 0], ("image", f"drop per window\n({rows}x{cols} grid)", "drop per pixel")):
        if across:
            ax.set_xlabel(label, fontsize=FONT_SIZE)
        else:
            ax.set_ylabel(label, fontsize=FONT_SIZE)
    fig.tight_layout()
    return fig


@checks_inputs("images")
def occlusion_explorer(model, images, classes=None, *, windows=None, fill=GREY, titles=None, show_progress=None):
    """A live explorer for a lecture: one image's occlusion map as the window and the stride change.

    Every map is computed once, here (each window of `windows`, default 1/16, 1/8 and 1/4 of the image side,
    moved by half a window and by a whole one, for every image: a progress bar), since a 224-px image needs
    hundreds of forward passes per setting; moving a control only redraws. Returns the
    `vizlib.plotting.live_figure` panel.
    """
    import dataclasses

    import ipywidgets


    size = images.shape[-1]
    windows = tuple(max(2, size // d) for d in (16, 8, 4)) if windows is None else tuple(windows)
    settings = [(w, s) for w in windows for s in (max(1, w // 2), w)]
    results = {(w, s): occlusion(model, images, classes, window=w, stride=s, fill=fill, show_progress=False)
               for w, s in progress(settings, desc="occlusion maps", enabled=show_progress, leave=False)}
    names, image = image_picker(len(images), titles)
    window = ipywidgets.SelectionSlider(options=list(windows), value=windows[len(windows) // 2], description="window")
    stride = ipywidgets.ToggleButtons(options=[("half a window", "half"), ("a whole window", "whole")], value="half",
                                      description="stride")

    def draw(image, window, stride):
        key = (window, max(1, window // 2) if stride == "half" else window)
        whole = results[key]
        one = dataclasses.replace(whole, maps=whole.maps[image:image + 1], grid=whole.grid[image:image + 1],
                                  classes=whole.classes[image:image + 1], scores=whole.scores[image:image + 1])
        title = f"{names[image]}: window {key[0]}, stride {key[1]}"
        return show_occlusion(images[image:image + 1], one, titles=[title], size=3.0, across=True)

    return live_figure(draw, image=image, window=window, stride=stride)
