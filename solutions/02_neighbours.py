"""Reference solutions to the exercises of notebook 02 (instructor only; the student release leaves this folder out)."""

import torch

from vizlib.datasets import images_for_model
from vizlib.models import course_model
from vizlib.neighbours import chance_precision, extract_features, nearest_neighbours, precision_at_k

SEED = 0
N_IMAGES = 400  # the notebook's fast-mode size on the course model


def setup():
    model = course_model()
    images, labels, _ = images_for_model(model, N_IMAGES, seed=SEED)
    return model, images, labels, extract_features(model, images)


def exercise_1():
    """Which classes meet among feature-space neighbours, and among the model's own mistakes."""
    model, images, labels, features = setup()
    n = len(model.class_names)
    neighbour_labels = labels[nearest_neighbours(features, 10).indices]
    mixed = torch.zeros(n, n, dtype=torch.long)
    for query, row in zip(labels, neighbour_labels):
        for label in row:
            mixed[query, label] += 1
    mixed.fill_diagonal_(0)
    pairs = mixed + mixed.T  # unordered pairs
    a, b = divmod(int(pairs.triu().argmax()), n)
    with torch.no_grad():
        predicted = model(images.to(model.device)).argmax(1).cpu()
    errors = torch.zeros(n, n, dtype=torch.long)
    for true, guess in zip(labels, predicted):
        errors[true, guess] += 1
    errors.fill_diagonal_(0)
    errors = errors + errors.T
    names = model.class_names
    print(f"most mixed-up pair among neighbours: {names[a]} / {names[b]} ({int(pairs[a, b])} of "
          f"{int(pairs.triu().sum())} wrong neighbours); model's mistakes on that pair: {int(errors[a, b])} of "
          f"{int(errors.triu().sum())}")
    assert {names[a], names[b]} == {"disc", "heart"}
    assert errors[a, b] == errors.triu().max() and errors[a, b] > 0, "the model itself confuses the same pair most"


def exercise_2():
    """Precision@k for growing k, down to chance when k covers every other image."""
    _, _, labels, features = setup()
    precision = {k: precision_at_k(nearest_neighbours(features, k).indices, labels)
                 for k in (1, 10, 50, len(labels) - 1)}
    chance = chance_precision(labels)
    print({k: round(v, 3) for k, v in precision.items()}, f"chance {chance:.3f}")
    assert precision[1] >= precision[10] >= precision[50] + 0.1
    assert abs(precision[len(labels) - 1] - chance) < 1e-6, "k = N - 1 takes every other image: chance exactly"


def exercise_3():
    """Unit-length features: Euclidean ranking becomes cosine ranking."""
    _, _, labels, features = setup()
    raw = precision_at_k(nearest_neighbours(features, 10).indices, labels)
    unit = precision_at_k(nearest_neighbours(features / features.norm(dim=1, keepdim=True), 10).indices, labels)
    print(f"precision@10: raw {raw:.3f}, unit length {unit:.3f}")
    assert unit > raw, "dropping the length (how strongly an image activates) removes a nuisance"


def exercise_4():
    """Pixels shrunk 8x before the search."""
    model, images, labels, features = setup()
    pooled = torch.nn.functional.avg_pool2d(images, 8).flatten(1)
    pixel = precision_at_k(nearest_neighbours(images.flatten(1), 10).indices, labels)
    small = precision_at_k(nearest_neighbours(pooled, 10).indices, labels)
    chance = chance_precision(labels)
    print(f"precision@10: pixels {pixel:.3f}, pooled pixels {small:.3f}, chance {chance:.3f}")
    assert small < chance + 0.06, "shrunk pixels are still close to chance: shape is gone, colour and layout remain"
