"""Neural texture synthesis with Gram matrices (Gatys, Ecker & Bethge 2015).

A texture is described by which features fire *together*, wherever they are:
the Gram matrix G = F F^T / (H W) of a layer's feature maps F (C x HW) holds the
correlation of every pair of channels, averaged over all H*W positions, so it
keeps the statistics and forgets the layout. Synthesis starts from noise and
matches the Gram matrices of several layers to those of a sample texture.

Any network can serve as the feature extractor: VGG-19 as in the paper when its
ImageNet weights are cached; offline, random filters applied on every level of an
image pyramid (`texture_filter_bank`, built by `random_filter_bank`; random
multi-scale filters describe textures well: Ustyuzhaninov et al. 2017). Notebook 13
compares it with the course model and a random VGG-19. The style-transfer notebook
(14) reuses `gram_matrix` and `style_loss`; both read features with `vizlib.hooks.layer_features`.

Measures of a result on what the loss did not optimise: `gram_distance` in a layer
or network the loss did not use, and the nearest-window distance to the sample
(`vizlib.texture_sampling.nearest_window_distance`, from notebook 12).
"""

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from vizlib.counts import check_positive_int
from vizlib.hooks import layer_features
from vizlib.images import sample_crop
from vizlib.layers import layers_for
from vizlib.optim import optimise_image
from vizlib.wrapper import VizModel, checks_inputs, freeze, get_layer, network

# Texture samples cut from the offline images: name -> (image, (top, left, side)).
TEXTURES = {
    "brick": ("brick", (0, 0, 256)),
    "gravel": ("gravel", (0, 0, 128)),
    "immunohistochemistry": ("immunohistochemistry", (0, 0, 128)),
    "china roof": ("china", (330, 220, 80)),
    "grass": ("grass", (0, 0, 128)),
    "foliage": ("china", (340, 20, 80)),
    "wood": ("coffee", (20, 20, 120)),
    "hubble": ("hubble_deep_field", (0, 0, 300)),
}
# A second, non-overlapping crop of the same texture, where the image has one: what a real
# piece of the texture scores on the measures below.
REFERENCE_CROPS = {
    "brick": ("brick", (256, 256, 256)),
    "gravel": ("gravel", (300, 300, 128)),
    "immunohistochemistry": ("immunohistochemistry", (128, 128, 128)),
    "grass": ("grass", (300, 300, 128)),
}


def texture_sample(name, size, *, reference=False):
    """A texture crop of an offline image (see TEXTURES), resized to (1, 3, size, size).

    reference=True gives the second crop of the same texture (REFERENCE_CROPS) instead.
    """
    crops = REFERENCE_CROPS if reference else TEXTURES
    if name not in crops:
        which = "with a reference crop" if reference else "available"
        raise ValueError(f"unknown texture {name!r}; {which}: {', '.join(crops)}")
    image, box = crops[name]
    return sample_crop(image, size, box)


# ----------------------------------------------------------------------------------------------
# The shared pieces: Gram matrices, features up to a layer, the style loss

