"""Feature visualisation: Fourier and decorrelated parameterisation, transformation robustness, diversity.

Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017 (and their Lucid library)
draw what a unit or class responds to with the gradient ascent of notebook 08, changed in
three places:

- **Parameterisation**: the optimiser does not move pixels. It moves a spectrum whose
  coefficients are scaled by 1/f^decay (`fourier_scale`), so that equal steps change low
  frequencies more than high ones, as in natural images; and colours go through the square
  root of the photographs' colour covariance (`colour_matrix`), so that the optimiser's
  three channels are uncorrelated, as whitened photographs are; a sigmoid keeps the pixels
  in [0, 1]. `FeatureImage` is that module: `FeatureImage(n, size)()` draws the images.
- **Transformation robustness**: each step sees the images through a random chain of
  transformations (`Pad`, `Jitter`, `RandomScale`, `RandomRotate`, composed by `Chain`);
  `lucid_chain(size)` is Lucid's default chain for 224 px, scaled to `size`. All in torch.
- **Objectives that compose**: `channel`, `neuron`, `class_score` and `diversity` give
  `Objective`s that add, subtract and scale (`channel(layer, 3) - 10 * diversity(layer)`).

`visualise(model, objective)` runs them all through vizlib.optim.optimise_image, the loop
08 uses, and returns its OptimisationResult (`images`, `losses`).
`visualise_channels(model, layer, channels)` draws one image per channel in one batch.
"""

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vizlib.arguments import check_classes
from vizlib.config import fast_or
from vizlib.counts import check_int_in_range, check_positive, check_positive_int
from vizlib.gradient_ascent import check_unit, unit_values
from vizlib.gram_texture import gram_matrix
from vizlib.hooks import capture_activations, layer_features, output_shapes
from vizlib.images import GREY, check_images, load_sample_image
from vizlib.optim import optimise_image
from vizlib.wrapper import check_model, checks_inputs

LUCID_SIZE = 224    # the input size Lucid's default transformations were made for

# Lucid's square root of ImageNet's colour covariance (rows R, G, B; columns the decorrelated
# channels, brightest first), as published with Lucid; `normalised` divides it by its largest
# column norm as Lucid does.
LUCID_COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])

# The offline colour photographs: the colour covariance is estimated on the first group and
# checked on the second, which it never saw.
ESTIMATE_PHOTOGRAPHS = ("chelsea", "coffee", "rocket", "astronaut")
HELD_OUT_PHOTOGRAPHS = ("china", "flower")


# ----------------------------------------------------------------------- colour decorrelation

@dataclass(frozen=True)
class ColourStatistics:
    """The colours of a set of photographs, as a Gaussian."""

    mean: torch.Tensor         # (3,) mean RGB value
    covariance: torch.Tensor   # (3, 3)


def colour_statistics(images):
    """Mean and covariance of the colours of all pixels of `images` (N, 3, H, W): `ColourStatistics`."""
    check_images(images)
    pixels = images.detach().double().permute(0, 2, 3, 1).reshape(-1, 3)
    mean = pixels.mean(0)
    centred = pixels - mean
    return ColourStatistics(mean, centred.T @ centred / len(pixels))


def symmetric_sqrt(covariance):
    """The symmetric square root S of a covariance matrix: S @ S = covariance (eigen-decomposition)."""
    values, vectors = torch.linalg.eigh(covariance)
    if values.min() <= 0:
        raise ValueError(f"the covariance is not positive definite (eigenvalues {values.tolist()})")
    return vectors @ torch.diag(values.sqrt()) @ vectors.T


@functools.lru_cache(maxsize=4)
def _photograph_colour_sqrt(names, size):
    photographs = torch.cat([load_sample_image(name, size=size) for name in names])
    return symmetric_sqrt(colour_statistics(photographs).covariance).float()


