"""Style transfer: the content of one image in the style of another.

Optimisation (Gatys, Ecker & Bethge 2016): start from the content image (or from
noise) and minimise

    content_weight * ||F(x) - F(c)||^2 / ||F(c)||^2            at one layer
  + sum_l w_l * ||G_l(x) - G_l(s)||^2 / ||G_l(s)||^2            Gram matrices, several layers
  + tv_weight * TV(x) / pixels                                  smoothness

with F the feature maps of a frozen network, G their Gram matrices
(vizlib.gram_texture.gram_matrix) and TV the total variation (vizlib.optim). Each
term is divided by the size of its target, so the weights compare like with like.
With every style weight at zero this is feature inversion (Mahendran & Vedaldi
2015, notebook 10); with the content weight at zero it is texture synthesis
(notebook 13). The network runs only up to the deepest layer a loss uses.

Feed-forward (Johnson, Alahi & Fei-Fei 2016; Ulyanov, Vedaldi & Lempitsky 2016):
train a small image-to-image network once, with the same loss, on many content
images; afterwards one forward pass stylises any image. Instance normalisation
(statistics of each image on its own, never running averages) and upsampling by
resize-then-convolve (no checkerboard artefacts of transposed convolutions) are
what make it work at this size.

The defaults follow one rule on every model: the content layer is the model's
"content" layer in vizlib.layers; the style network is the model itself unless
`style_model=` names a second one; the style weights are 1 on each of the style
network's "style" layers, or on every layer of a random filter bank
(vizlib.gram_texture.default_layer_weights, the rule of notebook 13's textures).
Offline the course uses two loss networks side by side: the course model's
features for the content and a bank of random multi-scale filters
(`default_style_model()`) for the style, whose Gram matrices carry more of a
photograph's style than the course model's; ask for it with
`style_model=default_style_model()`.

The training loop, and the command that trains the shipped network, are in
vizlib.course.train_style_net (`make style-net`).
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vizlib import config
from vizlib.gram_texture import default_layer_weights, gram_matrix, random_filter_bank, style_loss
from vizlib.hooks import layer_features
from vizlib.images import check_images, noise_like, sample_crop
from vizlib.layers import layer_for
from vizlib.optim import optimise_image, total_variation
from vizlib.wrapper import checks_inputs, get_layer

# The offline recipe, spelled out: the course model's content layer, and the layers of `default_style_model`
# with weight 1, which are also what the defaults give for these two networks. (VGG-19's layers, as in
# Gatys et al. 2016, are in vizlib.layers.)
CONTENT_LAYER = layer_for("course", "content")
STYLE_WEIGHTS = {"scale3.1": 1.0, "scale5.1": 1.0, "scale9.1": 1.0}
CONTENT_WEIGHT, TV_WEIGHT = 5.0, 4.0
# Square crops (top, left, side) of the photographs used as styles.
STYLE_CROPS = {"hubble_deep_field": (0, 0, 256), "immunohistochemistry": (0, 0, 256), "coffee": (0, 0, 200)}


def default_style_model():
    """The offline style network: 32 random filters at each of three scales (Ustyuzhaninov et al. 2017)."""
    return random_filter_bank(kernel_sizes=(3, 5, 9), channels=32, seed=0)


def content_loss(features, target):
    """||F - P||^2 / ||P||^2 per image, summed over images."""
    # BEGIN SOLUTION
    squared_error = (features - target).flatten(1).pow(2).sum(1)
    return (squared_error / target.flatten(1).pow(2).sum(1).clamp_min(1e-12)).sum()
    # END SOLUTION


def check_loss_weights(content_weight, style_weights, tv_weight):
    """Refuse negative weights, and a loss with neither content nor style to match."""
    if not isinstance(style_weights, dict):
        raise TypeError(f"style_weights must be a dict {{layer: weight}}, got {type(style_weights).__name__}")
    negative = {name: w for name, w in {"content_weight": content_weight, "tv_weight": tv_weight,
                                        **style_weights}.items() if w < 0}
    if negative:
        raise ValueError(f"weights must be >= 0, got {negative}")
    if content_weight == 0 and not any(style_weights.values()):
        raise ValueError("the content weight and every style weight are zero: there is nothing to match "
                         "(give content_weight > 0 for feature inversion, or a style weight > 0)")


class StyleTransferLoss:
    """The Gatys loss for one style image, content targets given per call.

    `terms(images, content_targets)` returns the three weighted terms; calling the
    object returns their sum. `content_targets(content)` computes the targets once.
    `terms_of_features` does the same from feature maps computed elsewhere. Each
    style weight is divided by mean G(s)^2 of its layer, so style weights near 1 and
    a content weight of a few units balance. Defaults as in `style_transfer`.
    """

    def __init__(self, model, style, *, content_layer=None, style_weights=None,
                 content_weight=CONTENT_WEIGHT, tv_weight=TV_WEIGHT, style_model=None):
        check_images(style, name="style")
        if len(style) != 1:
            raise ValueError(f"style: expected one style image (1, 3, H, W), got a batch of {len(style)}")
        style_model = model if style_model is None else style_model
        style_weights = default_layer_weights(style_model, "style") if style_weights is None else style_weights
        check_loss_weights(content_weight, style_weights, tv_weight)
        if content_layer is None and content_weight > 0:    # without a content term, no content layer is needed
            content_layer = layer_for(model, "content")
        self.model, self.style_model = model, style_model
        self.content_layer = get_layer(model, content_layer)[0] if content_layer is not None else None
        self.style_weights = {get_layer(style_model, name)[0]: w for name, w in style_weights.items() if w > 0}
        self.content_weight, self.tv_weight = content_weight, tv_weight
        with torch.no_grad():
            self.target_grams = {name: gram_matrix(f) for name, f in self._style_features(style).items()}
        self.relative_style_weights = {name: w / self.target_grams[name].pow(2).mean().clamp_min(1e-12)
                                       for name, w in self.style_weights.items()}

    def _style_features(self, images):
        return layer_features(self.style_model, images, list(self.style_weights)) if self.style_weights else {}

    def _features(self, images):
        """(content features or None, style features), one forward pass when one network serves both."""
        want_content = self.content_weight > 0
        if self.style_model is self.model:
            layers = list(self.style_weights) + ([self.content_layer] if want_content else [])
            features = layer_features(self.model, images, layers)
            style_features = {name: features[name] for name in self.style_weights}
            return (features[self.content_layer] if want_content else None), style_features
        content = layer_features(self.model, images, [self.content_layer])[self.content_layer] if want_content else None
        return content, self._style_features(images)

    def content_targets(self, content):
        check_images(content, name="content")
        if self.content_weight == 0:
            return None
        with torch.no_grad():
            return layer_features(self.model, content, [self.content_layer])[self.content_layer]

    def terms(self, images, content_targets):
        return self.terms_of_features(images, *self._features(images), content_targets)

    def terms_of_features(self, images, content_features, style_features, content_targets):
        """The three weighted terms, given the content layer's features (or None) and {style layer: features}."""
        zero = images.new_zeros(())
        terms = {"content": zero, "style": zero, "tv": zero}
        # BEGIN SOLUTION
        if content_features is not None:
            terms["content"] = self.content_weight * content_loss(content_features, content_targets)
        if style_features:
            grams = {name: gram_matrix(f) for name, f in style_features.items()}
            terms["style"] = style_loss(grams, self.target_grams, self.relative_style_weights)
        if self.tv_weight:
            terms["tv"] = self.tv_weight * total_variation(images) / images[0].numel()
        # END SOLUTION
        return terms

    def __call__(self, images, content_targets):
        return sum(self.terms(images, content_targets).values())


