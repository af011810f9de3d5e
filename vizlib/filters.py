"""First-layer filters: the weights of the first convolution, looked at as images.

The first convolutional layer of an image network sees RGB pixels directly, so
each of its filters is a small colour image itself (Krizhevsky et al. 2012,
figure 3). This module finds that layer in any network, returns its weights,
rescales them for display and tiles them into one picture; it also returns the
layer's activation maps for some images, and measures how *smooth* filters
are: the share of their energy at low spatial frequencies.

    name, conv = first_conv_layer(model)            # "features.conv1" on the course model
    weights = filter_weights(model)                 # (filters, 3, kh, kw), a copy
    grid = filter_grid(weights, ncols=8)            # (3, H, W) in [0, 1], ready for imshow
    maps = first_layer_activations(model, images)   # (N, filters, h, w)
    low_frequency_fraction(weights)                 # (filters,) in [0, 1]
"""

import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from vizlib.counts import check_int_in_range
from vizlib.hooks import capture_activations
from vizlib.images import GREY
from vizlib.wrapper import checks_inputs, get_layer, layer_names

MAX_CUTOFF = math.sqrt(0.5)  # cycles per pixel: the corner of the frequency plane


# ---------------------------------------------------------------------------------------
# Finding the layer
# ---------------------------------------------------------------------------------------

def _rgb_convolutions(model):
    """Names of the Conv2d layers that take 3 input channels, in named_modules order."""
    names = []
    for name in layer_names(model):
        module = get_layer(model, name)[1]
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            names.append(name)
    return names


def first_conv_layer(model, layer=None):
    """The convolution whose filters are images: returns (name, nn.Conv2d module).

    `layer=None` takes the first nn.Conv2d in `named_modules()` order; otherwise
    `layer` is a dotted layer name or the module itself. Either way it must be an
    nn.Conv2d with 3 input channels (RGB), or a ValueError lists the layers that are.
    """
    valid = _rgb_convolutions(model)
    options = (f"Conv2d layers with 3 input channels in this model: {', '.join(valid)}"
               if valid else "this model has no Conv2d layer with 3 input channels")
    if layer is None:
        convolutions = [name for name in layer_names(model)
                        if isinstance(get_layer(model, name)[1], nn.Conv2d)]
        if not convolutions:
            raise ValueError("this model has no nn.Conv2d layer, so it has no filters to show as images")
        layer = convolutions[0]
    if isinstance(layer, str) and layer not in layer_names(model):
        raise ValueError(f"unknown layer {layer!r}; {options}")
    try:
        name, module = get_layer(model, layer)
    except ValueError as error:  # a module object from another model
        raise ValueError(f"{error}; {options}") from None
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"layer {name!r} is a {type(module).__name__}, not a Conv2d; {options}")
    if module.in_channels != 3:
        raise ValueError(
            f"layer {name!r} has {module.in_channels} input channels, not 3 (RGB), so its filters "
            f"are not images; {options}"
        )
    return name, module


def filter_weights(model, layer=None):
    """A copy of the first-layer filters, (filters, 3, kh, kw), detached, on the model's device.

    Changing the copy never changes the model.
    """
    _, conv = first_conv_layer(model, layer)
    return conv.weight.detach().clone()


@checks_inputs("images")
def first_layer_activations(model, images, layer=None):
    """The first layer's output for `images` (N, 3, H, W) in [0, 1]: (N, filters, h, w).

    Map k is the response of filter k (before any batch norm or ReLU that follows),
    computed on the images after the model's own normalisation.
    """
    name, _ = first_conv_layer(model, layer)
    with capture_activations(model, name) as activations, torch.no_grad():
        model(images)
    return activations[name]


# ---------------------------------------------------------------------------------------
# Pictures of weights: rescale each, then tile
# ---------------------------------------------------------------------------------------