def colour_matrix(names=ESTIMATE_PHOTOGRAPHS, *, size=128):
    """Square root of the colour covariance of the offline photographs `names` (3, 3).

    Multiplying three uncorrelated unit-variance channels by it gives colours correlated as in
    the photographs; its inverse whitens the photographs' colours (`whiten`).
    """
    return _photograph_colour_sqrt(tuple(names), size).clone()


def normalised(matrix):
    """`matrix` divided by its largest column norm (Lucid's scaling of the colour matrix)."""
    return matrix / matrix.norm(dim=0).max()


def whiten(images, matrix, mean):
    """Colours of `images` with `mean` removed and the inverse of `matrix` applied: (N, 3, H, W), not in [0, 1].

    With `matrix` the square root of the colours' covariance, the result has identity covariance.
    """
    centred = images - mean.to(images).view(1, 3, 1, 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(matrix.double()).to(images), centred)


# -------------------------------------------------------------------------- Fourier images

def check_decay(decay):
    """The decay power d of the 1/f^d spectrum: a number >= 0 (0: white noise, no scaling)."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not math.isfinite(decay):
        raise TypeError(f"decay power must be a finite number, got {decay!r}")
    if decay < 0:
        raise ValueError(f"decay power must be >= 0 (1/f^decay falls with frequency), got {decay}: "
                         "a negative power would favour the finest, noisiest detail")
    return float(decay)


def fourier_frequencies(height, width):
    """(height, width // 2 + 1) spatial frequency of each coefficient of a real FFT, in cycles per pixel."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)
    return (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()


def fourier_scale(height, width, decay=1.0):
    """The factor on each coefficient: 1 / max(f, 1 / max(height, width)) ** decay (Lucid's scaling).

    The floor at one cycle per image keeps the constant term (f = 0) finite.
    """
    decay = check_decay(decay)
    frequencies = fourier_frequencies(height, width)
    # BEGIN SOLUTION
    floor = 1.0 / max(height, width)
    return 1.0 / frequencies.clamp_min(floor) ** decay
    # END SOLUTION


# Lucid divides the image by 4 so that a spectrum of standard deviation ~1 gives values in the sigmoid's soft range.
SPECTRUM_DIVISOR = 4.0


@functools.lru_cache(maxsize=16)
def _coefficient_factors(device, height, width, decay):
    """fourier_scale / SPECTRUM_DIVISOR in float32 on `device`: one multiplication per step, computed once per shape."""
    return (fourier_scale(height, width, decay) / SPECTRUM_DIVISOR).to(device, torch.float32)


def spectrum_to_image(spectrum, height, width, decay=1.0):
    """Complex spectrum (N, 3, height, width // 2 + 1) -> real (N, 3, height, width): scaled, inverse FFT, / 4."""
    factors = _coefficient_factors(spectrum.device, height, width, check_decay(decay))
    return torch.fft.irfft2(spectrum * factors, s=(height, width), norm="ortho")


def image_to_spectrum(images, decay=1.0):
    """The inverse of `spectrum_to_image`: the spectrum that draws `images` (any real values)."""
    factors = _coefficient_factors(images.device, *images.shape[-2:], check_decay(decay))
    return torch.fft.rfft2(images, norm="ortho") / factors


class FeatureImage(nn.Module):
    """`n` learnable images of `size` x `size` px; calling it draws them, (n, 3, size, size) in [0, 1].

    fourier: the learnable tensor is a spectrum scaled by 1/f^decay (else: one value per pixel).
    decorrelate: the three learnable channels are mixed by `matrix` (default: `colour_matrix()`,
    estimated on the offline photographs; normalised by its largest column norm).
    A sigmoid maps the result into [0, 1]. The start is Gaussian with standard deviation `sd`
    (Lucid: 0.01), drawn from `seed`: nearly uniform grey.
    """

    def __init__(self, n, size, *, fourier=True, decay=1.0, decorrelate=True, matrix=None, sd=0.01, seed=0,
                 device=None):
        super().__init__()
        self.n, self.size = check_positive_int(n, "n (the number of images)"), check_positive_int(size, "size")
        self.fourier, self.decay, self.decorrelate = bool(fourier), check_decay(decay), bool(decorrelate)
        sd = check_positive(sd, "sd")
        matrix = colour_matrix() if matrix is None else torch.as_tensor(matrix, dtype=torch.float32)
        if matrix.shape != (3, 3):
            raise ValueError(f"the colour matrix must be 3x3, got shape {tuple(matrix.shape)}")
        self.register_buffer("matrix", normalised(matrix.float()).to(device))
        generator = torch.Generator().manual_seed(seed)
        shape = (self.n, 3, self.size, self.size // 2 + 1, 2) if fourier else (self.n, 3, self.size, self.size)
        self.raw = nn.Parameter((sd * torch.randn(shape, generator=generator)).to(device))

    def unbounded(self):
        """The images before the sigmoid: (n, 3, size, size), real values."""
        if self.fourier:
            images = spectrum_to_image(torch.view_as_complex(self.raw), self.size, self.size, self.decay)
        else:
            images = self.raw
        if self.decorrelate:
            # a matrix product over the flattened pixels (einsum took 10x as long for four images on CPU)
            images = (self.matrix @ images.flatten(2)).view(images.shape)
        return images

    def forward(self):
        return torch.sigmoid(self.unbounded())

    def extra_repr(self):
        kind = f"fourier 1/f^{self.decay:g}" if self.fourier else "pixels"
        return f"n={self.n}, size={self.size}, {kind}, decorrelate={self.decorrelate}"


# ------------------------------------------------------------------------ transformations
# Each transformation is called as t(images, generator) and draws its randomness from the
# generator, once per batch. `output_size(size)` gives the side it returns for a `size`-px image.


def _rotation(degrees):
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # rows point down: a counter-clockwise turn on screen sends (x, y) to (x cos + y sin, y cos - x sin);
    # the output reads the input through the inverse of that
    return torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)


def _magnification(factor):
    return torch.eye(2, dtype=torch.float64) / factor


def _affine(images, matrix, fill):
    """Resample `images` so that output position p shows input position matrix @ p (pixel units about the
    centre, bilinear); what comes from outside the image is `fill`."""
    n, channels, height, width = images.shape
    # affine_grid reads positions from -1 to 1 across the image: the same map in those units
    half = torch.diag(torch.tensor([width / 2, height / 2], dtype=torch.float64))
    linear = torch.linalg.inv(half) @ matrix @ half
    theta = torch.cat([linear, torch.zeros(2, 1, dtype=torch.float64)], 1).to(images.device, images.dtype)
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, channels, height, width], align_corners=False)
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def rotate(images, degrees, fill=GREY):
    """Rotate about the centre by `degrees` (counter-clockwise as displayed); corners filled with `fill`."""
    return _affine(images, _rotation(degrees), fill)


