"""Activation maps and maximally activating patches (Zeiler & Fergus 2014; Springenberg et al. 2015).

Three steps, each a function that returns tensors:

- `vizlib.receptive_field.receptive_field(model, layer)`: which input pixels a unit of
  `layer` can see, from the geometry of the layers on the way from the input.
- `top_activations(model, data, layer, k)`: stream a dataset through the model in
  batches and keep, for every channel of `layer`, the k images whose maximum
  activation in that channel is largest (one entry per image, with the position of
  the maximum). Memory is O(k x channels), whatever the size of the dataset.
- `crop_patches(images, field, image_index, position)`: cut out exactly the
  receptive field of those units, filled with a constant where it leaves the image.

`show_top_patches`, `show_channel` and `patch_picker` draw the results.
"""

from dataclasses import dataclass

import numpy as np
import torch

from vizlib.arguments import check_batch_size
from vizlib.config import progress
from vizlib.counts import check_index, check_int_in_range
from vizlib.hooks import capture_activations, forward_to
from vizlib.images import GREY, check_images, values_checked
from vizlib.plotting import live_figure
from vizlib.receptive_field import receptive_field
from vizlib.wrapper import check_model, checks_inputs, get_layer, model_device, prepare_images

__all__ = [
    "TopActivations", "merge_top_k", "top_activations",
    "crop_patches", "channel_patches", "random_units", "unit_features", "mean_pairwise_cosine",
    "feature_similarity",
    "show_top_patches", "show_channel", "patch_picker",
]


# ---------------------------------------------------------------------------------------------
# Streaming top-k
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopActivations:
    """For each channel of `layer`, the k images whose maximum activation in that channel is largest.

    Row c of each tensor belongs to channel c, sorted from the largest activation down;
    ties keep the earlier image first.
    """

    layer: str
    values: torch.Tensor       # (C, k) the maximum of the channel's activation map in each image
    image_index: torch.Tensor  # (C, k) position of the image in the dataset
    position: torch.Tensor     # (C, k, 2) (row, col) of that maximum in the activation map
    map_size: tuple            # (h, w) of the layer's activation maps
    n_images: int              # how many images were streamed

    @property
    def channels(self):
        return self.values.shape[0]

    @property
    def k(self):
        return self.values.shape[1]

    def check_channel(self, channel):
        """Raise a clear error unless `channel` is a channel of this layer; returns it as an int."""
        return check_index(channel, self.channels, "channel", context=f" (layer {self.layer!r})")


def merge_top_k(kept, new, k):
    """Merge the running top-k with one batch's candidates; both are (values, image_index, position).

    values and image_index are (C, n); position is (C, n, 2). The kept entries come first
    and belong to earlier images, so a stable sort keeps the earlier image on ties.
    """
    # BEGIN SOLUTION
    values, index, position = (torch.cat([a, b], dim=1) for a, b in zip(kept, new))
    order = values.argsort(dim=1, descending=True, stable=True)[:, :k]
    return values.gather(1, order), index.gather(1, order), position.gather(1, order[..., None].expand(-1, -1, 2))
    # END SOLUTION


def _check_k(k, n=None):
    if n is not None and n == 0:
        raise ValueError("the dataset is empty: top_activations needs at least one image (and k <= its size)")
    check_int_in_range(k, "k", 1, n, context="" if n is None else f" (the dataset has {n} images)")


