"""Dimensionality reduction of features: PCA and t-SNE maps in 2-D (notebook 03).

The features come from `vizlib.neighbours.extract_features` (one row per image).

- `pca` projects them on their directions of largest variance (scikit-learn's PCA):
  linear, so it keeps large distances and loses small ones;
- `tsne` (van der Maaten & Hinton 2008) first reduces them to
  `pca_dims(n, d)` = min(50, d, n) dimensions with PCA, then places points in 2-D so
  that each point's neighbours stay its neighbours (openTSNE's Barnes-Hut t-SNE);
- `snap_to_grid` turns 2-D positions into a thumbnail layout: one image per grid
  cell, the one closest to the cell's centre, so thumbnails never overlap;
- `show_embeddings` and `show_thumbnails` draw the results.

`pca` and `tsne` return points as a float tensor (N, 2) in the embedding's own units,
on the device of the features (the CPU for numpy features); the numerical work itself
runs on the CPU, in scikit-learn and openTSNE.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from openTSNE import TSNE
from sklearn.decomposition import PCA

from vizlib.images import check_images, resize
from vizlib.neighbours import as_feature_matrix
from vizlib.plotting import FONT_SIZE

PCA_LIMIT = 50  # t-SNE's usual first step: PCA to at most this many dimensions


def pca_dims(n_points, n_features, limit=PCA_LIMIT):
    """How many PCA dimensions t-SNE starts from: min(limit, feature dimensions, points)."""
    return int(min(limit, n_features, n_points))


def _points(array, features):
    """A float32 numpy result as a tensor on the device of `features` (the CPU unless it is a tensor)."""
    device = features.device if isinstance(features, torch.Tensor) else None
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)


def pca(features, n_components=2, *, seed=0):
    """Project features (N, D) on their first `n_components` principal components: (N, n_components)."""
    matrix = as_feature_matrix(features, min_rows=2)
    n, d = matrix.shape
    if not isinstance(n_components, (int, np.integer)) or not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be between 1 and min(N, D) = {min(n, d)}, got {n_components!r}")
    return _points(PCA(n_components=int(n_components), random_state=seed).fit_transform(matrix), features)


def check_perplexity(perplexity, n_points):
    """Raise unless 0 < perplexity < n_points - 1 (t-SNE's effective number of neighbours)."""
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float, np.integer, np.floating)):
        raise TypeError(f"perplexity must be a number, got {type(perplexity).__name__}")
    if not 0 < perplexity < n_points - 1:
        raise ValueError(
            f"perplexity must lie in (0, {n_points - 1}) for {n_points} points, got {perplexity}; it is an "
            "effective number of neighbours among the other points, so keep it well below the number of "
            "points (5 to 50 is usual)"
        )


