"""Last layer: nearest neighbours in pixel space and in feature space (notebook 02).

Krizhevsky et al. (2012) looked at what a trained network's last hidden layer
encodes by searching, for a query image, the training images whose feature
vectors lie closest to the query's. Images close in that space show the same
object, even when their pixels (colour, pose, background) differ a lot; images
close in pixel space merely share colours and layout.

- `extract_features` runs images through a model in batches and returns one
  feature vector per image, by default from the layer the classifier reads
  (`feature_layer` says which layer that is for each architecture);
- `nearest_neighbours` finds each query's k nearest other images (Euclidean
  distance, scikit-learn's NearestNeighbors);
- `precision_at_k` is the share of those neighbours that carry the query's
  label, and `chance_precision` what neighbours drawn at random would score;
- `show_neighbours` draws queries beside their neighbours.

Notebook 03 reuses `extract_features` for PCA and t-SNE.
"""

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from sklearn.neighbors import NearestNeighbors

from vizlib import config
from vizlib.arguments import check_batch_size
from vizlib.counts import check_int_in_range
from vizlib.hooks import capture_activations
from vizlib.images import check_images
from vizlib.layers import FEATURE_POOLING, layer_for
from vizlib.plotting import FONT_SIZE, as_display_array
from vizlib.wrapper import checks_inputs, get_layer, model_device

# How a spatial output becomes a vector: "flatten" keeps every value; "mean" averages each
# channel over its positions (global average pooling).
POOLING = ("flatten", "mean")


def feature_layer(model):
    """The layer (and its pooling) that `extract_features` uses by default for this model.

    It is the layer the final classifier reads: on the course model "classifier.relu"
    (fc1 after its ReLU, 128 values); on AlexNet and VGG the second fully connected
    layer after its ReLU (4096); on ResNet-18 the global average pool (512); on
    SqueezeNet 1.1 the output of its last Fire module averaged over positions (512),
    since its classifier is a 1x1 convolution followed by global pooling (vizlib.layers).
    """
    layer = layer_for(model, "features")
    return layer, FEATURE_POOLING[model if isinstance(model, str) else model.name]


@checks_inputs("images")
def extract_features(model, images, layer=None, *, pool=None, batch_size=256, show_progress=None):
    """One feature vector per image: the output of `layer`, as a float tensor (N, D).

    `layer` is a dotted layer name or module; None takes `feature_layer(model)`.
    `pool` says how a spatial output (N, C, H, W) becomes a vector: "flatten" keeps
    all C*H*W values, "mean" averages each channel over its H*W positions (D = C).
    It defaults to the default layer's pooling when `layer` is None, else "flatten".
    Images go through the model in batches of `batch_size` on the model's device,
    without gradients; the features come back on the device of `images`.
    """
    check_batch_size(batch_size)
    if layer is None:
        layer, default_pool = feature_layer(model)
        pool = default_pool if pool is None else pool
    pool = "flatten" if pool is None else pool
    if pool not in POOLING:
        raise ValueError(f"pool must be one of {', '.join(POOLING)}, got {pool!r}")
    name, _ = get_layer(model, layer)  # an unknown layer fails here, listing the valid names
    device = model_device(model)
    batches = images.split(batch_size)
    features = []
    with capture_activations(model, name) as activations, torch.no_grad():
        for batch in config.progress(batches, desc=f"features of {name}", enabled=show_progress):
            # BEGIN SOLUTION
            model(batch.to(device))
            output = activations[name]
            if pool == "mean" and output.dim() > 2:
                output = output.flatten(2).mean(2)
            features.append(output.flatten(1).float())
            # END SOLUTION
    return torch.cat(features).to(images.device)


def as_feature_matrix(features, name="features", *, min_rows=0):
    """Features (N, D), a tensor or array-like, as a numpy matrix of finite numbers with >= min_rows rows."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().float().numpy()
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"{name}: expected a matrix (N, D), one row per image, got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.number):
        raise TypeError(f"{name}: expected numbers, got dtype {features.dtype}")
    if len(features) < min_rows:
        raise ValueError(f"empty dataset: {name} needs at least {min_rows} rows, got {len(features)}")
    if not np.isfinite(features).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return features


def _query_indices(queries, n):
    if queries is None:
        return np.arange(n)
    queries = queries.detach().cpu().numpy() if isinstance(queries, torch.Tensor) else np.asarray(queries)
    queries = np.atleast_1d(queries)
    if queries.ndim != 1 or not np.issubdtype(queries.dtype, np.integer):
        raise TypeError(f"queries must be a 1-D sequence of integer indices, got {queries.dtype} {queries.shape}")
    if len(queries) == 0:
        raise ValueError("queries is empty: give at least one index")
    if queries.min() < 0 or queries.max() >= n:
        raise ValueError(f"queries must be indices in 0..{n - 1}, got {queries.min()}..{queries.max()}")
    return queries


@dataclass(frozen=True)
class Neighbours:
    """Each query's nearest other rows, nearest first."""

    indices: torch.Tensor     # (Q, k) long, rows of `features`
    distances: torch.Tensor   # (Q, k) Euclidean distances