@checks_inputs("content", "style", "init", models=("model", "style_model"))
def style_transfer(model, content, style, *, content_layer=None, style_weights=None,
                   content_weight=CONTENT_WEIGHT, tv_weight=TV_WEIGHT, style_model=None, init="content", steps=100,
                   lr=1.0, optimizer="lbfgs", seed=0, show_progress=None):
    """Optimise an image with `content`'s features and `style`'s Gram matrices; an OptimisationResult.

    One rule for the defaults, on every model: `content_layer` is `layer_for(model, "content")`;
    `style_model` None means `model` serves both terms; `style_weights` {layer of the style
    model: weight} is 1 on each of its "style" layers in vizlib.layers, or on every layer when
    it is a random filter bank (`default_layer_weights(style_model, "style")`). All style
    weights zero is feature inversion. The offline recipe of notebook 14 is
    `style_model=default_style_model()` with the course model.

    init: "content" (start from the content image), "noise" (seeded uniform noise)
    or an image tensor of the content's shape. L-BFGS runs on a sigmoid
    parameterisation, so pixels stay in [0, 1] without clamping.
    """
    loss = StyleTransferLoss(model, style, content_layer=content_layer, style_weights=style_weights,
                             content_weight=content_weight, tv_weight=tv_weight, style_model=style_model)
    if isinstance(init, str):
        if init == "content":
            init = content
        elif init == "noise":
            init = noise_like(content, seed)
        else:
            raise ValueError(f"init must be 'content', 'noise' or an image tensor, got {init!r}")
    if init.shape != content.shape:
        raise ValueError(f"init must have the content's shape {tuple(content.shape)}, got {tuple(init.shape)}")
    targets = loss.content_targets(content)
    return optimise_image(lambda images: loss(images, targets), init, steps=steps, lr=lr, optimizer=optimizer,
                          parameterisation="sigmoid" if optimizer == "lbfgs" else "clamp", seed=seed,
                          desc="style transfer", show_progress=show_progress)