def tsne(features, *, perplexity=30.0, seed=0, init="pca", pca_limit=PCA_LIMIT, n_iter=500):
    """t-SNE map of features (N, D) to 2-D: (N, 2); the same seed gives the same map.

    Features are first reduced with PCA to `pca_dims(N, D, pca_limit)` dimensions,
    which removes noise and speeds up the neighbour search. openTSNE (Policar et al.
    2024) then computes exact nearest neighbours and affinities at the given
    perplexity, starts from the 2-D PCA layout (init="pca", which keeps more of the
    global arrangement and does not depend on the seed) or from a random one drawn
    with `seed` (init="random"), and runs 250 steps with early exaggeration followed
    by `n_iter` ordinary steps, with Barnes-Hut gradients on as many threads as torch
    uses (`torch.get_num_threads()`, which follows OMP_NUM_THREADS), so a machine
    shared with other work can be told to use fewer. (Measured at this course's sizes,
    400 to 2000 points on 2 cores, it was 1.6x faster than scikit-learn's t-SNE at
    equal quality; `make bench` repeats the measurement.)
    """
    matrix = as_feature_matrix(features, min_rows=2)
    n, d = matrix.shape
    check_perplexity(perplexity, n)
    if init not in ("pca", "random"):
        raise ValueError(f"init must be 'pca' or 'random', got {init!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ValueError(f"n_iter must be an integer >= 0, got {n_iter!r}")
    # BEGIN SOLUTION
    reduced = PCA(n_components=pca_dims(n, d, pca_limit), random_state=seed).fit_transform(matrix)
    embedding = TSNE(
        n_components=2, perplexity=perplexity, initialization=init, n_iter=n_iter,
        neighbors="exact", negative_gradient_method="bh", n_jobs=torch.get_num_threads(), random_state=seed,
    ).fit(reduced)
    # END SOLUTION
    return _points(embedding, features)


def snap_to_grid(points, cells):
    """A non-overlapping thumbnail layout for 2-D points: at most one point per grid cell.

    The grid has square cells: `cells` of them across the longer side of the points'
    bounding box, as many as needed across the shorter one. A point belongs to the
    cell it falls in; of the points in a cell, the one nearest the cell's centre is
    kept and the others are not shown. Returns (kept, rows_cols, centres, shape):
    indices of the kept points (M,), their cells as (row, column) with row 0 at the
    top (largest y), the cells' centres in the points' units (M, 2), and the grid's
    (rows, columns). Every kept point lies within half a cell of its centre in x and y.
    """
    points = as_feature_matrix(points, "points", min_rows=1)
    if points.shape[1] != 2:
        raise ValueError(f"points: expected 2-D positions (N, 2), got shape {points.shape}")
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 1:
        raise ValueError(f"cells must be an integer >= 1 (cells across the longer side), got {cells!r}")
    points = points.astype(np.float64)
    low = points.min(0)
    span = float((points.max(0) - low).max())
    side = span / cells if span > 0 else 1.0
    shape = np.maximum(1, np.ceil((points.max(0) - low) / side - 1e-9).astype(int))  # (columns, rows)
    # BEGIN SOLUTION
    column_row = np.minimum(np.floor((points - low) / side).astype(int), shape - 1)
    centres = low + (column_row + 0.5) * side
    distance = np.linalg.norm(points - centres, axis=1)
    cell_id = column_row[:, 1] * shape[0] + column_row[:, 0]
    by_distance = np.lexsort((distance, cell_id))  # grouped by cell, nearest first within it
    first = np.ones(len(by_distance), dtype=bool)
    first[1:] = cell_id[by_distance[1:]] != cell_id[by_distance[:-1]]
    kept = by_distance[first]
    # END SOLUTION
    n_columns, n_rows = int(shape[0]), int(shape[1])
    rows_cols = np.stack([n_rows - 1 - column_row[kept, 1], column_row[kept, 0]], axis=1)
    return kept, rows_cols, centres[kept], (n_rows, n_columns)


def thumbnail_canvas(images, kept, rows_cols, shape, *, size=32, background=1.0):
    """Paste thumbnails of `images[kept]` into their grid cells: a (3, rows*size, columns*size) image."""
    check_images(images)
    kept = torch.as_tensor(np.asarray(kept), dtype=torch.long)
    rows, columns = shape
    canvas = torch.full((3, rows * size, columns * size), float(background))
    if len(kept) == 0:
        return canvas
    thumbs = resize(images[kept].detach().cpu().float(), size)
    for thumb, (row, column) in zip(thumbs, np.asarray(rows_cols)):
        canvas[:, row * size:(row + 1) * size, column * size:(column + 1) * size] = thumb
    return canvas


def _colours(n):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def show_embeddings(embeddings, labels, class_names=None, *, size=5.0, point_size=10, legend_title="class"):
    """Scatter plots side by side, one per {title: points (N, 2)}, coloured by label."""
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    present = np.unique(labels)
    colours = dict(zip(present, _colours(len(present))))
    fig, axes = plt.subplots(1, len(embeddings), figsize=(size * len(embeddings) + 1.8, size), squeeze=False)
    for ax, (title, points) in zip(axes[0], embeddings.items()):
        points = as_feature_matrix(points, title, min_rows=1)
        for label in present:
            chosen = labels == label
            name = class_names[int(label)] if class_names is not None else str(label)
            ax.scatter(points[chosen, 0], points[chosen, 1], s=point_size, color=colours[label], label=name,
                       alpha=0.8, linewidths=0)
        ax.set_aspect("equal", adjustable="datalim")  # one unit is one unit in both directions
        ax.set_title(title, fontsize=FONT_SIZE + 2)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(present) <= 20:
        handles, names = axes[0, -1].get_legend_handles_labels()
        fig.legend(handles, names, title=legend_title, loc="center right", fontsize=FONT_SIZE - 1,
                   markerscale=2.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.8 / fig.get_figwidth(), 1))
    return fig


def show_thumbnails(images, points, *, cells=24, size=32, title=None, inches_per_cell=0.33):
    """The thumbnail layout of a 2-D embedding: each image drawn at its snapped grid cell.

    `cells` cells span the longer side of the map; each thumbnail is `size` pixels and
    about `inches_per_cell` inches across, so a larger grid makes a larger figure.
    """
    kept, rows_cols, _, shape = snap_to_grid(points, cells)
    canvas = thumbnail_canvas(images, kept, rows_cols, shape, size=size)
    rows, columns = shape
    fig, ax = plt.subplots(figsize=(max(columns, 8) * inches_per_cell, max(rows, 4) * inches_per_cell + 0.5))
    ax.imshow(canvas.permute(1, 2, 0).numpy())
    ax.axis("off")
    if title:
        ax.set_title(f"{title} ({len(kept)} of {len(points)} images shown)", fontsize=FONT_SIZE + 2)
    fig.tight_layout()
    return fig