def rescale(images, factor, fill=GREY):
    """Magnify about the centre by `factor` (> 1 zooms in, < 1 out), same size; borders filled with `fill`."""
    return _affine(images, _magnification(factor), fill)


def _choose(values, generator):
    return values[int(torch.randint(len(values), (1,), generator=generator))]


@dataclass(frozen=True)
class Pad:
    """Pad every side by `width` pixels of the constant `value` (Lucid: 12 px of 0.5 at 224 px)."""

    width: int
    value: float = GREY

    def __post_init__(self):
        check_int_in_range(self.width, "pad width", 0)

    def __call__(self, images, generator=None):
        return F.pad(images, (self.width,) * 4, value=self.value)

    def output_size(self, size):
        return size + 2 * self.width


@dataclass(frozen=True)
class Jitter:
    """A random crop that is `shift` pixels smaller on each axis: the content moves by 0 to `shift` pixels."""

    shift: int

    def __post_init__(self):
        check_int_in_range(self.shift, "jitter shift", 0)

    def __call__(self, images, generator=None):
        height, width = images.shape[-2:]
        if self.shift >= min(height, width):
            raise ValueError(f"jitter of {self.shift} px does not fit in a {height}x{width} image")
        top, left = torch.randint(self.shift + 1, (2,), generator=generator).tolist()
        return images[..., top:top + height - self.shift, left:left + width - self.shift]

    def output_size(self, size):
        return size - self.shift


