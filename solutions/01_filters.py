"""Reference solutions to the exercises of notebook 01 (instructor only; the student release leaves this folder out)."""

import torch

from vizlib import filters
from vizlib.datasets import images_for_model
from vizlib.models import course_model

SEED = 0


def exercise_1():
    """Low-frequency share of trained and random filters at three cutoffs."""
    model = course_model()
    weights = filters.filter_weights(model)
    random_layers = [filters.filter_weights(filters.untrained_like(model, seed=s)) for s in (SEED, SEED + 1)]
    ratios = {}
    for cutoff in (0.15, 0.25, 0.35):
        trained = filters.low_frequency_fraction(weights, cutoff).mean().item()
        random = torch.stack([filters.low_frequency_fraction(w, cutoff) for w in random_layers]).mean().item()
        # white noise: the share of DFT bins that count as low, counted here without the library's mask
        n = weights.shape[-1]
        freqs = [min(k, n - k) / n for k in range(n)]
        white = sum(fy * fy + fx * fx <= cutoff * cutoff + 1e-12 for fy in freqs for fx in freqs) / n ** 2
        ratios[cutoff] = trained / random
        print(f"cutoff {cutoff}: trained {trained:.3f}, random {random:.3f}, white noise {white:.3f}, "
              f"ratio {ratios[cutoff]:.2f}")
        assert abs(random - white) < 0.03, "random filters should sit at the white-noise expectation"
        assert trained > 1.5 * random
    assert ratios[0.15] > ratios[0.35] + 0.8, "the ratio should shrink as the cutoff takes in more of the spectrum"


def rescale_zero_grey(tiles):
    """Zero -> mid-grey: divide each filter by its largest absolute weight, then map [-1, 1] to [0, 1]."""
    tiles = tiles.detach().float()
    peak = tiles.flatten(1).abs().max(1).values.clamp_min(1e-12).view(-1, 1, 1, 1)
    return 0.5 + 0.5 * tiles / peak


def exercise_2():
    """Zero-centred display against the notebook's min-max display."""
    weights = filters.filter_weights(course_model())
    centred = rescale_zero_grey(weights)
    minmax = filters.rescale_each(weights)
    difference = (centred - minmax).abs().flatten(1).mean(1)
    print(f"mean pixel difference per filter: median {difference.median():.3f}, max {difference.max():.3f}")
    assert float(rescale_zero_grey(torch.zeros(1, 3, 7, 7) + torch.eye(7)).min()) == 0.5  # zero is grey
    assert difference.median() < 0.08, "most filters are balanced around zero and barely change"
    assert difference.max() > 0.1, "filters with mostly one sign shift visibly"


def peak_orientation(weights):
    """Angle (degrees in [0, 180)) and radius (cycles/pixel) of each filter's strongest non-zero frequency."""
    power = filters.power_spectrum(weights).clone()
    power[:, 0, 0] = 0  # the mean says nothing about orientation
    _, height, width = power.shape
    index = power.flatten(1).argmax(1)
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[index // width]
    fx = torch.fft.fftfreq(width, dtype=torch.float64)[index % width]
    return torch.rad2deg(torch.atan2(fy, fx)) % 180, (fy ** 2 + fx ** 2).sqrt()


def exercise_3():
    """Orientation of each filter's peak frequency, trained against random."""
    model = course_model()
    trained_angle, trained_radius = peak_orientation(filters.filter_weights(model))
    random_angle, random_radius = peak_orientation(filters.filter_weights(filters.untrained_like(model, seed=SEED)))
    counts = torch.histc(trained_angle.float(), bins=4, min=-22.5, max=157.5)
    # fold 157.5..180 into the first bin (horizontal)
    counts[0] += (trained_angle >= 157.5).sum()
    print(f"trained filters per orientation (0, 45, 90, 135 deg): {counts.tolist()}")
    print(f"mean peak frequency: trained {trained_radius.mean():.3f}, random {random_radius.mean():.3f} cycles/pixel")
    assert counts.min() >= 3, "every orientation should be represented among the trained filters"
    assert trained_radius.mean() < 0.6 * random_radius.mean(), "trained peaks sit at lower frequencies"


def grey_correlation(maps, image):
    grey = image.mean(0, keepdim=True)[None]
    grey = torch.nn.functional.interpolate(grey, size=maps.shape[-2:], mode="area")[0, 0].flatten()
    return torch.stack([torch.corrcoef(torch.stack([m.flatten(), grey]))[0, 1] for m in maps]).abs().nan_to_num()


def exercise_4():
    """Activation maps of the untrained layer: how much of each is just the image's brightness."""
    model = course_model()
    untrained = filters.untrained_like(model, seed=SEED)
    images, _, _ = images_for_model(model, 1, seed=SEED)
    trained_maps = filters.first_layer_activations(model, images.to(model.device))[0].cpu()
    random_maps = filters.first_layer_activations(untrained, images.to(untrained.device))[0].cpu()
    trained = grey_correlation(trained_maps, images[0]).mean().item()
    random = grey_correlation(random_maps, images[0]).mean().item()
    print(f"mean |correlation| of a map with the image's grey level: trained {trained:.2f}, random {random:.2f}")
    assert random > 1.3 * trained, "random filters mostly pass on a blurred, noisy copy of the brightness"
