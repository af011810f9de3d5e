"""PCA, t-SNE and the thumbnail grid, checked against independent computations.

The grid layout is checked cell by cell with a brute-force loop; PCA against an
SVD done here; t-SNE for its input (the PCA step), its seed and its validation.

Oracles (where each homework region's expected values come from):
- tsne(): a stand-in for openTSNE records that it receives the PCA-reduced features (PCA itself checked
  against an SVD); on separated blobs every point's nearest neighbour in the map is of its own blob.
- snap_to_grid(): a brute-force loop over the grid's cells.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import vizlib.embedding as embedding
from vizlib.embedding import check_perplexity, pca, pca_dims, snap_to_grid, thumbnail_canvas, tsne


def blobs(n_per_blob=30, dims=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, size=(3, dims))
    points = np.concatenate([c + rng.normal(size=(n_per_blob, dims)) for c in centres]).astype(np.float32)
    return points, np.repeat(np.arange(3), n_per_blob)


def brute_force_grid(points, cells):
    """For every cell of the square grid, the point nearest its centre among those inside it."""
    low = points.min(0)
    side = (points.max(0) - low).max() / cells
    n_columns = int(np.ceil((points[:, 0].max() - low[0]) / side - 1e-9)) or 1
    n_rows = int(np.ceil((points[:, 1].max() - low[1]) / side - 1e-9)) or 1
    expected = {}
    for column in range(n_columns):
        for row in range(n_rows):
            x0, y0 = low[0] + column * side, low[1] + row * side
            inside = [
                i for i, (x, y) in enumerate(points)
                if (x0 <= x < x0 + side or (column == n_columns - 1 and x == x0 + side))
                and (y0 <= y < y0 + side or (row == n_rows - 1 and y == y0 + side))
            ]
            if inside:
                centre = np.array([x0 + side / 2, y0 + side / 2])
                best = min(inside, key=lambda i: np.linalg.norm(points[i] - centre))
                expected[(n_rows - 1 - row, column)] = (best, centre)
    return expected, side, (n_rows, n_columns)


@pytest.mark.parametrize("cells", [1, 4, 11])
def test_grid_keeps_the_point_nearest_each_occupied_cell_centre(cells):
    rng = np.random.default_rng(cells)
    points = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal(4, 0.3, (50, 2))]) * [3.0, 1.0]
    kept, rows_cols, centres, shape = snap_to_grid(points, cells)
    expected, side, expected_shape = brute_force_grid(points, cells)
    assert shape == expected_shape
    cells_used = [tuple(rc) for rc in rows_cols.tolist()]
    assert len(set(cells_used)) == len(cells_used), "two thumbnails share a cell"
    assert set(cells_used) == set(expected), "an occupied cell is empty, or an empty one is used"
    for index, cell, centre in zip(kept, cells_used, centres):
        best, expected_centre = expected[cell]
        assert index == best
        np.testing.assert_allclose(centre, expected_centre, atol=1e-9)
        assert np.all(np.abs(points[index] - centre) <= side / 2 + 1e-9), "thumbnail far from its point"


def test_grid_with_one_point_or_identical_points():
    kept, rows_cols, _, shape = snap_to_grid(np.zeros((5, 2)), 8)
    assert len(kept) == 1 and shape == (1, 1) and rows_cols.tolist() == [[0, 0]]
    kept, _, _, _ = snap_to_grid(np.array([[1.0, 2.0]]), 3)
    assert kept.tolist() == [0]


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="empty dataset"):
        snap_to_grid(np.zeros((0, 2)), 4)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        snap_to_grid(np.zeros((4, 3)), 4)
    with pytest.raises(ValueError, match=">= 1"):
        snap_to_grid(np.zeros((4, 2)), 0)


def test_thumbnail_canvas_puts_each_image_in_its_cell():
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    canvas = thumbnail_canvas(images, [2, 0], np.array([[1, 0], [0, 2]]), (2, 3), size=8, background=1.0)
    assert canvas.shape == (3, 16, 24)
    torch.testing.assert_close(canvas[:, 8:16, 0:8], images[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(canvas[:, 0:8, 16:24], images[0], atol=1e-5, rtol=0)
    assert torch.all(canvas[:, 0:8, 0:8] == 1.0)


def test_pca_matches_an_svd():
    points, _ = blobs()
    centred = points.astype(np.float64) - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    projected = pca(torch.from_numpy(points), 2)
    assert isinstance(projected, torch.Tensor) and projected.dtype == torch.float32
    projected = projected.numpy()
    for j in range(2):  # each component is defined up to its sign
        sign = np.sign(projected[:, j] @ expected[:, j])
        np.testing.assert_allclose(sign * projected[:, j], expected[:, j], rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match=r"between 1 and min\(N, D\) = 20"):
        pca(points, 21)


@pytest.mark.parametrize("n, d, expected", [(1000, 128, 50), (1000, 20, 20), (30, 128, 30), (60, 4096, 50)])
def test_pca_step_dimension(n, d, expected):
    assert pca_dims(n, d) == expected


@pytest.mark.parametrize("n, d, expected", [(90, 128, 50), (90, 20, 20), (40, 128, 40)])
def test_tsne_runs_on_the_pca_reduced_features(monkeypatch, n, d, expected):
    seen = []

    class RecordingTSNE(embedding.TSNE):
        def fit(self, X=None, *args, **kwargs):
            seen.append(X.shape)
            return np.zeros((len(X), 2))

    monkeypatch.setattr(embedding, "TSNE", RecordingTSNE)
    features = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    tsne(features, perplexity=5)
    assert seen == [(n, expected)]


def test_tsne_is_deterministic_by_seed_and_separates_blobs():
    points, labels = blobs()
    first = tsne(points, perplexity=10, seed=1, n_iter=250)
    assert isinstance(first, torch.Tensor) and first.dtype == torch.float32
    first = first.numpy()
    np.testing.assert_array_equal(first, tsne(points, perplexity=10, seed=1, n_iter=250))
    assert first.shape == (len(points), 2)
    randomly = tsne(points, perplexity=10, seed=1, init="random", n_iter=100)
    np.testing.assert_array_equal(randomly, tsne(points, perplexity=10, seed=1, init="random", n_iter=100))
    assert not np.allclose(randomly, tsne(points, perplexity=10, seed=2, init="random", n_iter=100))
    # Each point's nearest neighbour in the map comes from its own blob.
    distances = np.linalg.norm(first[:, None] - first[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert np.all(labels[distances.argmin(1)] == labels)


@pytest.mark.parametrize("perplexity", [29, 30, 31.5, 0, -1])
def test_perplexity_must_be_below_the_number_of_points(perplexity):
    with pytest.raises(ValueError, match=r"perplexity must lie in \(0, 29\) for 30 points"):
        check_perplexity(perplexity, 30)
    with pytest.raises(ValueError, match=r"\(0, 29\)"):
        tsne(np.random.default_rng(0).normal(size=(30, 5)), perplexity=perplexity)


def test_bad_input_to_tsne_is_a_clear_error():
    with pytest.raises(TypeError, match="perplexity must be a number"):
        check_perplexity(True, 30)
    with pytest.raises(ValueError, match="empty dataset"):
        tsne(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="empty dataset"):
        pca(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="'pca' or 'random'"):
        tsne(np.zeros((10, 3)), perplexity=2, init="spectral")
    with pytest.raises(ValueError, match="n_iter"):
        tsne(np.zeros((10, 3)), perplexity=2, n_iter=-1)
    with pytest.raises(ValueError, match="NaN"):
        tsne(np.full((10, 3), np.nan), perplexity=2)


def test_pictures_draw():
    points, labels = blobs(n_per_blob=10)
    images = torch.rand(len(points), 3, 16, 16, generator=torch.Generator().manual_seed(0))
    fig = embedding.show_embeddings({"PCA": pca(points), "again": pca(points)}, labels, ["a", "b", "c"])
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = embedding.show_thumbnails(images, pca(points), cells=5, size=8, title="PCA")
    assert "of 30 images shown" in fig.axes[0].get_title()
    plt.close(fig)