@dataclass(frozen=True)
class RandomScale:
    """Magnify about the centre by a factor drawn from `factors` (Lucid: 0.90, 0.91, ..., 1.10); same size."""

    factors: tuple

    def __post_init__(self):
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))
        if not self.factors or min(self.factors) <= 0:
            raise ValueError(f"scale factors must be positive numbers, got {self.factors}")

    def __call__(self, images, generator=None):
        return rescale(images, _choose(self.factors, generator))

    def output_size(self, size):
        return size


@dataclass(frozen=True)
class RandomRotate:
    """Rotate about the centre by an angle drawn from `degrees` (Lucid: -10, -9, ..., 10); same size."""

    degrees: tuple

    def __post_init__(self):
        object.__setattr__(self, "degrees", tuple(float(d) for d in self.degrees))
        if not self.degrees:
            raise ValueError("give at least one rotation angle")
        if max(abs(d) for d in self.degrees) > 180:
            raise ValueError(f"rotation angles must lie in [-180, 180] degrees, got a range up to "
                             f"{max(abs(d) for d in self.degrees):g}: beyond 180 a turn repeats a smaller one")

    def __call__(self, images, generator=None):
        return rotate(images, _choose(self.degrees, generator))

    def output_size(self, size):
        return size


@dataclass(frozen=True)
class Chain:
    """Transformations applied in order, each drawing its randomness from the generator; `Chain(())`
    changes nothing."""

    transforms: tuple

    def __post_init__(self):
        object.__setattr__(self, "transforms", tuple(self.transforms))
        for t in self.transforms:
            if not (callable(t) and hasattr(t, "output_size")):
                raise TypeError(f"each transformation is called as t(images, generator) and has output_size(size); "
                                f"got {t!r}")

    def __call__(self, images, generator=None):
        for transform in self.transforms:
            images = transform(images, generator)
        return images

    def output_size(self, size):
        for transform in self.transforms:
            size = transform.output_size(size)
        return size


def lucid_chain(size=LUCID_SIZE):
    """Lucid's default chain for 224 px, lengths scaled to `size`: pad 12, jitter 8, scale 0.90-1.10
    (11 values), rotate -10..10 degrees, jitter 4. Jitters stay at least 1 px; angles and factors are kept."""
    size = check_positive_int(size, "size")

    def px(length):
        return max(1, round(length * size / LUCID_SIZE))

    return Chain((Pad(px(12)), Jitter(px(8)), RandomScale(tuple(0.9 + 0.02 * i for i in range(11))),
                  RandomRotate(tuple(range(-10, 11))), Jitter(px(4))))


# -------------------------------------------------------------------------------- objectives

OUTPUT = "output"   # the activations' key of the model's output (class scores)


class Objective:
    """A number to maximise, read from a batch's activations: `objective(activations) -> scalar`.

    `activations` maps layer names (and OUTPUT) to tensors with one row per image. Objectives
    compose: `a + b`, `a - b`, `2 * a`, `-a`. `layers` lists what they read, `checks` the
    validations to run against a model before any work, `batch` the number of images they
    address one by one (1 when any count will do).
    """

    def __init__(self, function, *, layers=(), checks=(), batch=1, name="objective"):
        self.function, self.layers, self.checks = function, tuple(layers), tuple(checks)
        self.batch, self.name = batch, name

    def __call__(self, activations):
        return self.function(activations)

    def _combine(self, other, sign, symbol):
        if not isinstance(other, Objective):
            return NotImplemented
        if self.batch > 1 and other.batch > 1 and self.batch != other.batch:
            raise ValueError(f"{self.name} addresses {self.batch} images and {other.name} {other.batch}")
        return Objective(lambda acts: self(acts) + sign * other(acts), layers=self.layers + other.layers,
                         checks=self.checks + other.checks, batch=max(self.batch, other.batch),
                         name=f"{self.name} {symbol} {other.name}")

    def __add__(self, other):
        return self._combine(other, 1.0, "+")

    def __sub__(self, other):
        return self._combine(other, -1.0, "-")

    def __mul__(self, weight):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            return NotImplemented
        return Objective(lambda acts: weight * self(acts), layers=self.layers, checks=self.checks,
                         batch=self.batch, name=f"{weight:g} * ({self.name})")

    __rmul__ = __mul__

    def __neg__(self):
        return -1 * self

    def __repr__(self):
        return f"Objective({self.name})"


