"""Reference solutions to the exercises of notebook 14 (instructor only; the student release leaves this folder out).

All on the offline loss networks of the notebook (the course model for the content, the random filter bank for
the style), at the notebook's fast-mode size of 64 px. Each result is judged, as the notebook's claim is, on what
the loss did not optimise: edges against the content image, colours against the style image, and Gram matrices
in a network the loss never used.
"""
import torch

from vizlib.gram_texture import default_texture_weights, gram_distance, gram_matrix, random_filter_bank
from vizlib.images import load_sample_image
from vizlib.models import course_model
from vizlib.optim import optimise_image
from vizlib.style_transfer import (
    CONTENT_WEIGHT, STYLE_WEIGHTS, TV_WEIGHT, StyleTransferLoss, colour_histogram_intersection, default_style_model,
    edge_correlation, style_image, style_transfer,
)

SEED = 0
SIZE = 64
STEPS = 30


def _setup():
    model, style_model = course_model(), default_style_model()
    content = load_sample_image("chelsea", SIZE)
    options = dict(style_weights=STYLE_WEIGHTS, style_model=style_model, tv_weight=TV_WEIGHT, seed=SEED,
                   show_progress=False)
    return model, content, options


def exercise_1():
    """From low-contrast noise, content weight 0.3 against 30: how early the cat's edges show."""
    model, content, options = _setup()
    style = style_image("hubble_deep_field", SIZE)
    start = 0.5 + 0.2 * (torch.rand(content.shape, generator=torch.Generator().manual_seed(SEED)) - 0.5)
    edges = {}
    for weight in (0.3, 30.0):
        for steps in (10, 2 * STEPS):   # L-BFGS from the same start is deterministic: 10 steps are a prefix of 60
            result = style_transfer(model, content, style, content_weight=weight, init=start, steps=steps, **options)
            edges[weight, steps] = edge_correlation(result.images, content)[0]
    for (weight, steps), value in edges.items():
        print(f"content weight {weight:4g}, {steps:2d} steps: edge correlation with the content {value:.3f}")
    assert edges[30.0, 2 * STEPS] > edges[0.3, 2 * STEPS] + 0.1, edges
    assert edges[30.0, 2 * STEPS] > edges[30.0, 10], edges
    return edges


def exercise_2():
    """The content term at features.relu1, relu2 (the default) and relu3 of the course model."""
    model, content, options = _setup()
    style = style_image("hubble_deep_field", SIZE)
    scores = {}
    for layer in ("features.relu1", "features.relu2", "features.relu3"):
        result = style_transfer(model, content, style, content_layer=layer, content_weight=CONTENT_WEIGHT,
                                init="noise", steps=2 * STEPS, **options)
        scores[layer] = (edge_correlation(result.images, content)[0],
                         colour_histogram_intersection(result.images, style)[0])
        print(f"content at {layer}: edge correlation {scores[layer][0]:.3f}, colour overlap with the style "
              f"{scores[layer][1]:.3f}")
    assert scores["features.relu1"][0] > scores["features.relu3"][0] + 0.1, scores
    return scores


def exercise_3():
    """The style image at 32 px and at 96 px (half and one and a half times the result's size).

    Which scale does the result follow? Judged by a network the loss never used (random 7x7 filters, another
    seed, as in notebook 13's claim): the Gram distance of each result to each version of the style.
    """
    model, content, options = _setup()
    judge = random_filter_bank(kernel_sizes=(7,), channels=64, octaves=4, seed=1)
    layers = list(default_texture_weights(judge))
    sizes = (SIZE // 2, 3 * SIZE // 2)
    styles = {size: style_image("hubble_deep_field", size) for size in sizes}
    distance = {}
    for made_with in sizes:
        result = style_transfer(model, content, styles[made_with], content_weight=CONTENT_WEIGHT, init="content",
                                steps=STEPS, **options).images
        for judged_against in sizes:
            distance[made_with, judged_against] = gram_distance(judge, result, layers, styles[judged_against]).item()
        print(f"style at {made_with} px: judge Gram distance to the style at "
              + ", ".join(f"{size} px {distance[made_with, size]:.3f}" for size in sizes))
    for size in sizes:
        other = sizes[1 - sizes.index(size)]
        assert distance[size, size] < distance[other, size], distance
    return distance


class MixedStyleLoss(StyleTransferLoss):
    """The style target is the average of the Gram matrices of two style images."""

    def __init__(self, model, style, second_style, **options):
        super().__init__(model, style, **options)
        with torch.no_grad():
            second = {name: gram_matrix(f) for name, f in self._style_features(second_style).items()}
        self.target_grams = {name: (gram + second[name]) / 2 for name, gram in self.target_grams.items()}
        self.relative_style_weights = {name: w / self.target_grams[name].pow(2).mean().clamp_min(1e-12)
                                       for name, w in self.style_weights.items()}


def exercise_4():
    """Style mixing: the average Gram matrices of the Hubble deep field and the stained cells."""
    model, content, options = _setup()
    seed = options.pop("seed")
    options.pop("show_progress")
    styles = {name: style_image(name, SIZE) for name in ("hubble_deep_field", "immunohistochemistry")}

    def run(loss):
        targets = loss.content_targets(content)
        return optimise_image(lambda images: loss(images, targets), content, steps=STEPS, lr=1.0, optimizer="lbfgs",
                              parameterisation="sigmoid", seed=seed, show_progress=False).images

    first, second = styles.values()
    results = {"hubble only": run(StyleTransferLoss(model, first, **options)),
               "cells only": run(StyleTransferLoss(model, second, **options)),
               "mixed": run(MixedStyleLoss(model, first, second, **options))}
    overlap = {label: (colour_histogram_intersection(images, first)[0],
                       colour_histogram_intersection(images, second)[0]) for label, images in results.items()}
    for label, (with_first, with_second) in overlap.items():
        print(f"{label:12s} colour overlap with the Hubble field {with_first:.3f}, with the cells {with_second:.3f}")
    assert overlap["mixed"][0] > overlap["cells only"][0], overlap
    assert overlap["mixed"][1] > overlap["hubble only"][1], overlap
    return overlap
