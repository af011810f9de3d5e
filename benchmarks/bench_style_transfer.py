"""Style transfer: what the losses cost, what cutting and freezing saves, what feed-forward saves.

Rows (offline loss networks: course model for the content, random filter bank for the style; 128 px):
- one style-transfer iteration (loss + gradient to the pixels) against a bare forward+backward of the
  same cut networks at the same size; goal: the losses add under 15% (speed-up >= 0.87). The offline
  networks are so small that the Gram matrices cost about as much as the convolutions, so the same
  row is repeated on Gatys' VGG-19 (random weights: timing does not depend on them);
- the cut-and-frozen networks against the whole networks run to their end with parameter gradients on
  (the naive recipe: every layer runs, every weight gets a .grad); report the speed-up;
- feed-forward (one pass of the shipped TransformNet) against the optimisation of the notebook
  (120 L-BFGS steps) per image; goal: at least 100x.
"""

import copy

import torch

from benchmarks.harness import Comparison
from vizlib.hooks import capture_activations, layer_features
from vizlib.images import load_sample_image
from vizlib.layers import layer_for, layers_for
from vizlib.models import course_model, random_imagenet_model
from vizlib.style_transfer import (
    CONTENT_LAYER, CONTENT_WEIGHT, STYLE_WEIGHTS, TV_WEIGHT,
    StyleTransferLoss, default_style_model,
    load_transform_net, style_image, style_transfer, stylise, weights_path,
)

SIZE = 128
STYLE = "hubble_deep_field"


def comparisons():
    model, bank = course_model(), default_style_model()
    content, style = load_sample_image("chelsea", SIZE), style_image(STYLE, SIZE)
    loss = StyleTransferLoss(model, style, content_weight=CONTENT_WEIGHT, tv_weight=TV_WEIGHT, style_model=bank)
    targets = loss.content_targets(content)

    def bare():
        x = content.clone().requires_grad_(True)
        features = [layer_features(model, x, [CONTENT_LAYER])[CONTENT_LAYER]]
        features += list(layer_features(bank, x, list(STYLE_WEIGHTS)).values())
        torch.autograd.grad(sum(f.sum() for f in features), x)

    def iteration():
        x = content.clone().requires_grad_(True)
        torch.autograd.grad(loss(x, targets), x)

    yield Comparison(f"style transfer, one iteration, {SIZE}px", ("bare forward+backward (cut)", bare),
                     ("loss + gradient", iteration), goal="speed-up >= 0.87 (losses add < 15%)")

    # the same on Gatys' network (VGG-19 architecture, random weights: the cost does not depend on them)
    vgg = random_imagenet_model("vgg19", seed=0)
    vgg_style = layers_for(vgg, "style")
    vgg_loss = StyleTransferLoss(vgg, style, content_layer=layer_for(vgg, "content"),
                                 style_weights={layer: 1.0 for layer in vgg_style})
    vgg_targets = vgg_loss.content_targets(content)
    layers = vgg_style + [layer_for(vgg, "content")]

    def vgg_bare():
        x = content.clone().requires_grad_(True)
        torch.autograd.grad(sum(f.sum() for f in layer_features(vgg, x, layers).values()), x)

    def vgg_iteration():
        x = content.clone().requires_grad_(True)
        torch.autograd.grad(vgg_loss(x, vgg_targets), x)

    yield Comparison(f"style transfer, one iteration, VGG-19, {SIZE}px", ("bare forward+backward (cut)", vgg_bare),
                     ("loss + gradient", vgg_iteration), goal="speed-up >= 0.87 (losses add < 15%)", repeats=9)

    whole_model, whole_bank = copy.deepcopy(model).requires_grad_(True), copy.deepcopy(bank).requires_grad_(True)
    whole_loss = StyleTransferLoss(whole_model, style, content_weight=CONTENT_WEIGHT, tv_weight=TV_WEIGHT,
                                   style_model=whole_bank)

    def uncut():
        # the naive recipe: whole networks run to the end, trainable weights, gradients into every parameter
        x = content.clone().requires_grad_(True)
        with capture_activations(whole_model, [CONTENT_LAYER], detach=False) as content_features:
            whole_model(x)
        with capture_activations(whole_bank, list(STYLE_WEIGHTS), detach=False) as style_features:
            whole_bank(x)
        terms = whole_loss.terms_of_features(x, content_features[CONTENT_LAYER], style_features, targets)
        sum(terms.values()).backward(inputs=[x] + list(whole_model.parameters()) + list(whole_bank.parameters()))
        whole_model.zero_grad(set_to_none=True)
        whole_bank.zero_grad(set_to_none=True)

    yield Comparison(f"style transfer, cut and frozen networks, {SIZE}px", ("whole, parameter gradients on", uncut),
                     ("cut after last loss layer, frozen", iteration), goal="report")

    if weights_path(STYLE).exists():
        net = load_transform_net(STYLE)
        yield Comparison(
            f"style transfer per image, {SIZE}px",
            ("optimisation (120 L-BFGS steps)", lambda: style_transfer(
                model, content, style, style_model=bank, content_weight=CONTENT_WEIGHT, tv_weight=TV_WEIGHT,
                steps=120, show_progress=False)),
            ("feed-forward (one pass)", lambda: stylise(net, content)),
            goal="speed-up >= 100", repeats=1,
        )