def gram_matrix(features):
    """(N, C, H, W) feature maps -> (N, C, C): channel products averaged over the H*W positions.

    G[n, c, d] = sum_p F[n, c, p] F[n, d, p] / (H W), with no further division by C.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"expected feature maps (N, C, H, W), got {shape}")
    return ChannelProducts.apply(features.flatten(2))


class ChannelProducts(torch.autograd.Function):
    """F (N, C, P) -> F F^T / P, with the gradient in one matrix product instead of two.

    Left to autograd, F F^T is differentiated through each factor separately (two
    products of the size of the forward one, then a sum); but for G = F F^T / P the
    gradient is dL/dF = (dL/dG + dL/dG^T) F / P, one product. The Gram matrices are
    the largest cost that the style loss adds to the network's forward and backward.
    """

    @staticmethod
    def forward(ctx, flat):
        ctx.save_for_backward(flat)
        # BEGIN SOLUTION
        return flat @ flat.transpose(1, 2) / flat.shape[-1]
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        (flat,) = ctx.saved_tensors
        return ((grad + grad.transpose(1, 2)) / flat.shape[-1]) @ flat     # scale the small C x C factor first


def check_layer_weights(weights):
    """Refuse layer weights that are not a non-empty dict of non-negative numbers, not all zero."""
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be a dict {{layer: weight}}, got {type(weights).__name__}")
    if not weights:
        raise ValueError("weights is empty: give at least one {layer: weight}")
    lowest = {name: float(torch.as_tensor(w).min()) for name, w in weights.items()}
    negative = {name: w for name, w in lowest.items() if w < 0}
    if negative:
        raise ValueError(f"layer weights must be >= 0, got {negative}")
    if not any(float(torch.as_tensor(w).max()) > 0 for w in weights.values()):
        raise ValueError(f"all layer weights are zero ({weights}): there is nothing to match")


def style_loss(grams, target_grams, weights):
    """sum over layers l of w_l * mean over (c, d) of (G_l - A_l)^2, per image, summed over images.

    grams: {layer: (N, C, C)}; target_grams: {layer: (N or 1, C, C)}; weights: {layer:
    weight}, a number or a tensor of N per-image weights. Layers without a weight are ignored.
    """
    check_layer_weights(weights)
    missing = [name for name in weights if name not in grams or name not in target_grams]
    if missing:
        raise ValueError(f"no Gram matrix for weighted layer(s) {missing}; have {list(grams)}")
    total = 0.0
    # BEGIN SOLUTION
    for name, weight in weights.items():
        per_image = (grams[name] - target_grams[name]).pow(2).mean(dim=(1, 2))
        total = total + (weight * per_image).sum()
    # END SOLUTION
    return total


# ----------------------------------------------------------------------------------------------
# Synthesis

def default_layer_weights(model, role):
    """Weight 1 on each layer whose Gram matrices `model` matches by default in `role` ("texture" or "style").

    A random filter bank matches every one of its layers (one depth, several scales: nothing to choose);
    a named model, its `role` layers in vizlib.layers. Notebooks 13 (texture) and 14 (style) share this rule.
    """
    layers = network(model).relu_names if isinstance(network(model), _FilterBank) else layers_for(model, role)
    return {layer: 1.0 for layer in layers}


def default_texture_weights(model):
    """Weight 1 on the layers the course matches by default for this feature extractor (`default_layer_weights`)."""
    return default_layer_weights(model, "texture")


def texture_noise(shape, *, seed=0, contrast=0.1, device=None):
    """Seeded starting images: sigmoid(contrast * standard normal), faint noise around mid-grey.

    Under the sigmoid parameterisation a pixel near 0 or 1 sits where the sigmoid is
    flat and hardly moves, so a start of full-contrast noise leaves stray bright and
    dark pixels in the result; a faint start does not.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.sigmoid(contrast * torch.randn(shape, generator=generator)).to(device)


@checks_inputs("sample", "init")
def synthesise_texture(model, sample, weights=None, *, size=None, steps=100, optimizer="lbfgs", lr=None,
                       relative=True, init=None, contrast=0.1, seed=0, show_progress=None):
    """Grow textures from noise whose Gram matrices at the weighted layers match `sample`'s.

    sample: (N, 3, h, w), one texture per sample image. weights: {layer: weight}
    (default: `default_texture_weights(model)`). size: output side or (H, W) (default:
    the sample's). relative: divide each layer's term by the mean square of the
    target Gram matrix, per image, so layers and networks of any scale weigh alike.
    Pixels are sigmoid(logits), always in [0, 1] without clamping; the start is faint
    noise (`texture_noise`) unless `init` is given. L-BFGS searches along each step's
    direction (strong Wolfe line search). Returns an OptimisationResult (images,
    losses: the weighted Gram loss before each step).
    """
    weights = default_texture_weights(model) if weights is None else weights
    check_layer_weights(weights)
    weights = {get_layer(model, layer)[0]: w for layer, w in weights.items() if float(torch.as_tensor(w).max()) > 0}
    height, width = sample.shape[-2:] if size is None else ((size, size) if isinstance(size, int) else size)
    if not (int(height) == height >= 1 and int(width) == width >= 1):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    if init is None:
        init = texture_noise((len(sample), 3, height, width), seed=seed, contrast=contrast, device=sample.device)
    if len(init) != len(sample):
        raise ValueError(f"init has {len(init)} images for {len(sample)} samples")
    with torch.no_grad():
        targets = {name: gram_matrix(f) for name, f in layer_features(model, sample, list(weights)).items()}
    if relative:
        weights = {name: w / targets[name].pow(2).mean(dim=(1, 2)).clamp_min(1e-12) for name, w in weights.items()}
    # L-BFGS gives up once every gradient entry is below 1e-7. Summing rather than averaging
    # over an image's values keeps each pixel's gradient independent of the image size and
    # far above that tolerance; Adam does not care about the scale.
    scale = init.shape[1:].numel() if optimizer == "lbfgs" else 1.0

    def objective(images):
        # BEGIN SOLUTION
        grams = {name: gram_matrix(f) for name, f in layer_features(model, images, list(weights)).items()}
        return scale * style_loss(grams, targets, weights)
        # END SOLUTION

    lr = lr if lr is not None else (1.0 if optimizer == "lbfgs" else 0.05)
    result = optimise_image(objective, init, steps=steps, lr=lr, optimizer=optimizer, parameterisation="sigmoid",
                            line_search=optimizer == "lbfgs", seed=seed, desc="texture", show_progress=show_progress)
    return dataclasses.replace(result, losses=tuple(loss / scale for loss in result.losses))


