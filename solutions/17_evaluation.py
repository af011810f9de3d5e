"""Reference solutions to the exercises of notebook 17 (instructor only; the student release leaves this folder out)."""
import math

import torch

from vizlib import course_data
from vizlib.cam import grad_cam
from vizlib.evaluation import area_under_curve, as_map, blurred, perturbation_curves, pixel_ranks, score_maps
from vizlib.layers import layer_for
from vizlib.models import load_model
from vizlib.occlusion import occlusion
from vizlib.saliency import centre_bias_maps, random_maps, saliency, smoothgrad
from vizlib.sanity import randomisation_check

SEED = 0
STEPS = 16


def _score_set(n=32):
    return course_data.make_shapes(n, "held_out", seed=11)


def _maps(model, images, labels):
    n, _, height, width = images.shape
    window, stride = model.input_size // 8, model.input_size // 16
    raw = {
        "saliency": saliency(model, images, labels),
        "occlusion": occlusion(model, images, labels, window=window, stride=stride, show_progress=False).maps,
        "Grad-CAM": grad_cam(model, images, layer_for(model, "grad_cam"), labels, show_progress=False),
        "random map": random_maps(n, height, width, seed=SEED),
        "centre bias": centre_bias_maps(n, height, width, sigma=0.15),
    }
    return {name: as_map(m, n, (height, width)).to(images.device) for name, m in raw.items()}


def deletion_auc(model, images, maps, classes, fill, steps=STEPS):
    """Mean deletion AUC when the deleted pixels take `fill` (N, 3, H, W): written out step by step."""
    n, _, height, width = images.shape
    ranks = pixel_ranks(maps).view(n, 1, height, width)
    per_step = math.ceil(height * width / steps)
    thresholds = torch.arange(steps + 1, device=images.device).view(-1, 1, 1, 1, 1) * per_step
    perturbed = torch.where(ranks < thresholds, fill, images)            # (steps + 1, N, 3, H, W)
    with torch.no_grad():
        probabilities = model(perturbed.flatten(0, 1)).softmax(1).view(steps + 1, n, -1)
    curve = probabilities.gather(2, classes.view(1, n, 1).expand(steps + 1, n, 1))[..., 0].T
    return area_under_curve(curve).mean().item()


def _ranking(aucs):
    return [name for name, _ in sorted(aucs.items(), key=lambda item: item[1])]


def exercise_1():
    """Deletion with black, grey and blurred fill: which methods move in the ranking."""
    model = load_model("course")
    images, labels, _ = _score_set(16)
    images = images.to(model.device)
    labels = labels.to(model.device)
    maps = _maps(model, images, labels)
    fills = {"black": torch.zeros_like(images), "grey": torch.full_like(images, 0.5), "blurred": blurred(images)}
    aucs = {fill: {name: deletion_auc(model, images, m, labels, value) for name, m in maps.items()}
            for fill, value in fills.items()}
    for fill, row in aucs.items():
        print(f"{fill:8s} " + "  ".join(f"{name} {auc:.3f}" for name, auc in sorted(row.items(), key=lambda i: i[1])))
    # the fill of the library's deletion game is black: the written-out version must agree with it
    library = area_under_curve(perturbation_curves(model, images, maps["Grad-CAM"], labels, steps=STEPS)).mean().item()
    assert abs(library - aucs["black"]["Grad-CAM"]) < 1e-4, (library, aucs["black"]["Grad-CAM"])
    # the finding: a blurred fill turns the pixel-level map's lead (or tie) into a clear lag behind the coarse maps
    lead = {fill: row["saliency"] - row["Grad-CAM"] for fill, row in aucs.items()}
    print("saliency's deletion AUC minus Grad-CAM's: " + ", ".join(f"{k} {v:+.3f}" for k, v in lead.items()))
    assert lead["blurred"] - lead["black"] > 0.03, lead
    assert aucs["blurred"]["occlusion"] < aucs["blurred"]["saliency"], aucs["blurred"]
    assert all(aucs["blurred"]["centre bias"] > aucs["blurred"][name] + 0.05
               for name in ("saliency", "occlusion", "Grad-CAM")), aucs["blurred"]
    return aucs


def edge_map(model, images, classes):
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().sum(1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().sum(1)
    return torch.nn.functional.pad(dy, (0, 0, 0, 1)) + torch.nn.functional.pad(dx, (0, 1, 0, 0))


def exercise_2():
    """The edge map in the cascading randomisation: a flat line at 1, the control of the test."""
    model = load_model("course")
    images, labels, _ = _score_set(8)
    methods = {"edge map": edge_map, "saliency": lambda m, x, c: saliency(m, x, c)}
    result = randomisation_check(model, images.to(model.device), methods, labels, steps=3, seed=SEED, keep=1)
    for name in methods:
        print(f"{name:10s} " + " ".join(f"{v:.3f}" for v in result.mean(name).tolist()))
    assert result.mean("edge map").min().item() > 0.999
    assert result.mean("saliency")[-1].item() < 0.9
    return result


def colour_centred_map(model, images, classes, *, sigma=0.1):
    """Knows nothing about the network: a Gaussian centred on the colourful part of the image.

    The weight of a pixel is how much its saturation (max - min over RGB) exceeds the image's median
    saturation; the Gaussian sits at the weighted centroid, with `sigma` a fraction of the image side.
    """
    n, _, height, width = images.shape
    saturation = (images.amax(1) - images.amin(1)).cpu()
    weights = (saturation - saturation.flatten(1).median(1).values[:, None, None]).clamp_min(0) + 1e-6
    weights = weights / weights.flatten(1).sum(1)[:, None, None]
    ys = torch.arange(height, dtype=torch.float32)[None, :, None]
    xs = torch.arange(width, dtype=torch.float32)[None, None, :]
    cy = (weights * ys).flatten(1).sum(1)[:, None, None]
    cx = (weights * xs).flatten(1).sum(1)[:, None, None]
    spread = sigma * max(height, width)
    return torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * spread ** 2))


def exercise_3():
    """A network-free order centred on the colourful object, against the centre bias."""
    model = load_model("course")
    images, labels, masks = _score_set()
    images = images.to(model.device)
    n, _, height, width = images.shape
    maps = {"colour-centred": colour_centred_map(model, images, labels),
            "centre bias": centre_bias_maps(n, height, width, sigma=0.15)}
    table = score_maps(model, images, maps, labels, masks=masks, steps=STEPS).table
    for name, row in table.items():
        print(f"{name:15s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    ours, centre = table["colour-centred"], table["centre bias"]
    assert ours["pointing game"] > centre["pointing game"] + 0.08
    assert ours["insertion AUC"] > centre["insertion AUC"] + 0.02
    assert ours["deletion AUC"] < centre["deletion AUC"] + 0.03
    return table


def exercise_4():
    """SmoothGrad with 2, 10 and 50 samples on the three tests."""
    model = load_model("course")
    images, labels, masks = _score_set()
    images = images.to(model.device)
    maps = {f"SmoothGrad {k}": smoothgrad(model, images, labels, n_samples=k, show_progress=False) for k in (2, 10, 50)}
    scores = score_maps(model, images, maps, labels, masks=masks, steps=STEPS)
    print(scores.format())
    # the finding: none of the scores moves beyond the noise of 32 images as the samples grow
    for column in ("mask share", "deletion AUC", "insertion AUC"):
        values = [row[column] for row in scores.table.values()]
        assert max(values) - min(values) < 0.03, (column, values)
    return scores
