"""Reference solutions to the exercises of notebook 18 (instructor only; the student release leaves this folder out)."""
import torch

import vizlib
from vizlib.feature_visualisation import (
    ESTIMATE_PHOTOGRAPHS, HELD_OUT_PHOTOGRAPHS, LUCID_COLOUR_SQRT, class_score, colour_matrix, colour_statistics,
    visualise, visualise_channels, whiten,
)
from vizlib.gradient_ascent import high_frequency_share, transform_robustness
from vizlib.images import load_sample_image
from vizlib.models import load_model

SEED = 0
STEPS = vizlib.fast_or(full=200, fast=40)       # the notebook's step count on the course model


def exercise_1():
    """The decay power: the pictures' high-frequency share falls as the decay rises."""
    model = load_model("course")
    shares = {}
    for decay in (0.0, 1.0, 2.0):
        images = visualise_channels(model, "features.bn3", [0, 1, 2, 3], decay=decay, steps=STEPS, seed=SEED,
                                    show_progress=False).images
        shares[decay] = high_frequency_share(images).mean().item()
    print("high-frequency share by decay power: " + ", ".join(f"{d:g}: {s:.3f}" for d, s in shares.items()))
    assert shares[0.0] > shares[1.0] > shares[2.0], shares
    return shares


def _eigenvalues(pixels):
    flat = pixels.permute(1, 0, 2, 3).reshape(3, -1).double()
    return torch.linalg.eigvalsh(torch.cov(flat, correction=0))


def exercise_2():
    """Lucid's matrix against ours, and why no matrix whitens a single photograph well."""
    model = load_model("course")
    pictures = {name: visualise(model, class_score(list(range(8))), matrix=matrix, steps=STEPS, seed=SEED,
                                show_progress=False).images
                for name, matrix in (("ours", None), ("Lucid", LUCID_COLOUR_SQRT))}
    for name, images in pictures.items():
        values = _eigenvalues(images)
        print(f"{name:6s} matrix: colour eigenvalues of the class pictures {[round(v, 4) for v in values.tolist()]}")
    mean = colour_statistics(torch.cat([load_sample_image(n, size=128) for n in ESTIMATE_PHOTOGRAPHS])).mean
    ratios = {}
    for name in HELD_OUT_PHOTOGRAPHS:
        photo = load_sample_image(name, size=128).double()
        for label, matrix in (("ours", colour_matrix()), ("Lucid", LUCID_COLOUR_SQRT)):
            values = _eigenvalues(whiten(photo, matrix, mean))
            ratios[name, label] = (values[-1] / values[0]).item()
            print(f"{name:8s} alone, whitened with {label:5s} matrix: largest / smallest eigenvalue "
                  f"{ratios[name, label]:.1f}")
    # a single photograph has its own colour statistics: whitened by a pooled matrix it stays far from white
    assert max(ratios.values()) > 10, ratios
    return ratios


def exercise_3():
    """Without the chain: robustness to 08's transformations on the course model."""
    model = load_model("course")
    classes = list(range(8))
    kept = {}
    for label, transforms in (("chain", "lucid"), ("no chain", None)):
        images = visualise(model, class_score(classes), transforms=transforms, steps=STEPS, seed=SEED,
                           show_progress=False).images
        kept[label] = transform_robustness(model, images, classes, n=64, seed=SEED).mean().item()
    print(", ".join(f"{label}: class kept {value:.1%}" for label, value in kept.items()))
    assert kept["chain"] >= kept["no chain"], kept
    return kept


def exercise_4():
    """A weighted difference of classes widens the margin between two similar shapes."""
    model = load_model("course")
    disc, ring = model.class_names.index("disc"), model.class_names.index("ring")
    margins = {}
    for label, objective in (("disc", class_score(disc)), ("disc - ring", class_score(disc) - class_score(ring))):
        images = visualise(model, objective, n=2, steps=STEPS, seed=SEED, show_progress=False).images
        with torch.no_grad():
            scores = model(images)
        margins[label] = (scores[:, disc] - scores[:, ring]).mean().item()
    print(", ".join(f"{label}: margin S_disc - S_ring {value:.1f}" for label, value in margins.items()))
    assert margins["disc - ring"] > margins["disc"], margins
    return margins
