"""Class activation maps (Zhou et al. 2016), Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017).

A convolutional layer's output A (K channels of h x w positions) still knows *where*
things are; the class score no longer does. Both methods weigh A's channels by how
much each one matters for the class and sum them into one coarse map (h x w),
upsampled to the image:

- **CAM** needs a network whose head is global average pooling followed by one
  linear layer: score_c = sum_k W[c, k] * mean(A_k) + b_c, so the map
  CAM_c = sum_k W[c, k] * A_k has the score as its mean (plus the bias). Exact, but
  only for that architecture (`class_activation_maps` checks it on every call).
- **Grad-CAM** works at any convolutional layer: channel weights are the spatial mean
  of the class score's gradient with respect to A, then ReLU of the weighted sum.
  On a GAP + linear head the gradient is W[c, k] / (h w) everywhere, so
  Grad-CAM = ReLU(CAM) / (h w) exactly.
- **Guided Grad-CAM**: the upsampled Grad-CAM map times 07's guided backprop,
  coarse localisation times fine detail.

`cam_network` fits a linear head on the course model's pooled features, so the
course has a network on which CAM is exact. Among torchvision's ImageNet models,
ResNet, DenseNet, MobileNet and EfficientNet end in GAP and one linear layer;
SqueezeNet (a ReLU between its last convolution and the pooling), AlexNet and VGG
(several linear layers) do not.
"""

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from vizlib.arguments import DEFAULT_BATCH_SIZE, check_batch_size, resolve_classes
from vizlib.config import progress
from vizlib.guided_backprop import guided_backprop
from vizlib.hooks import capture_activations, output_shapes, temporary_hooks
from vizlib.wrapper import VizModel, checks_inputs, freeze, get_layer, layer_names

MODES = ("bilinear", "nearest")


def feature_map_layers(model):
    """Names of the layers whose output is a feature map (N, C, h, w), probed on one grey image."""
    return [name for name, shape in output_shapes(model).items() if len(shape) == 4]


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def upsample(maps, size, *, mode="bilinear"):
    """Coarse maps (N, h, w) resized to `size` (H, W), as captum's LayerAttribution.interpolate does."""
    _check_mode(mode)
    return F.interpolate(maps[:, None], size=tuple(size), mode=mode)[:, 0]


class _NotAFeatureMap(Exception):
    """Raised inside the hook to stop the forward pass at a layer that is not a feature map."""


def _grad_cam_batch(model, images, name, module, classes, relu):
    """Grad-CAM at one layer for one batch: coarse maps (N, h, w); classes=None explains the prediction."""
    kept = {}

    def make_leaf(module, inputs, output):
        # Differentiate with respect to the layer's output itself: a leaf with its values,
        # and a copy of it for the layers above (an in-place ReLU there must not touch the leaf).
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            kept["shape"] = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise _NotAFeatureMap
        kept["A"] = output.detach().requires_grad_(True)
        return kept["A"].clone()

    try:
        with torch.enable_grad(), temporary_hooks() as handles:
            handles.append(module.register_forward_hook(make_leaf))
            scores = model(images.detach())
    except _NotAFeatureMap:  # listed once the hook is gone, by a probe of every layer
        raise ValueError(
            f"layer {name!r} outputs {kept['shape']}, not a feature map (N, C, h, w); "
            f"layers that do: {', '.join(feature_map_layers(model))}"
        ) from None
    with torch.enable_grad():
        if classes is None:
            classes = scores.detach().argmax(1)
        selected = scores.gather(1, classes[:, None]).sum()
        activations = kept["A"]
        (grads,) = torch.autograd.grad(selected, activations)
    # BEGIN SOLUTION
    weights = grads.mean(dim=(2, 3), keepdim=True)       # (N, K, 1, 1): how much each channel matters
    maps = (weights * activations.detach()).sum(1)        # (N, h, w)
    # END SOLUTION
    return maps.clamp_min(0) if relu else maps


@checks_inputs("images")
def grad_cam(model, images, layer, classes=None, *, relu=True, upsampled=True, mode="bilinear",
             batch_size=DEFAULT_BATCH_SIZE, show_progress=None):
    """Grad-CAM maps (Selvaraju et al. 2017) of the class scores at `layer`.

    classes: None (each image's predicted class), one int for all, or one index per image.
    Returns (N, H, W) maps upsampled to the images (`mode` "bilinear" or "nearest"), or the
    coarse (N, h, w) maps with upsampled=False. relu=False keeps the negative evidence.
    """
    check_batch_size(batch_size)
    _check_mode(mode)
    name, module = get_layer(model, layer)
    if classes is not None:
        classes = resolve_classes(model, images, classes)
    chunks = []
    starts = range(0, len(images), batch_size)
    for start in progress(starts, desc="Grad-CAM", enabled=show_progress, leave=False):
        part = None if classes is None else classes[start:start + batch_size]
        maps = _grad_cam_batch(model, images[start:start + batch_size], name, module, part, relu)
        chunks.append(maps)
    maps = torch.cat(chunks)
    return upsample(maps, images.shape[-2:], mode=mode) if upsampled else maps


@checks_inputs("images")
def guided_grad_cam(model, images, layer, classes=None, *, mode="bilinear"):
    """Guided Grad-CAM (N, 3, H, W): guided backprop times the upsampled Grad-CAM map."""
    classes = resolve_classes(model, images, classes)
    upsampled_cam = grad_cam(model, images, layer, classes, mode=mode, show_progress=False)
    return guided_backprop(model, images, classes) * upsampled_cam[:, None]