def _per_image(indices):
    """Indices as a LongTensor (one per image) and how many images they address (1: every image)."""
    flat = torch.as_tensor(indices).flatten()
    if flat.numel() == 0 or flat.is_floating_point() or flat.dtype == torch.bool:
        raise TypeError(f"expected an int or a list of ints, got {indices!r}")
    return flat.long(), (flat.numel() if torch.as_tensor(indices).dim() else 1)


def _pick(values, indices):
    """values (N, C, ...) -> (N, ...): image i's channel indices[i] (or the one index for all)."""
    return values[torch.arange(len(values)), indices.to(values.device).expand(len(values))]


def channel(layer, channels):
    """Mean activation of a channel over positions, averaged over the batch; image i drives `channels[i]`
    (a list) or every image the one channel (an int)."""
    indices, batch = _per_image(channels)

    def value(acts):
        return unit_values(_pick(acts[layer], indices)).mean()

    return Objective(value, layers=[layer], batch=batch, name=f"channel {layer}:{indices.tolist()}",
                     checks=[lambda model, size: check_unit(model, layer, indices, image_size=size)])


def neuron(layer, channels, position=None):
    """One position of a channel's map (default: its centre), averaged over the batch."""
    indices, batch = _per_image(channels)

    def where(shape):
        return (shape[-2] // 2, shape[-1] // 2) if position is None else position

    def value(acts):
        maps = _pick(acts[layer], indices)
        return unit_values(maps, where(maps.shape)).mean()

    def check(model, size):
        name, _ = check_unit(model, layer, indices, image_size=size)   # the map's shape, for the centre
        check_unit(model, layer, indices, where(output_shapes(model, [name], size=size)[name]), image_size=size)

    return Objective(value, layers=[layer], batch=batch, name=f"neuron {layer}:{indices.tolist()}@{position}",
                     checks=[check])


def class_score(classes):
    """The unnormalised score of a class (Simonyan et al. 2014), averaged over the batch; image i
    drives `classes[i]` (a list) or every image the one class (an int)."""
    indices, batch = _per_image(classes)

    def value(acts):
        return _pick(acts[OUTPUT], indices).mean()

    return Objective(value, layers=[OUTPUT], batch=batch, name=f"class {indices.tolist()}",
                     checks=[lambda model, size: check_classes(model, indices)])


def diversity(layer):
    """How alike the batch's images are at `layer`: the mean cosine similarity between the Gram
    matrices of every pair of different images (Olah et al. 2017). Subtract it to push them apart."""

    def value(acts):
        features = acts[layer]
        if len(features) < 2:
            raise ValueError("diversity compares the images of a batch with each other: give n >= 2")
        # BEGIN SOLUTION
        grams = F.normalize(gram_matrix(features).flatten(1), dim=1)
        similarity = grams @ grams.T
        n = len(features)
        return (similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))
        # END SOLUTION

    return Objective(value, layers=[layer], name=f"diversity {layer}",
                     checks=[lambda model, size: check_unit(model, layer, [0], image_size=size)])


def activations_for(model, images, layers):
    """{layer: activations} of `images`, kept in the graph; OUTPUT among `layers` adds the class scores.

    Without OUTPUT the forward pass ends at the last layer asked for. The pixels are checked by
    layer_features or the model's forward.
    """
    return _activations(check_model(model), images, layers)


