"""Reference solutions to the exercises of notebook 03 (instructor only; the student release leaves this folder out).

t-SNE is the slow part, so these run on 200 course images with 250 ordinary steps: the findings hold at that size.
"""

import numpy as np
import pytest
import torch
from sklearn.manifold import trustworthiness

from vizlib.datasets import images_for_model
from vizlib.embedding import pca, tsne
from vizlib.models import course_model
from vizlib.neighbours import chance_precision, extract_features, nearest_neighbours, precision_at_k

SEED = 0
N_IMAGES = 200
STEPS = 250


def setup(n_images=N_IMAGES):
    model = course_model()
    images, labels, masks = images_for_model(model, n_images, seed=SEED)
    return model, images, labels, masks, extract_features(model, images)


def map_precision(points, labels, k=10):
    """Share of a point's k nearest neighbours in the map that have its class: islands score high."""
    return precision_at_k(nearest_neighbours(torch.as_tensor(np.asarray(points)), k).indices, labels)


def trust(features, points, k=10):
    return trustworthiness(np.asarray(features), np.asarray(points), n_neighbors=k)


def exercise_1():
    """Perplexity small and large, and the limit at the number of points (120 images to keep it quick)."""
    _, _, labels, _, features = setup(120)
    result = {}
    for perplexity in (5, 40):
        points = tsne(features, perplexity=perplexity, seed=SEED, n_iter=STEPS)
        result[perplexity] = (trust(features, points), map_precision(points, labels))
        print(f"perplexity {perplexity}: trustworthiness@10 {result[perplexity][0]:.4f}, "
              f"class precision in the map {result[perplexity][1]:.3f}")
    assert min(t for t, _ in result.values()) > 0.98, "islands survive a wide range of perplexities"
    with pytest.raises(ValueError, match="perplexity"):
        tsne(features, perplexity=len(features), seed=SEED)


def exercise_2():
    """Two random starts: what survives a change of seed."""
    _, _, labels, _, features = setup(150)
    maps = [tsne(features, init="random", seed=seed, n_iter=STEPS) for seed in (1, 2)]
    neighbours = [nearest_neighbours(torch.as_tensor(m), 10).indices for m in maps]
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(*neighbours)])
    coordinates = max(abs(np.corrcoef(maps[0][:, i], maps[1][:, j])[0, 1]) for i in range(2) for j in range(2))
    print(f"shared map neighbours between seeds {overlap:.2f}; best correlation of a coordinate across seeds "
          f"{coordinates:.2f}")
    assert overlap > 0.8, "neighbourhoods survive a change of seed"


def exercise_3():
    """What PCA's first axis orders: class, area or brightness."""
    _, images, labels, masks, features = setup()
    first = pca(features, 2, seed=SEED)[:, 0]
    area = masks.flatten(1).float().mean(1)
    brightness = images.mean((1, 2, 3))
    class_means = torch.stack([first[labels == k].mean() for k in labels.unique()])
    between = sum((labels == k).sum() * (first[labels == k].mean() - first.mean()) ** 2 for k in labels.unique())
    explained = float(between / ((first - first.mean()) ** 2).sum())
    r_area = abs(np.corrcoef(first, area)[0, 1])
    r_bright = abs(np.corrcoef(first, brightness)[0, 1])
    print(f"PCA axis 1: share of its variance between classes {explained:.2f}; |r| with area {r_area:.2f}, "
          f"with brightness {r_bright:.2f}; class means {np.round(class_means.numpy(), 1)}")
    assert explained > 0.5 and max(r_area, r_bright) < 0.3, "the first axis orders classes, not area or brightness"


def exercise_4():
    """Along an island: the object's area, measured from the masks."""
    _, _, labels, masks, features = setup()
    points = tsne(features, seed=SEED, n_iter=STEPS).numpy()
    area = masks.flatten(1).float().mean(1).numpy()
    along, across = [], []
    for k in labels.unique():
        island = points[(labels == k).numpy()]
        island = island - island.mean(0)
        axes = np.linalg.svd(island, full_matrices=False)[2]
        along.append(abs(np.corrcoef(island @ axes[0], area[(labels == k).numpy()])[0, 1]))
        across.append(abs(np.corrcoef(island @ axes[1], area[(labels == k).numpy()])[0, 1]))
    print(f"|r| of area with each island's long axis {np.round(along, 2)} (mean {np.mean(along):.2f}); "
          f"with its short axis (mean {np.mean(across):.2f})")
    assert np.mean(along) < 0.45 and np.mean(along) < np.mean(across) + 0.15, (
        "area is only weakly related to the islands' long axes, no more than to their short ones")


def exercise_5():
    """Trustworthiness at larger neighbourhoods."""
    _, _, _, _, features = setup()
    t_points, p_points = tsne(features, seed=SEED, n_iter=STEPS), pca(features, 2, seed=SEED)
    scores = {k: (trust(features, t_points, k), trust(features, p_points, k)) for k in (10, 50, 75)}
    for k, (t, p) in scores.items():
        print(f"k={k}: t-SNE {t:.4f}, PCA {p:.4f}")
    assert 1 - scores[10][0] < 0.5 * (1 - scores[10][1])
    assert scores[75][0] < scores[75][1] + 0.005, "t-SNE's lead is gone for large neighbourhoods"


def exercise_6():
    """An earlier layer: features.pool2."""
    model, images, labels, _, _ = setup()
    early = extract_features(model, images, "features.pool2")
    points = tsne(early, seed=SEED, n_iter=STEPS)
    precision, chance = map_precision(points, labels), chance_precision(labels)
    print(f"features.pool2: class precision in the t-SNE map {precision:.3f} (chance {chance:.3f})")
    assert precision < 0.4, "the classes do not separate at pool2"


def exercise_7():
    """The untrained course model."""
    _, images, labels, _, _ = setup()
    features = extract_features(course_model(trained=False, seed=SEED), images)
    t_points, p_points = tsne(features, seed=SEED, n_iter=STEPS), pca(features, 2, seed=SEED)
    precision, chance = map_precision(t_points, labels), chance_precision(labels)
    t, p = trust(features, t_points), trust(features, p_points)
    print(f"untrained: class precision in the map {precision:.3f} (chance {chance:.3f}); "
          f"trustworthiness@10 t-SNE {t:.4f}, PCA {p:.4f}")
    assert precision < chance + 0.1, "no class islands without training"
    assert t > p, "t-SNE is still the more faithful map of these (meaningless) features"
