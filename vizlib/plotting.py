"""Pictures from results: an image grid and a heat-map overlay, readable on a projector.

Techniques return tensors; these functions only draw them. Every `show_*` returns
the matplotlib Figure, so a notebook can save it; end the cell with plt.show().
`overlay_image` and `mask_outline_image` build (H, W, 3) arrays to draw or to put
in a grid. `live_figure` redraws a figure whenever a widget moves.
"""

import html
import io
import struct

import matplotlib.pyplot as plt
import numpy as np
import torch

from vizlib.images import to_numpy_image

FONT_SIZE = 12


def as_display_array(image):
    """(3, H, W) or (1, 3, H, W) tensors -> (H, W, 3); (H, W) maps and numpy arrays pass through."""
    if isinstance(image, torch.Tensor):
        if image.dim() == 2:
            return image.detach().cpu().numpy()
        return to_numpy_image(image)
    return np.asarray(image)


def stretched(image, low=1.0, high=99.0):
    """An image (3, H, W) rescaled for display so its `low`-th and `high`-th percentiles become black and white:
    a faint synthesised image (gradient ascent under L2 decay sits close to grey) shown at full contrast."""
    lo, hi = torch.quantile(image.detach().float().flatten(), torch.tensor([low, high]) / 100).tolist()
    return ((image.detach().float() - lo) / max(hi - lo, 1e-8)).clamp(0, 1)


def show_images(images, titles=None, *, ncols=8, size=2.0, cmap="gray", suptitle=None, stretch=False):
    """Draw images in a grid: a batch (N, 3, H, W), or a list of images or 2-D maps.

    stretch: show each colour image at full contrast (`stretched`), for display only; say so in the title."""
    images = list(images)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    if not images:
        raise ValueError("no images to show")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        if stretch and isinstance(image, torch.Tensor) and image.dim() == 3:
            image = stretched(image)
        array = as_display_array(image)
        ax.imshow(array, cmap=cmap if array.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=FONT_SIZE)
    if suptitle:
        fig.suptitle(suptitle, fontsize=FONT_SIZE + 2)
    fig.tight_layout()
    return fig


def overlay_image(image, heatmap, *, alpha=0.5, cmap="jet"):
    """Blend a heat map (H, W), rescaled to [0, 1] for display, over an image; returns (H, W, 3)."""
    base = as_display_array(image)
    heat = heatmap.detach().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
    if heat.shape != base.shape[:2]:
        raise ValueError(f"heat map shape {heat.shape} does not match image size {base.shape[:2]}")
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    coloured = plt.get_cmap(cmap)(heat)[..., :3]
    return (1 - alpha) * base + alpha * coloured


def mask_outline_image(image, mask, *, colour=(1.0, 1.0, 0.0)):
    """An image with the outline of a boolean mask (H, W) drawn on it; returns (H, W, 3)."""
    base = as_display_array(image).copy()
    mask = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    base[mask & ~interior] = colour
    return base


def figure_png(fig):
    """A matplotlib figure as PNG bytes (tight bounding box)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def png_size(png):
    """(width, height) in pixels of PNG bytes, from the header's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not PNG bytes")
    return struct.unpack(">II", png[16:24])


def image_picker(n, titles=None):
    """An explorer's image control: a dropdown of the `n` images by title (default "image i"), valued by
    index; returns (the names, the dropdown)."""
    import ipywidgets

    names = [str(t) for t in titles] if titles is not None else [f"image {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"got {len(names)} titles for {n} images")
    return names, ipywidgets.Dropdown(options=[(name, i) for i, name in enumerate(names)], value=0, description="image")


def panel_controls(panel):
    """The controls of a `live_figure` panel in order, inside rows too (not its message line or picture)."""
    import ipywidgets

    def walk(widget):
        return [c for child in widget.children for c in walk(child)] if isinstance(widget, ipywidgets.Box) else [widget]

    return [control for child in panel.children[:-2] for control in walk(child)]


SETTLE_PASSES = 3   # live_figure: draws in a row that may still change the controls


def live_figure(draw, **controls):
    """Widgets above a picture that `draw(**their values)` redraws whenever one of them changes.

    `draw` returns a matplotlib figure; it is drawn once at once. `draw` may itself
    change a control (say, the range of one slider when another control moves): the
    picture is then drawn again with the values it settled on. A `draw` that changes the
    controls on every call never settles: after a few passes that is a clear error.

    A change that cannot be drawn (`draw` raised) leaves the last good picture in place and
    shows the error in a message line above it, never a traceback; the next change that draws
    clears it. Only the first picture's error is raised, to the cell that builds the explorer. The picture is an
    ipywidgets.Image holding the finished PNG, rather than output captured while the
    cell runs, which can stall headless notebook runners. The picture is laid out at the
    PNG's own pixel width (narrower only where the page is), as a plain figure output is:
    left to the box's default, JupyterLab stretches it to the notebook's full width, blurred.
    Returns an ipywidgets.VBox: the controls, the message line, then the picture (its last child).
    """
    import ipywidgets

    if not controls:
        raise ValueError("give at least one control, e.g. live_figure(draw, weight=ipywidgets.FloatSlider())")
    picture = ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="100%", height="auto"))
    message = ipywidgets.HTML()
    drawing = []

    def values():
        return {name: control.value for name, control in controls.items()}

    def redraw(change=None):
        if drawing:                     # a change made by draw itself: the loop below sees it
            return
        drawing.append(True)
        try:
            for _ in range(SETTLE_PASSES):
                drawn = values()
                fig = draw(**drawn)
                try:
                    png = figure_png(fig)
                finally:
                    plt.close(fig)
                picture.layout.width = f"{png_size(png)[0]}px"
                picture.value = png
                if values() == drawn:
                    message.value = ""
                    return
            raise RuntimeError(f"draw changed the controls on each of {SETTLE_PASSES} passes (now {values()}): it "
                               "must settle on values that it leaves as they are")
        finally:
            drawing.clear()

    def on_change(change):
        try:
            redraw()
        except Exception as error:     # shown where the lecturer looks; the last good picture stays
            text = html.escape(f"{type(error).__name__}: {error}")
            message.value = f"<pre style='color: #b00020; white-space: pre-wrap'>{text}</pre>"

    for control in controls.values():
        control.observe(on_change, names="value")
    redraw()
    return ipywidgets.VBox([*controls.values(), message, picture])
