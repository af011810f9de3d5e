"""Feature visualisation: Fourier images, colour decorrelation, transformations, objectives and bad input.

Oracles (where each homework region's expected values come from):
- fourier_scale(): a loop over the coefficients with numpy's own FFT frequencies, and the closed-form
  cosine that a single scaled coefficient draws.
- value() inside diversity(): a loop over pairs of images, Gram matrices by einsum and numpy cosines.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model_state import assert_unchanged, fingerprint
from vizlib.feature_visualisation import (
    ESTIMATE_PHOTOGRAPHS, HELD_OUT_PHOTOGRAPHS, LUCID_COLOUR_SQRT, OUTPUT, Chain, FeatureImage, Jitter, Pad,
    RandomRotate, RandomScale, activations_for, channel, class_score, colour_matrix, colour_statistics, diversity,
    fourier_frequencies, fourier_scale, image_to_spectrum, lucid_chain, neuron, normalised, rescale, rotate,
    spectrum_to_image, visualise, visualise_channels, whiten,
)
from vizlib.hooks import layer_features
from vizlib.images import load_sample_image
from vizlib.optim import OptimisationResult, optimise_image


# ------------------------------------------------------------------------- Fourier images

@pytest.mark.parametrize("height, width", [(8, 8), (7, 10), (9, 5)])
@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_fourier_scale_is_one_over_the_floored_frequency_to_the_power_decay(height, width, decay):
    fy, fx = np.fft.fftfreq(height), np.fft.rfftfreq(width)
    expected = np.empty((height, len(fx)))
    for i in range(height):
        for j in range(len(fx)):
            f = math.hypot(fy[i], fx[j])
            expected[i, j] = 1 / max(f, 1 / max(height, width)) ** decay
    np.testing.assert_allclose(fourier_scale(height, width, decay).numpy(), expected, rtol=1e-12)
    assert fourier_frequencies(height, width).shape == (height, width // 2 + 1)


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 3, 9, 12), (1, 3, 11, 7)])
def test_image_to_spectrum_to_the_same_image(shape):
    images = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    height, width = shape[-2:]
    for decay in (0.0, 1.0, 2.0):
        spectrum = image_to_spectrum(images, decay)
        assert spectrum.shape == (*shape[:2], height, width // 2 + 1)
        torch.testing.assert_close(spectrum_to_image(spectrum, height, width, decay), images, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ky, kx", [(1, 1), (3, 0), (0, 5), (2, 4)])
@pytest.mark.parametrize("decay", [0.5, 1.0, 2.0])
def test_one_coefficient_draws_a_cosine_whose_amplitude_falls_as_one_over_f_to_the_decay(ky, kx, decay):
    height, width = 16, 20
    spectrum = torch.zeros(1, 1, height, width // 2 + 1, dtype=torch.complex64)
    spectrum[0, 0, ky, kx] = 1.0
    image = spectrum_to_image(spectrum, height, width, decay)[0, 0].double().numpy()
    f = math.hypot(ky / height, kx / width)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    phase = 2 * np.pi * (ky * rows / height + kx * cols / width)
    # a coefficient off the kx = 0 column stands for itself and its mirror: twice the real part
    amplitude = (2 if 0 < kx < width / 2 else 1) / math.sqrt(height * width) / 4 / f ** decay
    if kx == 0 and 0 < ky:  # on the kx = 0 column irfft keeps only the real part of the Hermitian pair's mean
        amplitude = 1 / math.sqrt(height * width) / 4 / f ** decay
    np.testing.assert_allclose(image, amplitude * np.cos(phase), atol=1e-6)


def test_the_constant_term_is_scaled_by_the_floor_of_one_cycle_per_image():
    spectrum = torch.zeros(1, 1, 12, 7, dtype=torch.complex64)
    spectrum[0, 0, 0, 0] = 1.0
    image = spectrum_to_image(spectrum, 12, 12, decay=1.0)
    torch.testing.assert_close(image, torch.full_like(image, 12 / 12 / 4))   # 1/sqrt(144) * 12 / 4


def test_a_fourier_image_without_decorrelation_draws_the_sigmoid_of_its_spectrum():
    image = FeatureImage(2, 10, decorrelate=False, seed=3)
    target = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    with torch.no_grad():
        image.raw.copy_(torch.view_as_real(image_to_spectrum(torch.logit(target), image.decay)))
        torch.testing.assert_close(image(), target, atol=1e-5, rtol=1e-5)


def test_the_start_is_near_grey_and_reproducible():
    a, b, c = FeatureImage(2, 16, seed=0)(), FeatureImage(2, 16, seed=0)(), FeatureImage(2, 16, seed=1)()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - 0.5).abs().max() < 0.05 and a.shape == (2, 3, 16, 16)


def test_decorrelation_mixes_the_channels_by_the_normalised_matrix():
    matrix = torch.tensor([[1.0, 0.5, 0.0], [0.2, 1.0, 0.1], [0.0, 0.3, 2.0]])
    plain = FeatureImage(1, 6, fourier=False, decorrelate=False, seed=2)
    mixed = FeatureImage(1, 6, fourier=False, decorrelate=True, matrix=matrix, seed=2)
    raw = plain.unbounded()[0].detach()
    scaled = matrix / max(float(np.linalg.norm(matrix[:, j].numpy())) for j in range(3))
    expected = np.einsum("ij,jhw->ihw", scaled.numpy(), raw.numpy())
    np.testing.assert_allclose(mixed.unbounded()[0].detach().numpy(), expected, rtol=1e-5, atol=1e-7)


# -------------------------------------------------------------------------- colour decorrelation

def photographs(names):
    return torch.cat([load_sample_image(name, size=128) for name in names])


def test_colour_statistics_match_numpy():
    images = photographs(ESTIMATE_PHOTOGRAPHS[:2])
    statistics = colour_statistics(images)
    mean, covariance = statistics.mean, statistics.covariance
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    np.testing.assert_allclose(mean.numpy(), pixels.mean(0), rtol=1e-10)
    np.testing.assert_allclose(covariance.numpy(), np.cov(pixels.T, bias=True), rtol=1e-8)


def test_the_colour_matrix_is_a_square_root_of_the_photographs_covariance():
    matrix = colour_matrix().double()
    covariance = colour_statistics(photographs(ESTIMATE_PHOTOGRAPHS)).covariance
    torch.testing.assert_close(matrix @ matrix, covariance, rtol=1e-5, atol=1e-6)


def test_decorrelation_whitens_the_colours_of_photographs_it_was_not_estimated_on():
    assert not set(ESTIMATE_PHOTOGRAPHS) & set(HELD_OUT_PHOTOGRAPHS)
    mean = colour_statistics(photographs(ESTIMATE_PHOTOGRAPHS)).mean
    held_out = photographs(HELD_OUT_PHOTOGRAPHS)
    raw = np.linalg.eigvalsh(np.cov(held_out.permute(1, 0, 2, 3).reshape(3, -1).double().numpy()))
    whitened = whiten(held_out.double(), colour_matrix(), mean)
    values = np.linalg.eigvalsh(np.cov(whitened.permute(1, 0, 2, 3).reshape(3, -1).numpy()))
    assert raw.max() / raw.min() > 50                        # the photographs' colours are strongly correlated
    assert 0.25 < values.min() and values.max() < 4          # whitened: within a factor 4 of the identity
    assert values.max() / values.min() < raw.max() / raw.min() / 10


def test_lucids_matrix_normalised_has_unit_largest_column():
    assert normalised(LUCID_COLOUR_SQRT).norm(dim=0).max().item() == pytest.approx(1.0)


# ------------------------------------------------------------------------------ transformations

def pattern(size=12, n=1):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(5))


def test_pad_surrounds_the_image_with_the_value():
    images = pattern(5)
    padded = Pad(2, value=0.25)(images)
    assert padded.shape == (1, 3, 9, 9) and Pad(2).output_size(5) == 9
    assert torch.equal(padded[..., 2:7, 2:7], images)
    border = torch.ones(9, 9, dtype=torch.bool)
    border[2:7, 2:7] = False
    assert (padded[..., border] == 0.25).all()


def test_a_jitter_is_a_pure_shift_by_a_whole_number_of_pixels_within_its_range():
    images = pattern(12)
    seen = set()
    for seed in range(30):
        out = Jitter(3)(images, torch.Generator().manual_seed(seed))
        assert out.shape == (1, 3, 9, 9) and Jitter(3).output_size(12) == 9
        shifts = [(dy, dx) for dy in range(4) for dx in range(4) if torch.equal(out, images[..., dy:dy + 9, dx:dx + 9])]
        assert len(shifts) == 1                              # exactly one shift in [0, 3]^2 explains the output
        seen.add(shifts[0])
    assert len(seen) > 8                                     # and it varies


def test_rotating_by_a_quarter_turn_is_rot90_and_a_half_turn_flips_both_axes():
    images = pattern(8, n=2)
    torch.testing.assert_close(rotate(images, 90), torch.rot90(images, 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(images, 180), images.flip(-1).flip(-2), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(images, 0), images, atol=1e-6, rtol=0)


def ramp(size, a, b):
    """a * x + b * y about the centre (pixel units, y downwards), offset into [0, 1] on a large image."""
    centre = (size - 1) / 2
    y, x = torch.meshgrid(torch.arange(size) - centre, torch.arange(size) - centre, indexing="ij")
    return (0.5 + a * x + b * y).double().expand(1, 3, size, size).clone(), x.double(), y.double()


def test_rotation_of_a_linear_ramp_against_the_closed_form():
    size, degrees = 41, 30.0
    image, x, y = ramp(size, 0.004, 0.002)
    out = rotate(image, degrees)
    t = math.radians(degrees)
    # counter-clockwise as displayed (y down): output at (x, y) shows input at (x cos t - y sin t, x sin t + y cos t)
    expected = 0.5 + 0.004 * (x * math.cos(t) - y * math.sin(t)) + 0.002 * (x * math.sin(t) + y * math.cos(t))
    inner = (x.abs() < 12) & (y.abs() < 12)                 # away from the filled corners
    torch.testing.assert_close(out[0, 0][inner], expected[inner], atol=1e-6, rtol=0)


def test_rescaling_a_linear_ramp_against_the_closed_form_and_filling_the_border():
    size = 40
    image, x, y = ramp(size, 0.005, -0.003)
    for factor in (0.8, 1.25, 2.0):
        out = rescale(image, factor, fill=0.5)
        inner = (x.abs() < 0.4 * size * min(1, factor)) & (y.abs() < 0.4 * size * min(1, factor))
        expected = 0.5 + (0.005 * x - 0.003 * y) / factor
        torch.testing.assert_close(out[0, 0][inner], expected[inner], atol=1e-6, rtol=0)
    small = rescale(torch.ones(1, 3, size, size), 0.5, fill=0.5)
    assert (small[..., :5, :] == 0.5).all() and small[..., size // 2, size // 2].eq(1).all()


def test_random_scale_and_rotation_draw_one_of_their_values():
    images = pattern(16)
    scale, turn = RandomScale((0.5, 2.0)), RandomRotate((-30, 0, 45))
    drawn = set()
    for seed in range(12):
        out = scale(images, torch.Generator().manual_seed(seed))
        drawn.add(next(f for f in scale.factors if torch.allclose(out, rescale(images, f))))
        out = turn(images, torch.Generator().manual_seed(seed))
        assert any(torch.allclose(out, rotate(images, d)) for d in turn.degrees)
    assert drawn == {0.5, 2.0}
    assert scale.output_size(16) == turn.output_size(16) == 16


def test_lucids_chain_at_224_px_and_scaled_to_64():
    chain = lucid_chain(224)
    pad, jitter, scale, turn, jitter2 = chain.transforms
    assert (pad.width, pad.value, jitter.shift, jitter2.shift) == (12, 0.5, 8, 4)
    np.testing.assert_allclose(scale.factors, np.linspace(0.9, 1.1, 11))
    assert turn.degrees == tuple(float(d) for d in range(-10, 11))
    assert chain.output_size(224) == 224 + 24 - 12
    small = lucid_chain(64)
    assert [small.transforms[i].shift for i in (1, 4)] == [2, 1] and small.transforms[0].width == 3
    out = small(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 67, 67) and small.output_size(64) == 67
    assert 0 <= out.min() and out.max() <= 1


# -------------------------------------------------------------------------------- objectives

@pytest.fixture(scope="module")
def acts(course):
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return activations_for(course, images, ["features.relu2", "features.bn3", OUTPUT]), images


def test_channel_neuron_and_class_read_what_they_say(course, acts):
    values, images = acts
    with torch.no_grad():
        bn3 = layer_features(course, images, "features.bn3")["features.bn3"]
        scores = course(images)
    assert channel("features.bn3", 5)(values).item() == pytest.approx(bn3[:, 5].mean().item(), rel=1e-5)
    per_image = np.mean([bn3[i, c].mean().item() for i, c in enumerate([1, 4, 2])])
    assert channel("features.bn3", [1, 4, 2])(values).item() == pytest.approx(per_image, rel=1e-5)
    h, w = bn3.shape[-2:]
    assert neuron("features.bn3", 7)(values).item() == pytest.approx(bn3[:, 7, h // 2, w // 2].mean().item(), rel=1e-5)
    assert neuron("features.bn3", 7, (1, 2))(values).item() == pytest.approx(bn3[:, 7, 1, 2].mean().item(), rel=1e-5)
    assert class_score([0, 3, 3])(values).item() == pytest.approx(
        np.mean([scores[0, 0].item(), scores[1, 3].item(), scores[2, 3].item()]), rel=1e-5)


def test_objectives_compose_as_numbers(acts):
    values, _ = acts
    a, b, c = channel("features.bn3", 1), class_score(2), diversity("features.relu2")
    combined = a + 2 * b - c * 0.5 - (-a)
    expected = 2 * a(values) + 2 * b(values) - 0.5 * c(values)
    assert combined(values).item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(combined.layers) == {"features.bn3", OUTPUT, "features.relu2"}
    assert (channel("features.bn3", [1, 2]) + class_score(0)).batch == 2
    with pytest.raises(ValueError, match="addresses 2 images"):
        channel("features.bn3", [1, 2]) + class_score([0, 1, 2])


def test_diversity_is_the_mean_cosine_between_the_gram_matrices_of_pairs(acts):
    values, _ = acts
    features = values["features.relu2"].double().numpy()
    grams = [np.einsum("chw,dhw->cd", f, f).ravel() for f in features]
    pairs = [(i, j) for i in range(len(grams)) for j in range(len(grams)) if i != j]
    expected = np.mean([grams[i] @ grams[j] / np.linalg.norm(grams[i]) / np.linalg.norm(grams[j]) for i, j in pairs])
    assert diversity("features.relu2")(values).item() == pytest.approx(expected, rel=1e-5)
    identical = {"features.relu2": values["features.relu2"][:1].expand(3, -1, -1, -1)}
    assert diversity("features.relu2")(identical).item() == pytest.approx(1.0, rel=1e-5)


# ------------------------------------------------------------------------------------ the loop

def test_visualise_raises_the_channel_reproducibly_and_leaves_the_model_as_found(course):
    before = fingerprint(course)
    first = visualise_channels(course, "features.bn3", [3, 6], steps=30, seed=4, show_progress=False)
    again = visualise(course, channel("features.bn3", [3, 6]), steps=30, seed=4, show_progress=False)
    assert isinstance(first, OptimisationResult) and first.images.shape == (2, 3, 64, 64)
    assert torch.equal(first.images, again.images) and len(first.losses) == 30
    assert 0 <= first.images.min() and first.images.max() <= 1
    start = FeatureImage(2, 64, seed=4)().detach()
    with torch.no_grad():
        gained = [layer_features(course, x, "features.bn3")["features.bn3"][[0, 1], [3, 6]].mean((1, 2))
                  for x in (start, first.images)]
    assert (gained[1] > gained[0] + 0.1).all()
    assert_unchanged(course, before)


def test_every_parameterisation_and_a_class_objective_run(course):
    for options in ({"fourier": False, "decorrelate": False}, {"decay": 0.0}, {"matrix": LUCID_COLOUR_SQRT},
                    {"transforms": None}, {"transforms": [Pad(4), Jitter(4)]}):
        result = visualise(course, class_score(2), n=2, steps=3, show_progress=False, **options)
        assert result.images.shape == (2, 3, 64, 64) and torch.isfinite(torch.tensor(result.losses)).all()


def test_a_parameterised_image_takes_a_plain_sgd_step_on_its_own_tensor():
    image = FeatureImage(1, 4, fourier=False, decorrelate=False, seed=0)
    start = image.raw.detach().clone()
    weights = torch.arange(48.0).view(1, 3, 4, 4) / 48

    def objective(images):
        return (weights * images).sum()

    optimise_image(objective, image, steps=1, lr=0.1, optimizer="sgd", show_progress=False)
    sigmoid = torch.sigmoid(start)
    torch.testing.assert_close(image.raw.detach(), start - 0.1 * weights * sigmoid * (1 - sigmoid))
    with pytest.raises(ValueError, match="do not apply"):
        optimise_image(objective, image, steps=1, lr=0.1, blur_every=2, show_progress=False)


# ----------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, error, match", [
    (lambda m: visualise(m, channel("features.bn3", 0), decay=-1.0), ValueError, "decay power must be >= 0"),
    (lambda m: visualise(m, channel("features.bn3", 0), transforms=[RandomRotate((-200, 200))]), ValueError,
     r"\[-180, 180\] degrees"),
    (lambda m: visualise(m, channel("features.bn3", 0), transforms=[Jitter(8)]), ValueError,
     "shrink the 64-px images to 56 px, below the model's input size 64"),
    (lambda m: visualise(m, channel("features.bn3", 500)), ValueError, "channel must be an int from 0 to 127"),
    (lambda m: visualise(m, channel("features.nope", 0)), ValueError, "features.nope"),
    (lambda m: visualise(m, class_score(8)), ValueError, "valid indices are 0 to 7"),
    (lambda m: visualise(m, channel("features.bn3", [0, 1]), n=3), ValueError, "addresses 2 images"),
    (lambda m: visualise(m, diversity("features.relu2"), n=1, steps=1), ValueError, "give n >= 2"),
    (lambda m: visualise(m, "channel 3"), TypeError, "objective must be an Objective"),
    (lambda m: visualise(m, channel("features.bn3", 0), transforms="kornia"), ValueError, "transforms must be"),
    (lambda m: visualise(m, channel("features.bn3", 0), steps=0), ValueError, "steps must be a positive int"),
    (lambda m: visualise(m, channel("features.bn3", 1.5)), TypeError, "expected an int or a list of ints"),
])
def test_bad_input_is_a_clear_error_and_the_model_is_left_as_found(course, call, error, match):
    before = fingerprint(course)
    with pytest.raises(error, match=match):
        call(course)
    assert_unchanged(course, before)


def test_bad_transformations_are_refused_when_made():
    with pytest.raises(ValueError, match="180"):
        RandomRotate((0, 181))
    with pytest.raises(ValueError, match="positive"):
        RandomScale((1.0, 0.0))
    with pytest.raises(ValueError, match="pad width"):
        Pad(-1)
    with pytest.raises(TypeError, match="output_size"):
        Chain((lambda images, generator: images,))
    with pytest.raises(ValueError, match="decay power must be >= 0"):
        fourier_scale(8, 8, -0.5)
    with pytest.raises(ValueError, match="does not fit"):
        Jitter(10)(torch.rand(1, 3, 8, 8))


def test_a_scaling_then_a_rotation_read_the_input_through_their_product():
    size = 41
    image, x, y = ramp(size, 0.004, 0.002)
    chain = Chain((RandomScale((1.25,)), RandomRotate((90,))))
    out = chain(image, torch.Generator().manual_seed(0))
    # magnified by 1.25, then turned a quarter counter-clockwise: output (x, y) shows input (-y, x) / 1.25
    # (bilinear interpolation reproduces a linear ramp exactly, so two resamplings change nothing inside)
    expected = 0.5 + (0.004 * -y + 0.002 * x) / 1.25
    inner = (x.abs() < 14) & (y.abs() < 14)
    torch.testing.assert_close(out[0, 0][inner], expected[inner], atol=1e-6, rtol=0)


def bilinear_at(image, x, y, fill):
    """image (H, W) read at position (x, y), pixel centres at i + 0.5, `fill` outside: numpy, one point."""
    fx, fy = x - 0.5, y - 0.5
    j, i = math.floor(fx), math.floor(fy)
    wx, wy = fx - j, fy - i

    def at(r, c):
        return image[r, c] if 0 <= r < image.shape[0] and 0 <= c < image.shape[1] else fill

    return ((1 - wy) * ((1 - wx) * at(i, j) + wx * at(i, j + 1))
            + wy * ((1 - wx) * at(i + 1, j) + wx * at(i + 1, j + 1)))


def resample_by_hand(image, matrix, fill=0.5):
    """image (H, W) in numpy, each output pixel read bilinearly at matrix @ (its position - centre) + centre."""
    side_y, side_x = image.shape
    out = np.empty_like(image)
    for r in range(side_y):
        for c in range(side_x):
            dx, dy = c + 0.5 - side_x / 2, r + 0.5 - side_y / 2
            out[r, c] = bilinear_at(image, side_x / 2 + matrix[0][0] * dx + matrix[0][1] * dy,
                                    side_y / 2 + matrix[1][0] * dx + matrix[1][1] * dy, fill)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lucids_chain_is_its_steps_done_by_hand(seed):
    """Against a brute force: pad, jitter, scale, rotation, jitter done one by one in numpy with the same random
    draws (in order), each resampling read bilinearly pixel by pixel, grey outside."""
    size = 20
    chain = lucid_chain(size * 4)                   # pad 4, jitter 3, scale, rotate, jitter 1 at 80 px
    chain = Chain(chain.transforms[:2] + (RandomScale((0.9, 1.1)), RandomRotate((-10, 4, 10))) + chain.transforms[4:])
    image = pattern(size)[0, 0].double()
    out = chain(image[None, None].float(), torch.Generator().manual_seed(seed))[0, 0].double()

    draws = torch.Generator().manual_seed(seed)     # the chain's draws: jitter (top, left), factor, angle, jitter
    pad, jitter, scale, turn, last = chain.transforms
    top, left = torch.randint(jitter.shift + 1, (2,), generator=draws).tolist()
    factor = scale.factors[int(torch.randint(len(scale.factors), (1,), generator=draws))]
    angle = math.radians(turn.degrees[int(torch.randint(len(turn.degrees), (1,), generator=draws))])
    top2, left2 = torch.randint(last.shift + 1, (2,), generator=draws).tolist()
    expected = np.pad(image.numpy(), pad.width, constant_values=0.5)
    side = expected.shape[0] - jitter.shift
    expected = expected[top:top + side, left:left + side]
    expected = resample_by_hand(expected, [[1 / factor, 0], [0, 1 / factor]])
    cos, sin = math.cos(angle), math.sin(angle)
    expected = resample_by_hand(expected, [[cos, -sin], [sin, cos]])
    expected = expected[top2:top2 + side - last.shift, left2:left2 + side - last.shift]
    torch.testing.assert_close(out, torch.from_numpy(expected), atol=1e-5, rtol=0)


def test_whole_pixel_shifts_stay_exact_and_a_grey_pad_and_jitters_are_one_cut():
    images = pattern(12)
    chain = Chain((Pad(3), Jitter(2), Jitter(4)))
    out = chain(images, torch.Generator().manual_seed(5))
    draws = torch.Generator().manual_seed(5)
    (top, left), (top2, left2) = (torch.randint(n + 1, (2,), generator=draws).tolist() for n in (2, 4))
    padded = F.pad(images, (3,) * 4, value=0.5)
    assert torch.equal(out, padded[..., top + top2:top + top2 + 12, left + left2:left + left2 + 12])
    # a pad of another colour than the fill is applied as it is, then the jitter cuts
    black = Chain((Pad(2, value=0.0), Jitter(1)))(images, torch.Generator().manual_seed(0))
    top, left = torch.randint(2, (2,), generator=torch.Generator().manual_seed(0)).tolist()
    assert torch.equal(black, F.pad(images, (2,) * 4, value=0.0)[..., top:top + 15, left:left + 15])


def test_the_model_sees_its_own_input_size_whatever_the_chain_returns(course):
    sizes = []
    handle = course.net.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))
    try:
        visualise(course, class_score(1), steps=2, transforms=[Pad(5)], show_progress=False)
        visualise(course, class_score(1), steps=2, show_progress=False)
    finally:
        handle.remove()
    assert set(sizes) == {(64, 64)} and len(sizes) == 4
