"""Feature extraction and nearest neighbours, against values derived independently.

Features are recomputed by running the network's modules by hand (no hooks);
neighbours and precision@k against a brute-force search written here with
torch.cdist + argsort.

Oracles (where each homework region's expected values come from):
- extract_features(): the network's modules run one by one by hand, without hooks.
- nearest_neighbours(): a brute-force search with torch.cdist and argsort.
- precision_at_k(): labels counted in a loop over the brute-force neighbours; a hand-made example.
"""

import matplotlib.pyplot as plt
import pytest
import torch

from model_state import assert_unchanged, fingerprint
from vizlib.course_data import make_shapes
from vizlib.models import random_imagenet_model
from vizlib.neighbours import (
    chance_precision,
    extract_features,
    feature_layer,
    nearest_neighbours,
    precision_at_k,
    show_neighbours,
)


@pytest.fixture(scope="module")
def shapes():
    images, labels, _ = make_shapes(60, "held_out", seed=3)
    return images, labels


def brute_force_neighbours(features, k, queries):
    distances = torch.cdist(features[queries].double(), features.double())
    distances[torch.arange(len(queries)), queries] = float("inf")  # never your own neighbour
    order = distances.argsort(dim=1)[:, :k]
    return order, distances.gather(1, order)


def brute_force_precision(order, labels, queries):
    hits = [sum(int(labels[j] == labels[q]) for j in row) for q, row in zip(queries.tolist(), order.tolist())]
    return sum(hits) / (len(queries) * order.shape[1])


def test_course_features_are_fc1_after_relu(course, shapes):
    images, _ = shapes
    before = fingerprint(course)
    features = extract_features(course, images, batch_size=7, show_progress=False)
    assert_unchanged(course, before)
    net = course.net
    with torch.no_grad():
        x = net.features((images - course.mean) / course.std)  # normalisation and layers by hand
        expected = torch.relu(net.classifier.fc1(x.mean(dim=(2, 3))))
    assert features.shape == (len(images), 128)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)


def test_features_do_not_depend_on_batch_size(course, shapes):
    images = shapes[0][:20]
    one = extract_features(course, images, "features.relu5", batch_size=1, show_progress=False)
    many = extract_features(course, images, "features.relu5", batch_size=64, show_progress=False)
    assert one.shape == (len(images), 128 * 8 * 8)  # flattened (C, H, W)
    torch.testing.assert_close(one, many, rtol=1e-4, atol=1e-5)
    pooled = extract_features(course, images, "features.relu5", pool="mean", show_progress=False)
    torch.testing.assert_close(pooled, many.view(len(images), 128, 64).mean(2), rtol=1e-4, atol=1e-5)


def test_squeezenet_default_is_pooled_last_fire_module():
    model = random_imagenet_model("squeezenet1_1", seed=0)
    images = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    before = fingerprint(model)
    features = extract_features(model, images, show_progress=False)
    assert_unchanged(model, before)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.net.features((images - mean) / std).mean(dim=(2, 3))
    assert feature_layer(model) == ("features", "mean")
    assert features.shape == (3, 512)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)


def test_bad_input_to_extract_features_is_a_clear_error(course, shapes):
    images, _ = shapes
    before = fingerprint(course)
    with pytest.raises(ValueError, match="valid layer names: .*classifier.relu"):
        extract_features(course, images, "classifier.nope", show_progress=False)
    with pytest.raises(ValueError, match="the batch is empty"):
        extract_features(course, images[:0], show_progress=False)
    with pytest.raises(ValueError, match="flatten, mean"):
        extract_features(course, images, pool="max", show_progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(course, images, batch_size=0, show_progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        extract_features(course, images * 255, show_progress=False)
    assert_unchanged(course, before)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_neighbours_match_brute_force(k):
    features = torch.randn(80, 16, generator=torch.Generator().manual_seed(k))
    queries = torch.tensor([0, 5, 17, 79, 42])
    found = nearest_neighbours(features, k, queries=queries)
    indices, distances = found.indices, found.distances
    order, expected = brute_force_neighbours(features, k, queries)
    assert indices.dtype == torch.long and indices.shape == (5, k)
    assert torch.equal(indices, order)
    torch.testing.assert_close(distances, expected.float(), rtol=1e-4, atol=1e-4)


def test_pixel_neighbours_and_precision_match_brute_force(shapes):
    images, labels = shapes
    pixels = images.flatten(1)
    indices = nearest_neighbours(pixels, 5).indices
    queries = torch.arange(len(images))
    order, _ = brute_force_neighbours(pixels, 5, queries)
    assert torch.equal(indices, order)
    assert precision_at_k(indices, labels) == pytest.approx(brute_force_precision(order, labels, queries))


def test_precision_on_a_hand_made_example():
    labels = torch.tensor([0, 0, 1, 1])
    neighbours = torch.tensor([[1, 2], [2, 3], [3, 0]])  # queries 0, 1, 2: hits 1, 0, 1 of 2 each
    assert precision_at_k(neighbours, labels, queries=[0, 1, 2]) == pytest.approx(2 / 6)


def test_chance_precision_is_the_share_of_same_label_pairs():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    n = len(labels)
    same = sum(int(labels[i] == labels[j]) for i in range(n) for j in range(n) if i != j)
    assert chance_precision(labels) == pytest.approx(same / (n * (n - 1)))


def test_a_query_is_never_its_own_neighbour_even_with_duplicates():
    features = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    found = nearest_neighbours(features, 2)
    indices, distances = found.indices, found.distances
    for query, row in enumerate(indices.tolist()):
        assert query not in row
    assert set(indices[0].tolist()) == {1, 2} and distances[:3].max() == 0


def test_bad_input_to_the_search_is_a_clear_error():
    features = torch.randn(6, 3)
    with pytest.raises(ValueError, match="from 1 to 5"):
        nearest_neighbours(features, 6)
    with pytest.raises(ValueError, match="from 1 to 5"):
        nearest_neighbours(features, 0)
    with pytest.raises(ValueError, match="empty dataset"):
        nearest_neighbours(features[:0], 1)
    with pytest.raises(ValueError, match=r"indices in 0\.\.5"):
        nearest_neighbours(features, 2, queries=[6])
    with pytest.raises(ValueError, match="matrix"):
        nearest_neighbours(features[0], 1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        nearest_neighbours(torch.cat([features, torch.full((1, 3), float("nan"))]), 2)
    with pytest.raises(ValueError, match="empty dataset"):
        chance_precision(torch.tensor([1]))


def test_show_neighbours_draws_every_cell(shapes):
    images, labels = shapes
    queries = torch.tensor([0, 1])
    pixels = nearest_neighbours(images.flatten(1), 2, queries=queries).indices
    fig = show_neighbours(images, queries, {"pixel space": pixels, "again": pixels}, labels=labels,
                          class_names=[str(i) for i in range(8)])
    assert len(fig.axes) == 2 * (1 + 2 * (1 + 2))
    plt.close(fig)
    fig = show_neighbours(images, queries, {"pixel space": pixels})  # no labels: photographs
    assert len(fig.axes) == 2 * (1 + 1 + 2)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(2, k\)"):
        show_neighbours(images, queries, {"pixel space": pixels[:1]})
