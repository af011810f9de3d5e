"""Reference solutions to the exercises of notebook 11 (instructor only; the student release leaves this folder out)."""
import torch
import torchvision.transforms.functional as TF

import vizlib
from vizlib.deepdream import deepdream
from vizlib.hooks import forward_to
from vizlib.images import load_sample_image
from vizlib.models import load_model

SEED = 0
SIZE = 160
SETTINGS = dict(octaves=3, octave_scale=1.4, steps=8, step_size=0.005, max_jitter=8)


def _setup():
    model = load_model("course")
    photos = torch.cat([load_sample_image(name, size=SIZE) for name in ("astronaut", "china")]).to(model.device)
    return model, photos


def low_frequency_share(change, sigma=4.0):
    """Share of the change's energy that survives a Gaussian blur: how much of it is large structure."""
    smooth = TF.gaussian_blur(change, kernel_size=[4 * int(sigma) + 1] * 2, sigma=[sigma, sigma])
    return (smooth.pow(2).flatten(1).sum(1) / change.pow(2).flatten(1).sum(1)).mean().item()


def exercise_1():
    """octaves=1 against octaves=3 at features.relu5: the large structures go."""
    model, photos = _setup()
    shares = {}
    for octaves in (1, 3):
        dream = deepdream(model, photos, "features.relu5", seed=SEED, **{**SETTINGS, "octaves": octaves})
        shares[octaves] = low_frequency_share(dream - photos)
        print(f"octaves={octaves}: low-frequency share of the change {shares[octaves]:.3f}")
    assert shares[3] > 2 * shares[1], shares
    return shares


def grid_power(change, period=8):
    """Power of the change at the frequencies of a `period`-pixel grid, over the mean power nearby."""
    grey = change.mean(1)
    spectrum = torch.fft.rfft2(grey - grey.mean(dim=(1, 2), keepdim=True)).abs().pow(2).mean(0)
    height, width = grey.shape[-2:]
    fy, fx = height // period, width // period
    peak = spectrum[fy, 0] + spectrum[0, fx] + spectrum[fy, fx]
    nearby = torch.stack([spectrum[fy + dy, dx] + spectrum[dy, fx + dx] + spectrum[fy + dy, fx + dx]
                          for dy, dx in ((-2, 2), (2, 2), (-3, 3), (3, 3))]).mean()
    return (peak / nearby).item()


def exercise_2():
    """max_jitter=0: a grid at the layer's stride (8 pixels on the course model) appears in the change."""
    model, photos = _setup()
    ratios = {}
    for jitter in (0, 8):
        settings = {**SETTINGS, "max_jitter": jitter, "octaves": 1}
        dream = deepdream(model, photos, "features.relu5", seed=SEED, **settings)
        ratios[jitter] = grid_power(dream - photos)
        print(f"max_jitter={jitter}: power at the 8-pixel grid / nearby = {ratios[jitter]:.1f}")
    assert ratios[0] > 1.2 * ratios[8], ratios
    return ratios


def channel_dream(model, images, layer, channel, *, steps=20, step_size=0.01):
    """Normalised ascent on one channel's mean squared activation (no jitter, one octave)."""
    pixels = images.detach().clone()
    for _ in range(steps):
        pixels.requires_grad_(True)
        with torch.enable_grad():
            energy = forward_to(model, pixels, layer)[:, channel].pow(2).mean() / 2
            grad, = torch.autograd.grad(energy, pixels)
        pixels = (pixels.detach() + step_size * grad / grad.abs().mean().clamp_min(1e-12)).clamp(0, 1)
    return pixels


def exercise_3():
    """One channel at a time: the dreamed channel grows far more than the layer as a whole."""
    model, photos = _setup()
    layer = "features.relu5"
    with torch.no_grad():
        before = forward_to(model, photos[:1], layer)[0].pow(2).mean(dim=(1, 2))
    channels = before.argsort(descending=True)[:vizlib.fast_or(full=8, fast=3)].tolist()
    selectivity = {}
    for channel in channels:
        dream = channel_dream(model, photos[:1], layer, channel)
        with torch.no_grad():
            after = forward_to(model, dream, layer)[0].pow(2).mean(dim=(1, 2))
        growth = after / before.clamp_min(1e-12)
        selectivity[channel] = (growth[channel] / growth.median()).item()
        print(f"channel {channel}: x{growth[channel]:.1f}, median channel x{growth.median():.2f}")
    assert min(selectivity.values()) > 2, selectivity
    return selectivity