def _check_stack(tiles, name="tiles"):
    if not isinstance(tiles, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor (N, C, h, w), got {type(tiles).__name__}")
    if tiles.dim() != 4 or tiles.shape[1] not in (1, 3):
        raise ValueError(
            f"{name}: expected shape (N, C, h, w) with C = 3 (RGB filters) or 1 (maps), got {tuple(tiles.shape)}"
        )
    if tiles.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one tile, got none")


def rescale_each(tiles):
    """Rescale every tile (N, C, h, w) on its own to [0, 1]: its minimum -> 0, its maximum -> 1.

    All C channels of a tile share one scale, so an RGB filter keeps its colours
    (how strongly it weighs red against green against blue). A constant tile has
    nothing to show and becomes mid-grey (0.5).
    """
    _check_stack(tiles)
    tiles = tiles.detach().float()
    # BEGIN SOLUTION
    flat = tiles.flatten(1)
    low = flat.min(1).values.view(-1, 1, 1, 1)
    high = flat.max(1).values.view(-1, 1, 1, 1)
    span = high - low
    scaled = (tiles - low) / span.clamp_min(torch.finfo(tiles.dtype).tiny)
    return torch.where(span > 0, scaled, torch.full_like(tiles, GREY))
    # END SOLUTION


def tile_grid(tiles, ncols=8, *, padding=1, pad_value=1.0):
    """Tile (N, C, h, w) into one image (C, H, W), row by row, `ncols` tiles a row.

    `padding` pixels of `pad_value` separate the tiles and frame the grid (the
    layout of torchvision.utils.make_grid). Tiles are copied as they are: rescale
    them first (`rescale_each`).
    """
    _check_stack(tiles)
    check_int_in_range(ncols, "ncols", 1)
    check_int_in_range(padding, "padding", 0)
    n, channels, h, w = tiles.shape
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    grid = tiles.new_full((channels, nrows * (h + padding) + padding, ncols * (w + padding) + padding), pad_value)
    for k in range(n):
        row, col = divmod(k, ncols)
        top, left = padding + row * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = tiles[k]
    return grid


def filter_grid(weights, ncols=8, *, padding=1, pad_value=1.0):
    """First-layer weights (filters, 3, kh, kw) as one RGB picture (3, H, W) in [0, 1].

    Each filter is rescaled on its own (`rescale_each`), then tiled (`tile_grid`).
    """
    return tile_grid(rescale_each(weights).cpu(), ncols, padding=padding, pad_value=pad_value)


def activation_grid(maps, ncols=8, *, padding=1):
    """Activation maps (filters, h, w) of one image as one picture (1, H, W), each map rescaled.

    The padding is NaN, which `show_grids` draws in white.
    """
    if isinstance(maps, torch.Tensor) and maps.dim() == 3:
        maps = maps.unsqueeze(1)
    _check_stack(maps, "maps")
    return tile_grid(rescale_each(maps).cpu(), ncols, padding=padding, pad_value=float("nan"))


def show_grids(grids, titles=None, *, width=14.0, cmap="gray", suptitle=None):
    """Draw pictures (C, H, W) side by side at equal height, pixels as crisp squares.

    RGB grids (C = 3) are drawn as they are; one-channel grids with `cmap`, their NaN
    pixels (the padding of `activation_grid`) in white. Returns the Figure.
    """
    grids = [grid.detach().cpu() for grid in grids]
    if not grids:
        raise ValueError("no grids to show")
    if titles is not None and len(titles) != len(grids):
        raise ValueError(f"got {len(titles)} titles for {len(grids)} grids")
    aspects = [grid.shape[-1] / grid.shape[-2] for grid in grids]
    height = width / sum(aspects)
    fig, axes = plt.subplots(
        1, len(grids), figsize=(width, height + (0.8 if titles else 0.2) + (0.5 if suptitle else 0)),
        gridspec_kw={"width_ratios": aspects}, squeeze=False,
    )
    colours = plt.get_cmap(cmap).with_extremes(bad="white")
    for i, (ax, grid) in enumerate(zip(axes[0], grids)):
        if grid.dim() == 3 and grid.shape[0] == 3:
            ax.imshow(grid.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        else:
            ax.imshow(grid.reshape(grid.shape[-2:]).numpy(), cmap=colours, interpolation="nearest")
        ax.axis("off")
        if titles is not None:
            ax.set_title(titles[i], fontsize=14)
    if suptitle:
        fig.suptitle(suptitle, fontsize=16)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# How structured are the filters? Energy at low spatial frequencies
# ---------------------------------------------------------------------------------------

def _check_filter_tensor(weights):
    """Refuse anything but a non-empty (filters, channels, kh, kw) tensor of filter weights."""
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights: expected a torch.Tensor (filters, channels, kh, kw), got {type(weights).__name__}")
    if weights.dim() != 4 or weights.shape[0] == 0 or weights.shape[-1] < 1 or weights.shape[-2] < 1:
        raise ValueError("weights: expected a non-empty (filters, channels, kh, kw) tensor, "
                         f"got shape {tuple(weights.shape)}")


def low_frequency_mask(height, width, cutoff=0.25, *, device=None):
    """Which bins of a (height, width) DFT lie within `cutoff` cycles per pixel of zero frequency.

    Bins are in torch.fft.fft2 order (zero frequency at [0, 0]). The frequency of bin
    (i, j) is (fy, fx) = (i / height, j / width) folded into [-1/2, 1/2); a bin is
    "low" when sqrt(fy^2 + fx^2) <= cutoff. Valid cutoffs: 0 < cutoff <= sqrt(1/2).
    """
    if not isinstance(cutoff, (int, float)) or not 0 < cutoff <= MAX_CUTOFF:
        raise ValueError(f"cutoff must be a number in (0, {MAX_CUTOFF:.4f}] cycles per pixel, got {cutoff!r}")
    fy = torch.fft.fftfreq(height, device=device, dtype=torch.float64)
    fx = torch.fft.fftfreq(width, device=device, dtype=torch.float64)
    return fy[:, None] ** 2 + fx[None, :] ** 2 <= cutoff ** 2 + 1e-12


def power_spectrum(weights):
    """Each filter's energy at each spatial frequency, summed over its input channels.

    (filters, channels, kh, kw) -> (filters, kh, kw), in torch.fft.fft2 order, float64.
    By Parseval's theorem each filter's spectrum sums to kh * kw * (sum of its squared weights).
    """
    _check_filter_tensor(weights)
    return torch.fft.fft2(weights.detach().double()).abs().pow(2).sum(1)


def low_frequency_fraction(weights, cutoff=0.25):
    """The share of each filter's energy at spatial frequencies up to `cutoff` cycles per pixel.

    (filters, channels, kh, kw) -> (filters,) float64 in [0, 1]. A constant filter
    scores 1 (all of its energy is at zero frequency); a checkerboard close to 0 (its
    energy sits at the highest frequency); independent random weights score, on
    average, the share of frequency bins that count as low (`low_frequency_mask`),
    whatever their scale. A filter that is all zeros has no energy to share: NaN.
    """
    _check_filter_tensor(weights)
    mask = low_frequency_mask(*weights.shape[-2:], cutoff, device=weights.device)
    # BEGIN SOLUTION
    power = power_spectrum(weights)
    low = power[:, mask].sum(1)
    total = power.flatten(1).sum(1)
    return low / total
    # END SOLUTION


def untrained_like(model, seed=0):
    """The same architecture at random initialisation: the baseline a trained layer is compared with.

    The course model gives `course_model(trained=False)`; an ImageNet model gives
    torchvision's architecture with `weights=None`. Seeded, frozen, on the model's
    device, marked `trained = False` (see vizlib.is_trained); the global random state
    is left as it was.
    """
    from vizlib.models import IMAGENET_MODELS, course_model, random_imagenet_model

    name = getattr(model, "name", None)
    if name not in ("course",) + IMAGENET_MODELS:
        raise ValueError(f"no untrained counterpart for model {name!r}; known: course, {', '.join(IMAGENET_MODELS)}")
    fresh = course_model(trained=False, seed=seed) if name == "course" else random_imagenet_model(name, seed=seed)
    return fresh.to(model.device)


def show_spectra(weights_list, titles=None, *, cutoff=0.25, size=4.5):
    """The average share of filter energy at each spatial frequency, one panel per weight tensor.

    Zero frequency in the centre; the circle marks `cutoff` (what `low_frequency_fraction`
    counts as low). Each filter's spectrum is divided by its total energy before averaging,
    so every filter counts the same. Returns the Figure.
    """
    weights_list = list(weights_list)
    if titles is not None and len(titles) != len(weights_list):
        raise ValueError(f"got {len(titles)} titles for {len(weights_list)} weight tensors")
    low_frequency_mask(1, 1, cutoff)  # validates the cutoff
    shares = []
    for weights in weights_list:
        spectra = power_spectrum(weights)                  # (filters, kh, kw)
        share = (spectra / spectra.sum(dim=(1, 2), keepdim=True).clamp_min(1e-300)).mean(0)
        shares.append(torch.fft.fftshift(share).cpu())
    vmax = max(share.max().item() for share in shares)  # one colour scale for every panel
    fig, axes = plt.subplots(1, len(shares), figsize=(size * len(shares) + 1.2, size + 0.6), squeeze=False,
                             layout="constrained")
    for i, (ax, share) in enumerate(zip(axes[0], shares)):
        kh, kw = share.shape
        fy = torch.fft.fftshift(torch.fft.fftfreq(kh)).numpy()
        fx = torch.fft.fftshift(torch.fft.fftfreq(kw)).numpy()
        extent = (fx[0] - 0.5 / kw, fx[-1] + 0.5 / kw, fy[0] - 0.5 / kh, fy[-1] + 0.5 / kh)
        image = ax.imshow(share.numpy(), cmap="magma", interpolation="nearest", origin="lower",
                          extent=extent, vmin=0, vmax=vmax)
        ax.add_patch(plt.Circle((0, 0), cutoff, fill=False, color="cyan", linewidth=2))
        ax.set_xlabel("horizontal frequency (cycles/pixel)", fontsize=12)
        if i == 0:
            ax.set_ylabel("vertical frequency (cycles/pixel)", fontsize=12)
        if titles is not None:
            ax.set_title(titles[i], fontsize=14)
    fig.colorbar(image, ax=list(axes[0]), fraction=0.03, label="share of a filter's energy")
    return fig


@checks_inputs("images")
def filter_explorer(model, images, layer=None, *, titles=None):
    """A live explorer for a lecture: the first layer's filters and their responses to one image, for the
    trained network and for the same architecture at random initialisation (`untrained_like`). The
    responses of both networks to every image are computed once, here; a change only redraws.
    Returns the `vizlib.plotting.live_figure` panel.
    """
    import ipywidgets

    from vizlib.plotting import image_picker, live_figure

    networks = {"trained": model, "random initialisation": untrained_like(model)}
    weights = {name: filter_weights(net, layer) for name, net in networks.items()}
    responses = {name: first_layer_activations(net, images, layer).cpu() for name, net in networks.items()}
    names, image = image_picker(len(images), titles)
    weights_box = ipywidgets.ToggleButtons(options=list(networks), value="trained", description="weights")

    def draw(image, weights_of):
        grids = [images[image], filter_grid(weights[weights_of]), activation_grid(responses[weights_of][image])]
        return show_grids(grids, [names[image], f"first-layer filters ({weights_of})", "their responses"])

    return live_figure(draw, image=image, weights_of=weights_box)