# ----------------------------------------------------------------------------------------------
# Measures on what the loss did not optimise

@checks_inputs("images", "sample")
def gram_distance(model, images, layers, sample):
    """Relative Gram distance per image: sum over `layers` of mean (G - A)^2 / mean A^2 (no gradient).

    sample: one image for all, or one per image.
    """
    if len(sample) not in (1, len(images)):
        raise ValueError(f"give one sample or one per image ({len(images)}), got {len(sample)}")
    layers = [layers] if isinstance(layers, str) else list(layers)
    with torch.no_grad():
        grams = {name: gram_matrix(f) for name, f in layer_features(model, images, layers).items()}
        targets = {name: gram_matrix(f) for name, f in layer_features(model, sample, layers).items()}
        return sum((grams[name] - targets[name]).pow(2).mean(dim=(1, 2))
                   / targets[name].pow(2).mean(dim=(1, 2)).clamp_min(1e-12) for name in grams)


# ----------------------------------------------------------------------------------------------
# The offline feature extractor

class _FilterBank(nn.Module):
    """Random convolutions + ReLU at several kernel sizes, on each level of an image pyramid."""

    def __init__(self, kernel_sizes, channels, octaves):
        super().__init__()
        self.octaves = octaves
        self.branches = []                  # per octave, the names of its branches (one per kernel size)
        for octave in range(octaves):
            names = [f"scale{k}" if octave == 0 else f"scale{k}_down{2 ** octave}" for k in kernel_sizes]
            for name, k in zip(names, kernel_sizes):
                self.add_module(name, nn.Sequential(nn.Conv2d(3, channels, k, padding=k // 2), nn.ReLU()))
            self.branches.append(names)
        binomial = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        kernel = torch.outer(binomial, binomial) / binomial.sum() ** 2
        self.register_buffer("blur", kernel.expand(3, 1, 5, 5).clone(), persistent=False)

    @property
    def relu_names(self):
        return [f"{name}.1" for names in self.branches for name in names]

    def downsample(self, x):
        """Blur with a 5-tap binomial filter and keep every second pixel (one octave down)."""
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.blur.to(x.dtype), stride=2, groups=3)

    def forward(self, x):
        smallest = 4 * 2 ** (self.octaves - 1)
        if min(x.shape[-2:]) < smallest:
            raise ValueError(f"a filter bank with {self.octaves} octaves needs images of at least "
                             f"{smallest} x {smallest} pixels, got {tuple(x.shape[-2:])}")
        pooled = []
        for octave, names in enumerate(self.branches):
            if octave:
                x = self.downsample(x)
            pooled += [getattr(self, name)(x).mean(dim=(2, 3)) for name in names]
        return torch.cat(pooled, dim=1)


def random_filter_bank(kernel_sizes=(3, 5, 7, 11, 15), channels=64, seed=0, *, octaves=1):
    """One layer of random convolutions, each followed by ReLU, at several scales, as a VizModel.

    Each kernel size k gives the layer "scale{k}.1" (the ReLU output) on the image;
    with octaves > 1 the same kernel sizes (new random filters) also run on the image
    shrunk 2, 4, ... times by a binomial pyramid: layers "scale{k}_down2.1", ...
    Large structures then cost little: 5x5 filters two octaves down see 20 pixels.
    Random filters need no training and no download, and at several scales their
    Gram matrices describe textures well (Ustyuzhaninov et al. 2017). Weights use
    PyTorch's default initialisation under `seed`; the global random state is restored.

    The bank is marked `trained = False`, because its weights are random: `trained` says
    what the weights are, not whether a claim holds. Its claims need no training, so a
    notebook asserts them without `vizlib.is_trained`, which guards only claims that do.
    """
    if not kernel_sizes or any(int(k) != k or k < 1 or k % 2 == 0 for k in kernel_sizes):
        raise ValueError(f"kernel_sizes must be odd positive integers, got {kernel_sizes}")
    channels, octaves = check_positive_int(channels, "channels"), check_positive_int(octaves, "octaves")
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        bank = _FilterBank(kernel_sizes, channels, octaves)
    finally:
        torch.random.set_rng_state(generator_state)
    name = "random filter bank" if octaves == 1 else f"random filter bank, {octaves} octaves"
    model = VizModel(bank, name=name, class_names=(), input_size=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    model.trained = False
    return freeze(model)


def texture_filter_bank(seed=0):
    """The course's offline texture network: 64 random 3x3 and 64 random 5x5 filters on 4 octaves.

    Chosen by experiment (notebook 13): it gives recognisable textures in seconds on a
    CPU, where the course model leaves noise and a random VGG-19 costs several times more.
    """
    return random_filter_bank(kernel_sizes=(3, 5), channels=64, seed=seed, octaves=4)