def _gap_linear_head(model):
    """The name of the network's last Linear layer, the one CAM reads its class weights from."""
    linears = [name for name in layer_names(model) if isinstance(model.layer(name), nn.Linear)]
    if not linears:
        raise ValueError("CAM needs a network ending in global average pooling and one linear layer; "
                         "this one has no linear layer (use grad_cam, which works at any layer)")
    return linears[-1]


@checks_inputs("images")
def class_activation_maps(model, images, features_layer, classes=None, *, upsampled=True, mode="bilinear"):
    """CAM (Zhou et al. 2016): sum_k W[c, k] * A_k at `features_layer`, for a GAP + linear head.

    Exact only when the scores are the spatial mean of these maps plus the linear layer's
    bias; this is checked on the images given, and anything else is a clear error.
    Returns (N, H, W) maps (or (N, h, w) with upsampled=False), signed, without ReLU.
    """
    _check_mode(mode)
    name, _ = get_layer(model, features_layer)
    linear = model.layer(_gap_linear_head(model))
    classes = resolve_classes(model, images, classes)
    with torch.no_grad(), capture_activations(model, name) as acts:
        scores = model(images)
    activations = acts[name]
    if activations.dim() != 4 or activations.shape[1] != linear.in_features:
        raise ValueError(
            f"layer {name!r} outputs {tuple(activations.shape)}; CAM needs the feature map (N, C, h, w) "
            f"that the last linear layer ({linear.in_features} inputs) reads after global average pooling"
        )
    maps = torch.einsum("nk,nkhw->nhw", linear.weight[classes], activations)
    bias = 0.0 if linear.bias is None else linear.bias[classes]
    predicted = maps.mean(dim=(1, 2)) + bias
    expected = scores.gather(1, classes[:, None])[:, 0]
    tolerance = 1e-4 * (1 + expected.abs().max())
    if (predicted - expected).abs().max() > tolerance:
        raise ValueError(
            f"the scores are not global average pooling of {name!r} followed by one linear layer "
            "(CAM is exact only there); use grad_cam, which works at any layer"
        )
    return upsample(maps, images.shape[-2:], mode=mode) if upsampled else maps


@checks_inputs("images")
def cam_network(model, images, labels, *, layer="features.relu5", steps=200, weight_decay=1e-3, seed=0):
    """A copy of the course model cut after `layer`, with global average pooling and one linear
    layer fitted (multinomial logistic regression, L-BFGS, seeded) on `images` and `labels`.

    The convolutional layers keep their trained weights; only the new head is fitted, on
    features computed once. Returns a frozen wrapper like the course model's.
    """
    name, _ = get_layer(model, layer)
    top, _, child = name.partition(".")
    features = model.net.get_submodule(top) if child else None
    if features is None or not isinstance(features, nn.Sequential) or child not in dict(features.named_children()):
        raise ValueError(f"layer must be a direct child of a Sequential block such as 'features.relu5', got {layer!r}")
    kept = OrderedDict()
    for child_name, module in features.named_children():
        kept[child_name] = copy.deepcopy(module)
        if child_name == child:
            break
    trunk = nn.Sequential(kept)
    with torch.no_grad():
        pooled = torch.cat([
            trunk((chunk - model.mean) / model.std).mean(dim=(2, 3)) for chunk in images.split(256)
        ])
    labels = torch.as_tensor(labels, dtype=torch.long, device=pooled.device)
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(pooled.shape[1], len(model.class_names))
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.01)
        head.bias.zero_()
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(head(pooled), labels) + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    net = nn.Sequential(OrderedDict(
        features=trunk, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=head,
    ))
    cam_model = VizModel(net, name=f"{model.name}-cam", class_names=model.class_names,
                         input_size=model.input_size, mean=model.mean.flatten().tolist(),
                         std=model.std.flatten().tolist())
    cam_model.trained = getattr(model, "trained", True)     # a trunk of random weights stays random
    return freeze(cam_model.to(model.device))


@checks_inputs("images")
def cam_explorer(model, images, layers=None, *, titles=None):
    """A live explorer for a lecture: one image's Grad-CAM at a chosen layer, for its most likely class or
    the 2nd, 3rd or 5th (what does the network see for the runner-up?). `layers` defaults to the last six
    layers whose output is a feature map larger than 1 x 1. Each change costs one forward and one backward pass.
    Returns the `vizlib.plotting.live_figure` panel.
    """
    import ipywidgets

    from vizlib.plotting import image_picker, live_figure
    from vizlib.saliency import show_maps

    if layers is None:
        layers = [name for name, shape in output_shapes(model).items() if len(shape) == 4 and shape[-1] > 1][-6:]
    else:
        layers = [get_layer(model, layer)[0] for layer in layers]
    if not layers:
        raise ValueError("no layer to explore: give at least one layer whose output is a feature map")
    with torch.no_grad():
        ranked = model(images.to(model.device)).softmax(1).cpu().topk(min(5, len(model.class_names)), dim=1)
    names, image = image_picker(len(images), titles)
    layer = ipywidgets.Dropdown(options=layers, value=layers[-1], description="layer")
    ranks = [r for r in (1, 2, 3, 5) if r <= ranked.indices.shape[1]]
    rank = ipywidgets.ToggleButtons(options=[(f"class #{r}", r) for r in ranks], value=1, description="explain")

    def draw(image, layer, rank):
        target = int(ranked.indices[image, rank - 1])
        maps = grad_cam(model, images[image:image + 1], layer, target)
        label = f"{model.class_names[target]} ({ranked.values[image, rank - 1]:.0%}), {layer}"
        return show_maps(images[image:image + 1], {label: maps}, titles=[names[image]], size=3.6, across=True)

    return live_figure(draw, image=image, layer=layer, rank=rank)