def _activations(model, images, layers):
    """activations_for without the model's check: each step of `visualise`, whose entry checked it."""
    layers = list(dict.fromkeys(layers))
    named = [layer for layer in layers if layer != OUTPUT]
    if OUTPUT not in layers:
        return layer_features(model, images, named)
    with capture_activations(model, named, detach=False) as acts:
        scores = model(images)
    return {**acts, OUTPUT: scores}


# --------------------------------------------------------------------------------- the loop

LUCID_STEPS, LUCID_LR = 512, 0.05     # Lucid's optimiser: Adam, step 0.05, 512 steps


def default_steps():
    """Lucid's 512 steps at teaching quality, 64 in fast mode."""
    return fast_or(full=LUCID_STEPS, fast=64)


@checks_inputs()
def visualise(model, objective, *, n=None, size=None, fourier=True, decay=1.0, decorrelate=True, matrix=None,
              transforms="lucid", steps=None, lr=LUCID_LR, sd=0.01, seed=0, show_progress=None):
    """Images in [0, 1] that maximise `objective` (an Objective) on `model`.

    n: how many images (default: as many as the objective addresses one by one, else 1).
    size: their side (default: model.input_size). fourier, decay, decorrelate, matrix, sd:
    the parameterisation (`FeatureImage`). transforms: "lucid" (`lucid_chain(size)`), a Chain
    or a list of transformations, or None for none; what the chain returns is cut to the model's
    input size at a random place (a last jitter). Adam with step `lr` for `steps` steps
    (default 512, 64 in fast mode). Every argument is checked before any work; a chain whose
    output could be smaller than the model's input size is refused.
    Returns vizlib.optim.OptimisationResult: `images` (n, 3, size, size) and `losses` (-objective per step).
    """
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be an Objective (channel, neuron, class_score, diversity and their sums), "
                        f"got {type(objective).__name__}")
    size = model.input_size if size is None else check_positive_int(size, "size")
    n = objective.batch if n is None else check_positive_int(n, "n (the number of images)")
    if objective.batch > 1 and n != objective.batch:
        raise ValueError(f"the objective addresses {objective.batch} images one by one, but n={n}")
    steps = default_steps() if steps is None else check_positive_int(steps, "steps")
    chain = _as_chain(transforms, size)
    smallest = chain.output_size(size)
    if model.input_size is not None and smallest < model.input_size:
        raise ValueError(f"the transformations can shrink the {size}-px images to {smallest} px, below the model's "
                         f"input size {model.input_size}: pad more or jitter less")
    if model.input_size is not None and smallest > model.input_size:
        # the model sees its own input size, cut at a random place: a last jitter that saves the larger pass
        chain = Chain(chain.transforms + (Jitter(smallest - model.input_size),))
    for check in objective.checks:
        check(model, size)
    image = FeatureImage(n, size, fourier=fourier, decay=decay, decorrelate=decorrelate, matrix=matrix, sd=sd,
                         seed=seed, device=model.device)

    def loss(images):
        return -objective(_activations(model, images, objective.layers))

    return optimise_image(loss, image, steps=steps, lr=lr, transform=chain, seed=seed,
                          desc=f"visualising {objective.name}"[:60], show_progress=show_progress)


def _as_chain(transforms, size):
    if transforms is None:
        return Chain(())
    if isinstance(transforms, str):
        if transforms != "lucid":
            raise ValueError(f"transforms must be 'lucid', a Chain, a list of transformations or None, "
                             f"got {transforms!r}")
        return lucid_chain(size)
    return transforms if isinstance(transforms, Chain) else Chain(tuple(transforms))


def visualise_channels(model, layer, channels, **options):
    """One image per channel of `layer` (a list), all in one batch: `visualise(model, channel(layer, channels))`.

    `options` are visualise's. Returns its OptimisationResult; image i shows channels[i].
    """
    channels = [channels] if isinstance(channels, int) else list(channels)
    return visualise(model, channel(layer, channels), n=len(channels), **options)