def nearest_neighbours(features, k, *, queries=None):
    """The `k` nearest other rows of `features` for each query row (Euclidean distance).

    `features` is (N, D): a row per image (pixels flattened, or extracted features).
    `queries` are row indices (default: every row); each query is left out of its own
    neighbours. Returns `Neighbours`, both tensors on the device of `features` when it
    is a tensor, else on the CPU.
    """
    device = features.device if isinstance(features, torch.Tensor) else torch.device("cpu")
    matrix = as_feature_matrix(features)
    n = len(matrix)
    if n < 2:
        raise ValueError(f"empty dataset: nearest neighbours need at least 2 images, got {n}")
    k = check_int_in_range(k, "k", 1, n - 1, context=f" (the other images of {n})")
    queries = _query_indices(queries, n)
    # BEGIN SOLUTION
    search = NearestNeighbors(n_neighbors=k + 1).fit(matrix)
    distances, indices = search.kneighbors(matrix[queries])
    # END SOLUTION
    # Leave each query out of its own list. It is normally first; with exact duplicates
    # it may come later, or (all k + 1 at distance 0) not at all: then drop the last.
    is_self = indices == queries[:, None]
    is_self[~is_self.any(1), -1] = True
    keep = ~is_self
    indices = indices[keep].reshape(len(queries), k)
    distances = distances[keep].reshape(len(queries), k)
    return Neighbours(torch.as_tensor(indices, dtype=torch.long, device=device),
                      torch.as_tensor(distances, dtype=torch.float32, device=device))


def _labels(labels):
    labels = labels.detach().cpu() if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    if labels.dim() != 1:
        raise ValueError(f"labels: expected one label per image (N,), got shape {tuple(labels.shape)}")
    return labels


def precision_at_k(neighbours, labels, *, queries=None):
    """The share of neighbours that have their query's label, averaged over queries (a float).

    `neighbours` is the (Q, k) index tensor from `nearest_neighbours`, `labels` the (N,)
    labels of all rows, `queries` the (Q,) query indices it was computed for (default:
    every row, in order).
    """
    labels = _labels(labels)
    neighbours = torch.as_tensor(neighbours).cpu()
    if neighbours.dim() != 2:
        raise ValueError(f"neighbours: expected (queries, k), got shape {tuple(neighbours.shape)}")
    queries = torch.as_tensor(_query_indices(queries, len(labels)))
    if len(queries) != len(neighbours):
        raise ValueError(f"got {len(neighbours)} rows of neighbours for {len(queries)} queries")
    if neighbours.numel() and (neighbours.min() < 0 or neighbours.max() >= len(labels)):
        raise ValueError(f"neighbour indices must lie in 0..{len(labels) - 1}")
    # BEGIN SOLUTION
    same = labels[neighbours] == labels[queries][:, None]
    return same.float().mean().item()
    # END SOLUTION


def chance_precision(labels):
    """Precision@k of neighbours drawn at random from the other images: sum_c n_c (n_c - 1) / (N (N - 1))."""
    labels = _labels(labels)
    n = len(labels)
    if n < 2:
        raise ValueError(f"empty dataset: chance precision needs at least 2 labels, got {n}")
    counts = torch.unique(labels, return_counts=True)[1].double()
    return (counts * (counts - 1)).sum().item() / (n * (n - 1))


def show_neighbours(images, queries, neighbours, *, labels=None, class_names=None, size=1.3):
    """Each query (a row) beside its nearest neighbours, one block of columns per space.

    `neighbours` maps a title (e.g. "pixel space") to a (Q, k) index tensor from
    `nearest_neighbours`. With `labels`, a neighbour is framed green when it has its
    query's label and red when not; with `class_names` too, each image is captioned.
    """
    check_images(images)
    queries = _query_indices(queries, len(images))
    blocks = list(neighbours.items())
    if not blocks:
        raise ValueError("neighbours is empty: give at least one {title: indices} entry")
    ks = {torch.as_tensor(ix).shape for _, ix in blocks}
    if len(ks) != 1 or next(iter(ks))[0] != len(queries):
        raise ValueError(f"every block must be ({len(queries)}, k) with the same k, got {sorted(ks)}")
    k = next(iter(ks))[1]
    labels = None if labels is None else _labels(labels)
    columns = [("query", None, None)]
    for title, ix in blocks:
        columns.append(("gap", None, None))
        columns += [(title, torch.as_tensor(ix).cpu(), j) for j in range(k)]
    widths = [0.25 if kind == "gap" else 1.0 for kind, _, _ in columns]
    caption = labels is not None and class_names is not None
    # Fixed margins in inches (no tight_layout: it is slow for this many axes).
    gap, below, header = 0.06 * size, (0.3 if caption else 0.06) * size, 0.45
    width = size * sum(widths) + gap * (len(columns) - 1) + 0.2
    height = (size + below) * len(queries) + header + 0.1
    fig, axes = plt.subplots(
        len(queries), len(columns), squeeze=False, figsize=(width, height),
        gridspec_kw={
            "width_ratios": widths, "left": 0.1 / width, "right": 1 - 0.1 / width,
            "top": 1 - header / height, "bottom": (below + 0.1) / height,
            "wspace": gap / size, "hspace": below / size,
        },
    )
    for row, query in enumerate(queries):
        for col, (title, ix, j) in enumerate(columns):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if title == "gap":
                continue
            index = int(query) if ix is None else int(ix[row, j])
            ax.imshow(as_display_array(images[index]))
            if labels is not None and ix is not None:
                colour = "tab:green" if labels[index] == labels[query] else "tab:red"
                ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, lw=4, edgecolor=colour))
            if caption:
                ax.set_xlabel(str(class_names[int(labels[index])]), fontsize=FONT_SIZE - 2, labelpad=2)
    top = axes[0, 0].get_position().y1
    fig.text(axes[0, 0].get_position().x0 + axes[0, 0].get_position().width / 2, top + 0.01, "query",
             ha="center", va="bottom", fontsize=FONT_SIZE + 1)
    start = 2
    for title, _ in blocks:
        left, right = axes[0, start].get_position().x0, axes[0, start + k - 1].get_position().x1
        fig.text((left + right) / 2, top + 0.01, f"{k} nearest in {title}", ha="center", va="bottom",
                 fontsize=FONT_SIZE + 1)
        start += k + 1
    return fig
