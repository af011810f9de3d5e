"""Reference solutions to the exercises of notebook 07 (instructor only; the student release leaves this folder out)."""

import statistics

import torch
from torch import nn

from vizlib.datasets import images_for_model
from vizlib.guided_backprop import cascading_randomisation, channel_gradient, class_gradient, modified_relus
from vizlib.models import course_model
from vizlib.saliency import attribution_map
from vizlib.sanity import rank_correlation

SEED = 0


def exercise_1():
    """Without the clamp, the guided rule is the plain gradient, and the maps it would give differ from guided ones."""
    x = torch.tensor([-1.0, 2.0, 3.0, -0.5, 1.0], requires_grad=True)
    g = torch.tensor([0.5, -1.0, 2.0, 1.0, -0.3])
    output = torch.relu(x)
    unclamped = g * output.sign()  # the guided rule with `.clamp(min=0)` dropped
    relu = nn.ReLU()
    with modified_relus(relu, "plain"):
        plain, = torch.autograd.grad(relu(x), x, grad_outputs=g)
    assert torch.equal(unclamped, plain), "guided without the clamp is the ordinary ReLU backward pass"
    model = course_model()
    images, labels, _ = images_for_model(model, 16, seed=3)
    images = images.to(model.device)
    rho = rank_correlation(attribution_map(class_gradient(model, images, labels, rule="plain")),
                           attribution_map(class_gradient(model, images, labels, rule="guided"))).nanmean().item()
    print(f"rank correlation of plain and guided maps on 16 images: {rho:.3f}")
    assert rho < 0.8, "so the captum comparisons of the guided and deconvnet maps would fail"


def exercise_2():
    """Class sensitivity: true class against another class, guided backprop and the plain gradient."""
    model = course_model()
    images, labels, _ = images_for_model(model, 32, seed=2024)
    images = images.to(model.device)
    other = (labels + 1) % len(model.class_names)
    rho = {}
    for rule in ("guided", "plain"):
        rho[rule] = rank_correlation(attribution_map(class_gradient(model, images, labels, rule=rule)),
                                     attribution_map(class_gradient(model, images, other, rule=rule))).nanmean().item()
    print(f"rank correlation of the true-class and other-class maps: {rho}")
    assert rho["guided"] > 0.8 and rho["guided"] > rho["plain"] + 0.1, "guided backprop barely depends on the class"


def concentration(maps, share=0.05):
    """The share of a map's mass in its brightest `share` of pixels."""
    flat = attribution_map(maps).flatten(1)
    top = flat.topk(int(share * flat.shape[1]), dim=1).values.sum(1)
    return (top / flat.sum(1)).mean().item()


def exercise_3():
    """A neuron (reduce='max') against a whole channel (reduce='mean')."""
    model = course_model()
    images, _, _ = images_for_model(model, 8, seed=3)
    images = images.to(model.device)
    layer, channel = "features.relu3", 0
    result = {reduce: concentration(channel_gradient(model, images, layer, channel, reduce=reduce).cpu())
              for reduce in ("max", "mean")}
    print(f"share of the map's mass in its brightest 5% of pixels: {result}")
    assert result["max"] > result["mean"] + 0.1, "one neuron sees one field; the channel's mean sees every position"


def exercise_4():
    """How much the gradient's correlation after randomising fc2 depends on the random weights drawn."""
    model = course_model()
    images, labels, _ = images_for_model(model, 16, seed=2024)
    images = images.to(model.device)
    after_fc2 = [cascading_randomisation(model, images, labels, rules=("plain",), steps=1, seed=seed, keep=1)
                 .mean("plain")[1].item() for seed in range(5)]
    print(f"gradient's mean rank correlation after randomising fc2, 5 seeds: {[round(v, 3) for v in after_fc2]}")
    assert statistics.pstdev(after_fc2) > 0.01, "the weights drawn for fc2 move the number"
    assert max(after_fc2) < 0.9, "but for every seed the gradient has clearly changed"