def _batches(data, batch_size):
    """(batches, number of images or None, number of batches or None) for a tensor, a Dataset or an iterable."""
    if isinstance(data, torch.Tensor):     # its values are checked batch by batch, as a stream's are
        if not len(data):
            check_images(data, name="data")     # the one empty-batch error
        return data.split(batch_size), len(data), -(-len(data) // batch_size)
    if isinstance(data, torch.utils.data.IterableDataset):
        return torch.utils.data.DataLoader(data, batch_size=batch_size), None, None
    if isinstance(data, torch.utils.data.Dataset):
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
        return loader, len(data), len(loader)
    return data, None, None


def top_activations(model, data, layer, k=9, *, batch_size=64, stop_early=True, show_progress=None):
    """Stream `data` through `model`; per channel of `layer`, keep the top-k images by maximum activation.

    data: images (N, 3, H, W) in [0, 1], a Dataset whose items are images or start with one,
    or any iterable of batches (tensors, or tuples whose first element is the images), so
    the dataset never has to be in memory at once. Each image enters a channel's list at most
    once, with the position of its maximum. Only (C, k) tensors are kept between batches.

    stop_early: run the network only as far as `layer` (vizlib.hooks.forward_to).
    Returns a `TopActivations`, on the CPU.
    """
    check_model(model)  # the entry check, by hand: `data` may be a stream that is read only once
    name, _ = get_layer(model, layer)
    _check_k(k)
    check_batch_size(batch_size)
    batches, n_images, n_batches = _batches(data, batch_size)
    if n_images is not None:
        _check_k(k, n_images)
    device = model_device(model)

    def layer_output(images):
        if stop_early:  # the layers after `layer` never run
            return forward_to(model, images, name)
        with capture_activations(model, name) as activations:
            model(images)
        return activations[name]

    kept, seen, map_size = None, 0, None
    with torch.no_grad():
        for batch in progress(batches, desc=f"top-{k} of {name}", total=n_batches, enabled=show_progress):
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            images = prepare_images(model, images, name="batch")
            with values_checked():
                output = layer_output(images.to(device))
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                got = getattr(output, "shape", type(output).__name__)
                raise ValueError(f"layer {name!r} gives {got}, not activation maps "
                                 "(N, C, h, w): choose a convolutional layer")
            maxima, where = output.flatten(2).max(dim=2)  # (B, C): first maximum on ties
            map_size = tuple(output.shape[-2:])
            count = len(images)
            index = torch.arange(seen, seen + count, device=maxima.device).expand(maxima.shape[1], -1)
            position = torch.stack([where.T // map_size[1], where.T % map_size[1]], dim=-1)
            new = (maxima.T, index, position)
            if kept is None:
                kept = tuple(t[:, :0] for t in new)
            kept = merge_top_k(kept, new, k)
            seen += count
    _check_k(k, seen)
    values, index, position = (t.cpu() for t in kept)
    return TopActivations(name, values.float(), index.long(), position.long(), map_size, seen)


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patches:
    """Receptive fields cut out of their images, best first where they belong to a channel."""

    images: torch.Tensor         # (n, 3, field height, field width); `fill` outside the image
    inside: torch.Tensor         # (n, field height, field width) bool, True where the pixel lies in the image
    values: torch.Tensor = None  # (n,) the channel's activation at each unit, where there is a channel


def crop_patches(images, field, image_index, position, *, fill=GREY):
    """Cut the receptive field of each unit out of its image: `Patches` (without values).

    image_index (n,) picks the image, position (n, 2) the unit (row, col) in the activation
    map. Outside the image a patch holds `fill` (a grey level, or one value per colour channel).
    """
    check_images(images)
    image_index = torch.as_tensor(image_index, dtype=torch.long, device=images.device).reshape(-1)
    position = torch.as_tensor(position, dtype=torch.long, device=images.device).reshape(-1, 2)
    if len(image_index) != len(position):
        raise ValueError(f"got {len(image_index)} image indices for {len(position)} positions")
    if len(image_index) and not (0 <= image_index.min() and image_index.max() < len(images)):
        raise ValueError(f"image indices must be between 0 and {len(images) - 1}")
    height, width = images.shape[-2:]
    rows = field.start[0] + position[:, :1] * field.stride[0] + torch.arange(field.size[0], device=images.device)
    cols = field.start[1] + position[:, 1:] * field.stride[1] + torch.arange(field.size[1], device=images.device)
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    pixels = images[image_index[:, None, None], :, rows.clamp(0, height - 1)[:, :, None],
                    cols.clamp(0, width - 1)[:, None, :]]  # (n, h, w, 3)
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device).reshape(-1)
    patches = torch.where(inside[..., None], pixels, fill).permute(0, 3, 1, 2).contiguous()
    return Patches(patches, inside)


def channel_patches(images, field, top, channel, *, k=None, fill=GREY):
    """The top-k patches of one channel, best first: `Patches` with the channel's values."""
    channel = top.check_channel(channel)
    k = top.k if k is None else k
    k = check_int_in_range(k, "k", 1, top.k, context=f" ({top.k} images per channel were kept)")
    cut = crop_patches(images, field, top.image_index[channel, :k], top.position[channel, :k], fill=fill)
    return Patches(cut.images, cut.inside, top.values[channel, :k])


# ---------------------------------------------------------------------------------------------
# Are the top patches alike? Features at units, against random units of the same layer
# ---------------------------------------------------------------------------------------------


def random_units(top, n, *, seed):
    """n random units (image index, position) of the layer that `top` was computed on."""
    generator = torch.Generator().manual_seed(seed)
    image_index = torch.randint(top.n_images, (n,), generator=generator)
    rows = torch.randint(top.map_size[0], (n,), generator=generator)
    cols = torch.randint(top.map_size[1], (n,), generator=generator)
    return image_index, torch.stack([rows, cols], dim=1)


@checks_inputs("images")
def unit_features(model, images, layer, image_index, position, *, batch_size=64):
    """The layer's activation vector (all C channels) at each unit (image, (row, col)): (n, C).

    Each image needed runs once; only the requested vectors are kept.
    """
    name, _ = get_layer(model, layer)
    check_batch_size(batch_size)
    image_index = torch.as_tensor(image_index, dtype=torch.long).reshape(-1).cpu()
    position = torch.as_tensor(position, dtype=torch.long).reshape(-1, 2).cpu()
    unique, inverse = image_index.unique(return_inverse=True)
    features = None
    with torch.no_grad():
        for first in range(0, len(unique), batch_size):
            chosen = unique[first:first + batch_size]
            maps = forward_to(model, images[chosen.to(images.device)].to(model_device(model)), name).cpu()
            rows = ((inverse >= first) & (inverse < first + len(chosen))).nonzero().flatten()
            if features is None:
                features = torch.zeros(len(image_index), maps.shape[1])
            features[rows] = maps[inverse[rows] - first, :, position[rows, 0], position[rows, 1]]
    return features


def mean_pairwise_cosine(features, exclude=None, centre=None):
    """Mean cosine similarity over all pairs of distinct rows of `features` (n, C).

    exclude: a channel to leave out; centre: a (C,) vector subtracted from every row first.
    """
    if len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors to compare, got {len(features)}")
    features = features.double()
    if centre is not None:
        features = features - centre.double()
    if exclude is not None:
        keep = torch.ones(features.shape[1], dtype=torch.bool)
        keep[exclude] = False
        features = features[:, keep]
    unit = torch.nn.functional.normalize(features, dim=1)
    similarity = unit @ unit.T
    n = len(features)
    return ((similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))).item()


@dataclass(frozen=True)
class PatchSimilarity:
    """How alike a channel's top patches are in the layer's features, and random patches for comparison."""

    top: torch.Tensor      # (C,) mean pairwise cosine similarity of each channel's top-k units
    random: torch.Tensor   # (C,) the same for k random units of the layer


@checks_inputs("images")
def feature_similarity(model, images, top, *, seed=0, batch_size=64):
    """How alike each channel's top-k units are, against k random units of the same layer.

    A unit is described by the layer's activation vector at its position, minus the mean
    vector of the layer (estimated from k x C other random units), with the channel itself
    left out (its top units are alike in it by construction). Two random units score about 0.
    Returns `PatchSimilarity`: per channel, the mean pairwise cosine similarity of its top-k
    units, and of k random units (a random image, a random position: a random patch of the
    same size).
    """
    k, channels = top.k, top.channels
    features = lambda index, position: unit_features(model, images, top.layer, index, position,  # noqa: E731
                                                     batch_size=batch_size)
    centre = features(*random_units(top, k * channels, seed=seed + 1)).mean(0)
    random_features = features(*random_units(top, k * channels, seed=seed)).view(channels, k, -1)
    top_features = features(top.image_index.reshape(-1), top.position.reshape(-1, 2)).view(channels, k, -1)
    top_similarity, random_similarity = (
        torch.tensor([mean_pairwise_cosine(group[c], exclude=c, centre=centre) for c in range(channels)])
        for group in (top_features, random_features)
    )
    return PatchSimilarity(top_similarity, random_similarity)


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------


def _with_checkerboard(patch, inside):
    """(h, w, 3) display array: the patch, with a grey checkerboard where it left the image."""
    array = patch.detach().cpu().permute(1, 2, 0).numpy().copy()
    inside = inside.cpu().numpy()
    if not inside.all():
        h, w = inside.shape
        square = max(1, max(h, w) // 10)
        rows, cols = np.indices((h, w)) // square
        board = np.where((rows + cols) % 2 == 0, 0.35, 0.65)[..., None]
        array = np.where(inside[..., None], array, board)
    return array.clip(0, 1)


def show_top_patches(images, field, top, channels, *, k=None, size=1.1, fill=GREY, title=None):
    """A grid: one row per channel, its top-k patches from left to right (best first).

    Pixels outside the image are drawn as a grey checkerboard.
    """
    import matplotlib.pyplot as plt

    channels = [top.check_channel(c) for c in channels]
    if not channels:
        raise ValueError("no channels to show: pass at least one channel")
    k = top.k if k is None else k
    fig, axes = plt.subplots(len(channels), k, figsize=(size * k + 0.8, size * len(channels) + 0.6),
                             squeeze=False)
    for row, channel in enumerate(channels):
        cut = channel_patches(images, field, top, channel, k=k, fill=fill)
        for col in range(k):
            ax = axes[row, col]
            ax.imshow(_with_checkerboard(cut.images[col], cut.inside[col]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[row, 0].set_ylabel(f"ch {channel}", rotation=0, ha="right", va="center", fontsize=11)
    fig.suptitle(title or f"{top.layer}: top-{k} patches per channel ({field.size[0]}x{field.size[1]} px)",
                 fontsize=13)
    fig.tight_layout()
    return fig


def show_channel(images, field, top, channel, *, k=None, size=1.6, fill=GREY):
    """One channel: its top-k images with the unit's field boxed (top row), and the patches (bottom row)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    channel = top.check_channel(channel)
    k = top.k if k is None else k
    cut = channel_patches(images, field, top, channel, k=k, fill=fill)
    fig, axes = plt.subplots(2, k, figsize=(size * k, 2 * size + 0.8), squeeze=False)
    height, width = images.shape[-2:]
    for col in range(k):
        index = int(top.image_index[channel, col])
        row_, col_ = (int(v) for v in top.position[channel, col])
        top_, left, bottom, right = field.clipped_box(row_, col_, (height, width))
        ax = axes[0, col]
        ax.imshow(images[index].detach().cpu().permute(1, 2, 0).numpy().clip(0, 1), interpolation="nearest")
        ax.add_patch(Rectangle((left - 0.5, top_ - 0.5), right - left, bottom - top_, fill=False,
                               edgecolor="yellow", linewidth=2))
        ax.set_title(f"#{index}\n{cut.values[col]:.2f}", fontsize=10)
        axes[1, col].imshow(_with_checkerboard(cut.images[col], cut.inside[col]), interpolation="nearest")
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle(f"{top.layer}, channel {channel}: image number and maximum activation; "
                 f"field {field.size[0]}x{field.size[1]} px", fontsize=12)
    fig.tight_layout()
    return fig


@checks_inputs("images")
def patch_picker(model, images, tops, *, k=None):
    """An ipywidgets picker of layer and channel, with the `show_channel` picture below it.

    tops: TopActivations computed on `images` for each layer offered. The picture for the
    first layer's channel 0 is drawn at once, and again on every change of the controls
    (`vizlib.plotting.live_figure`); choosing a layer sets the channel slider's range.
    """
    import ipywidgets

    by_layer = {top.layer: top for top in tops}
    if not by_layer:
        raise ValueError("patch_picker needs at least one TopActivations")
    fields = {layer: receptive_field(model, layer) for layer in by_layer}
    first = next(iter(by_layer.values()))
    layer_box = ipywidgets.Dropdown(options=list(by_layer), value=first.layer, description="layer")
    channel_box = ipywidgets.IntSlider(value=0, min=0, max=first.channels - 1, description="channel",
                                       continuous_update=False)

    def draw(layer, channel):
        top = by_layer[layer]
        channel_box.max = top.channels - 1          # may clamp the channel; live_figure then draws again
        return show_channel(images, fields[layer], top, min(channel, top.channels - 1), k=k)

    panel = live_figure(draw, layer=layer_box, channel=channel_box)
    return ipywidgets.VBox([ipywidgets.HBox([layer_box, channel_box]), *panel.children[2:]])   # message, picture