# ----------------------------------------------------------------------------------------------
# Measures of the result (on what the loss did not optimise)

def _grey(images):
    images = images.detach().cpu().double()
    return (0.2125 * images[:, 0] + 0.7154 * images[:, 1] + 0.0721 * images[:, 2]).numpy()


def edge_correlation(images, reference):
    """Pearson correlation of Sobel edge magnitudes (greyscale) with `reference`'s, per image: (N,)."""
    from skimage.filters import sobel

    check_images(images)
    check_images(reference, name="reference")
    if images.shape[-2:] != reference.shape[-2:] or len(reference) not in (1, len(images)):
        raise ValueError(f"images {tuple(images.shape)} and reference {tuple(reference.shape)} must have the same "
                         "size (and one reference or one per image)")
    edges = [torch.from_numpy(sobel(g).ravel()) for g in _grey(images)]
    ref = [torch.from_numpy(sobel(g).ravel()) for g in _grey(reference)]
    return torch.stack([torch.corrcoef(torch.stack([e, ref[i if len(ref) > 1 else 0]]))[0, 1]
                        for i, e in enumerate(edges)]).float()


def colour_histogram_intersection(images, reference, bins=8):
    """Overlap (0..1) of 3-D RGB histograms with `bins` per channel, per image: (N,); sizes may differ."""
    check_images(images)
    check_images(reference, name="reference")

    def histogram(image):
        index = (image.detach().cpu().clamp(0, 1 - 1e-6) * bins).long()
        flat = (index[0] * bins + index[1]) * bins + index[2]
        return torch.bincount(flat.ravel(), minlength=bins ** 3).double() / flat.numel()

    ref = [histogram(r) for r in reference]
    return torch.stack([torch.minimum(histogram(img), ref[i if len(ref) > 1 else 0]).sum()
                        for i, img in enumerate(images)]).float()


# ----------------------------------------------------------------------------------------------
# Feed-forward style transfer

class _ConvNormReLU(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride=1, upsample=False):
        layers = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(c_in, c_out, kernel, stride=stride),
            # per-image statistics, never running averages (Ulyanov et al. 2016)
            nn.InstanceNorm2d(c_out, affine=True, track_running_stats=False),
            nn.ReLU(),
        ]
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            _ConvNormReLU(channels, channels, 3),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True, track_running_stats=False),
        )

    def forward(self, x):
        return x + self.body(x)


class TransformNet(nn.Module):
    """A small Johnson-style image transformation network: (N, 3, H, W) in [0, 1] -> same.

    Two stride-2 convolutions down, residual blocks, two resize-then-convolve steps
    up, a final convolution and a sigmoid. H and W should be multiples of 4.
    """

    def __init__(self, width=16, residual_blocks=3):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _ConvNormReLU(3, w, 9),
            _ConvNormReLU(w, 2 * w, 3, stride=2),
            _ConvNormReLU(2 * w, 4 * w, 3, stride=2),
            *[_Residual(4 * w) for _ in range(residual_blocks)],
            _ConvNormReLU(4 * w, 2 * w, 3, upsample=True),
            _ConvNormReLU(2 * w, w, 3, upsample=True),
            nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9),
        )

    def forward(self, images):
        check_images(images)
        return torch.sigmoid(self.net(images * 2 - 1))


def stylise(net, images):
    """One forward pass of a trained TransformNet, without gradients; sizes padded to a multiple of 4."""
    check_images(images)
    h, w = images.shape[-2:]
    pad_h, pad_w = (-h) % 4, (-w) % 4
    padded = F.pad(images, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else images
    with torch.no_grad():
        return net(padded)[..., :h, :w].clamp(0, 1)


def weights_path(style):
    return config.shipped(f"style_net_{style}.pt")


def style_image(style, size=96):
    """The course's style images: a square crop (STYLE_CROPS, else the top-left square) of an offline photograph."""
    return sample_crop(style, size, STYLE_CROPS.get(style))


def load_transform_net(style, path=None):
    """The shipped TransformNet for `style` from vizlib/data (weights_only loading)."""
    path = Path(path) if path else weights_path(style)
    if not path.is_file():
        raise FileNotFoundError(f"no trained network at {path}; train one with "
                                f"`python -m vizlib.course.train_style_net --style {style}`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = TransformNet()
    net.load_state_dict(state)
    return net.eval()
