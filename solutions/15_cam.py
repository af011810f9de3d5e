"""Reference solutions to the exercises of notebook 15 (instructor only; the student release leaves this folder out)."""
import vizlib
from vizlib import course_data
from vizlib.cam import cam_network, class_activation_maps, grad_cam
from vizlib.layers import layer_for, layers_for
from vizlib.models import load_model
from vizlib.saliency import pointing_game

SEED = 0


def _claim_set(n=None):
    n = n or vizlib.fast_or(full=512, fast=128)
    return course_data.make_shapes(n, "held_out", seed=6)


def exercise_1():
    """Pointing game of Grad-CAM at each depth: the deep layers localise, relu2 does not."""
    model = load_model("course")
    images, labels, masks = _claim_set()
    images = images.to(model.device)
    scores = {}
    for layer in layers_for(model, "cam_depths"):
        maps = grad_cam(model, images, layer, labels, show_progress=False).cpu()
        scores[layer] = pointing_game(maps, masks).float().mean().item()
        print(f"{layer:16s} pointing game {scores[layer]:.3f}")
    best = max(scores, key=scores.get)
    print("best layer:", best)
    assert scores["features.relu2"] < scores[best] - 0.1, scores
    return scores


def exercise_2():
    """CAM without ReLU for a class the image does not show: on average over the images, the object
    carries the negative evidence and the background stays near zero."""
    model = load_model("course")
    fit_images, fit_labels, _ = course_data.make_shapes(1024, "train", seed=SEED)
    cam_model = cam_network(model, fit_images.to(model.device), fit_labels, steps=30)
    images, labels, masks = course_data.make_shapes(64, "held_out", seed=SEED + 1)
    other = (labels + 1) % len(model.class_names)               # a class each image does not show
    cam = class_activation_maps(cam_model, images.to(model.device), "features.relu5", other).cpu()
    inside = (cam * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)
    outside = (cam * ~masks).flatten(1).sum(1) / (~masks).flatten(1).sum(1)
    print(f"wrong class: mean CAM inside the object {inside.mean():.3f}, outside {outside.mean():.3f}; "
          f"{(inside < outside).float().mean():.0%} of the images more negative on the object than off it")
    assert inside.mean() < 0 and inside.mean() < outside.mean() - 0.5, (inside.mean(), outside.mean())
    return inside, outside


def exercise_3():
    """Grad-CAM with relu=False: how much of the map's mass is negative at the last block."""
    model = load_model("course")
    images, labels, _ = _claim_set()
    images = images.to(model.device)
    layer = layer_for(model, "grad_cam")
    signed = grad_cam(model, images, layer, labels, relu=False, upsampled=False, show_progress=False).cpu()
    negative = signed.clamp_max(0).abs().flatten(1).sum(1)
    total = signed.abs().flatten(1).sum(1)
    share = (negative / total).mean().item()
    print(f"negative share of |Grad-CAM| at {layer}: mean {share:.3f}")
    assert share < 0.15
    return share


def exercise_4():
    """Nearest against bilinear upsampling in the pointing game."""
    model = load_model("course")
    images, labels, masks = _claim_set()
    images = images.to(model.device)
    layer = layer_for(model, "grad_cam")
    scores = {}
    for mode in ("bilinear", "nearest"):
        maps = grad_cam(model, images, layer, labels, mode=mode, show_progress=False).cpu()
        scores[mode] = pointing_game(maps, masks).float().mean().item()
    print(f"pointing game: bilinear {scores['bilinear']:.3f}, nearest {scores['nearest']:.3f}")
    assert scores["nearest"] <= scores["bilinear"] + 0.02
    return scores
