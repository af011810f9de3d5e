"""Non-parametric texture synthesis: scanline (Wei & Levoy 2000) and Efros & Leung (1999).

Oracles written here: the windowed SSD as a loop over windows; Efros-Leung's pseudocode
and the scanline algorithm as plain loops in float64 (with the random pick turned off);
a periodic sample, which must be continued periodically; every output pixel is a copy
of the sample pixel its source map names.

Oracles (where each homework region's expected values come from):
- ssd_terms(): the windowed SSD as a loop over windows.
- pick_windows(): hand-made rows with known best windows; the empirical frequency of each near-best window.
- scanline_synthesis(): the scanline algorithm as plain loops in float64.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vizlib.texture_sampling import (
    TEXTURE_CROPS, causal_offsets, efros_leung, gaussian_window, histogram_noise, load_texture,
    nearest_window_distance, pick_windows, random_tiling, scanline_synthesis, shuffle_pixels, source_map_image,
    windowed_ssd,
)


def grey(height, width, seed=0, dtype=torch.float32):
    values = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return values.expand(1, 3, height, width).contiguous()


def colour(height, width, seed=0, dtype=torch.float32):
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def gaussian(window):
    sigma = window / 6.4
    r = window // 2
    return [[math.exp(-((u - r) ** 2 + (v - r) ** 2) / (2 * sigma ** 2)) for v in range(window)] for u in range(window)]


# ---------------------------------------------------------------------------------------------
# The SSD as correlations, and the pick
# ---------------------------------------------------------------------------------------------


def test_gaussian_window_has_sigma_window_over_6_4():
    assert torch.allclose(gaussian_window(7, dtype=torch.float64), torch.tensor(gaussian(7), dtype=torch.float64))


@pytest.mark.parametrize("channels", [1, 3])
def test_windowed_ssd_equals_a_loop_over_windows(channels):
    k, h, w, count = 5, 9, 11, 6
    gen = torch.Generator().manual_seed(1)
    sample = torch.rand(channels, h, w, generator=gen, dtype=torch.float64)
    templates = torch.rand(count, channels, k, k, generator=gen, dtype=torch.float64)
    masks = torch.rand(count, k, k, generator=gen) < 0.5
    masks[:, k // 2, k // 2 - 1] = True                      # at least one known pixel each
    masks[0] = True                                           # one fully known template
    g = gaussian(k)
    expected = torch.zeros(count, h - k + 1, w - k + 1, dtype=torch.float64)
    for b in range(count):
        total = sum(g[u][v] for u in range(k) for v in range(k) if masks[b, u, v])
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                error = 0.0
                for u in range(k):
                    for v in range(k):
                        if masks[b, u, v]:
                            diff = templates[b, :, u, v] - sample[:, i + u, j + v]
                            error += g[u][v] * float((diff ** 2).sum())
                expected[b, i, j] = error / (total * channels)
    got = windowed_ssd(sample, templates, masks, gaussian_window(k, dtype=torch.float64))
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12)
    got32 = windowed_ssd(sample.float(), templates.float(), masks, gaussian_window(k))
    assert torch.allclose(got32.double(), expected, atol=1e-5)


def test_pick_without_randomness_takes_the_best_and_the_lowest_index_on_ties():
    ssd = torch.tensor([[3.0, 1.0, 1.0, 2.0], [0.5, 0.7, 0.2, 0.2]])
    index, error = pick_windows(ssd, random=False)
    assert index.tolist() == [1, 2] and error.tolist() == pytest.approx([1.0, 0.2])


def test_random_pick_is_uniform_over_the_windows_within_ten_percent_of_the_best():
    row = torch.tensor([1.0, 1.05, 1.2, 1.09, 5.0, 1.11])
    ssd = row.repeat(3000, 1)
    index, error = pick_windows(ssd, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(index, minlength=6) / 3000
    assert counts[[2, 4, 5]].sum() == 0                       # 1.2, 5.0, 1.11 are above 1.1 * 1.0
    assert torch.allclose(counts[[0, 1, 3]], torch.full((3,), 1 / 3), atol=0.04)
    assert torch.equal(error, row[index])


def test_pick_with_an_offset_is_the_pick_of_the_whole_ssd():
    gen = torch.Generator().manual_seed(3)
    ssd = torch.rand(5, 40, generator=gen, dtype=torch.float64) + 0.1
    offset = torch.rand(5, generator=gen, dtype=torch.float64)
    for random in (False, True):
        whole = pick_windows(ssd, random=random, generator=torch.Generator().manual_seed(9))
        parts = pick_windows(ssd - offset[:, None], offset=offset, random=random,
                             generator=torch.Generator().manual_seed(9))
        assert torch.equal(whole[0], parts[0]) and torch.allclose(whole[1], parts[1])


# ---------------------------------------------------------------------------------------------
# Efros-Leung against its pseudocode
# ---------------------------------------------------------------------------------------------


def reference_efros_leung(sample, size, window, max_error, seed_position=(0, 0)):
    """Efros & Leung's pseudocode with the best match always taken, in plain float64 loops.

    Pass after pass: the unfilled pixels with a filled 8-neighbour, most filled pixels in the
    window first (then scanline order); each matched against every sample window with the
    Gaussian-weighted SSD over its filled neighbours, divided by their total weight and the
    number of channels; filled if the error is below the threshold; a pass that fills nothing
    multiplies the threshold by 1.1. A grey sample is matched on one channel.
    """
    texture = sample[0].numpy().astype(np.float64)
    if np.array_equal(texture[0], texture[1]) and np.array_equal(texture[0], texture[2]):
        texture = texture[:1]
    channels, h, w = texture.shape
    height, width = size
    r, g = window // 2, gaussian(window)
    image = np.zeros((channels, height, width))
    filled = np.zeros((height, width), bool)
    top, left = (height - 3) // 2, (width - 3) // 2
    si, sj = seed_position
    image[:, top:top + 3, left:left + 3] = texture[:, si:si + 3, sj:sj + 3]
    filled[top:top + 3, left:left + 3] = True
    threshold, raises = max_error, 0

    def inside(a, b):
        return 0 <= a < height and 0 <= b < width

    while not filled.all():
        pending = []
        for i in range(height):
            for j in range(width):
                touching = any(inside(a, b) and filled[a, b] for a in range(i - 1, i + 2) for b in range(j - 1, j + 2))
                if filled[i, j] or not touching:
                    continue
                count = sum(inside(a, b) and filled[a, b]
                            for a in range(i - r, i + r + 1) for b in range(j - r, j + r + 1))
                pending.append((-count, i, j))
        progress = False
        for _, i, j in sorted(pending):
            known = [(u, v) for u in range(window) for v in range(window)
                     if inside(i + u - r, j + v - r) and filled[i + u - r, j + v - r]]
            total = sum(g[u][v] for u, v in known) * channels
            best, best_error = None, math.inf
            for a in range(h - window + 1):
                for b in range(w - window + 1):
                    error = sum(g[u][v] * ((image[:, i + u - r, j + v - r] - texture[:, a + u, b + v]) ** 2).sum()
                                for u, v in known) / total
                    if error < best_error:
                        best, best_error = (a, b), error
            if best_error < threshold:
                image[:, i, j] = texture[:, best[0] + r, best[1] + r]
                filled[i, j] = True
                progress = True
        if not progress:
            threshold *= 1.1
            raises += 1
    return np.broadcast_to(image, (3, height, width)), raises


@pytest.mark.parametrize("make, window, sample_size, size, max_error", [
    (grey, 3, (7, 8), (9, 10), 0.3),
    (colour, 3, (7, 7), (9, 9), 0.3),
    (colour, 5, (8, 9), (11, 10), 0.3),
    (grey, 5, (8, 8), (10, 10), 0.01),          # a low threshold: it has to be raised
])
def test_strict_mode_without_randomness_is_the_pseudocode(make, window, sample_size, size, max_error):
    sample = make(*sample_size, seed=window, dtype=torch.float64)
    expected, raises = reference_efros_leung(sample, size, window, max_error, seed_position=(1, 2))
    result = efros_leung(sample, size, window, mode="strict", random=False, max_error=max_error,
                         seed_position=(1, 2), show_progress=False)
    assert np.array_equal(result.images[0].numpy(), expected)
    assert result.threshold_raises == raises
    if max_error < 0.1:
        assert raises > 0


@pytest.mark.parametrize("mode", ["strict", "batched"])
def test_the_best_window_only_still_ends_when_no_pixel_passes(mode):
    """tolerance=0 (always the best window) with a threshold below every error: the threshold grows by its own
    factor, not by 1 + tolerance (which would be 1: a pass filling nothing, repeated forever)."""
    sample = grey(10, 10, seed=3)
    result = efros_leung(sample, 14, 5, mode=mode, tolerance=0, max_error=1e-6, seed=0, show_progress=False)
    assert bool((result.source >= 0).all()) and result.threshold_raises > 0
    slower = efros_leung(sample, 14, 5, mode=mode, tolerance=0, max_error=1e-6, threshold_growth=1.01, seed=0,
                         show_progress=False)
    assert slower.threshold_raises > result.threshold_raises      # smaller steps up to the same errors


def test_batched_with_batches_of_one_is_the_strict_mode():
    sample = colour(12, 12, seed=4)
    strict = efros_leung(sample, 16, 5, mode="strict", seed=2, show_progress=False)
    batched = efros_leung(sample, 16, 5, batch_size=1, spacing=1, seed=2, show_progress=False)
    assert torch.equal(strict.images, batched.images)


@pytest.mark.parametrize("make", [grey, colour])
@pytest.mark.parametrize("mode", ["strict", "batched"])
def test_a_periodic_sample_is_continued_periodically(make, mode):
    tile = make(4, 5, seed=11)
    sample = tile.repeat(1, 1, 4, 4)                          # 16 x 20, periods 4 and 5
    result = efros_leung(sample, (26, 27), 5, mode=mode, seed=0, show_progress=False)
    out = result.images
    assert torch.equal(out[..., 4:, :], out[..., :-4, :])
    assert torch.equal(out[..., :, 5:], out[..., :, :-5])
    assert result.threshold_raises == 0


@pytest.mark.parametrize("method", ["efros_leung", "scanline"])
def test_every_pixel_is_a_copy_of_the_sample_pixel_its_source_names(method):
    sample = colour(14, 15, seed=5)
    synthesise = efros_leung if method == "efros_leung" else scanline_synthesis
    result = synthesise(sample, (18, 20), 5, seed=1, show_progress=False)
    rows, cols = result.source[..., 0], result.source[..., 1]
    assert rows.min() >= 0 and rows.max() < 14 and cols.min() >= 0 and cols.max() < 15
    assert torch.equal(result.images[0], sample[0][:, rows, cols])


def test_seeded_and_reproducible():
    sample = grey(12, 12, seed=6)
    first = efros_leung(sample, 16, 5, seed=3, show_progress=False).images
    assert torch.equal(first, efros_leung(sample, 16, 5, seed=3, show_progress=False).images)
    assert not torch.equal(first, efros_leung(sample, 16, 5, seed=4, show_progress=False).images)
    scan = scanline_synthesis(sample, 16, 5, seed=3, show_progress=False).images
    assert torch.equal(scan, scanline_synthesis(sample, 16, 5, seed=3, show_progress=False).images)


# ---------------------------------------------------------------------------------------------
# Scanline synthesis against a plain loop
# ---------------------------------------------------------------------------------------------


def test_causal_neighbourhood_is_the_rows_above_and_the_pixels_to_the_left():
    assert causal_offsets(3).tolist() == [[-1, -1], [-1, 0], [-1, 1], [0, -1]]
    assert len(causal_offsets(11)) == 5 * 11 + 5


def test_scanline_synthesis_is_the_plain_algorithm():
    sample = colour(7, 8, seed=7, dtype=torch.float64)
    init = colour(9, 10, seed=8, dtype=torch.float64)
    window, r = 3, 1
    texture = sample[0].numpy()
    out = init[0].numpy().copy()
    height, width = out.shape[1:]
    causal = [(-1, -1), (-1, 0), (-1, 1), (0, -1)]
    for i in range(height):
        for j in range(width):
            best, best_error = None, math.inf
            for a in range(7 - window + 1):
                for b in range(8 - window + 1):
                    error = sum(((out[:, (i + du) % height, (j + dv) % width]
                                  - texture[:, a + r + du, b + r + dv]) ** 2).sum() for du, dv in causal)
                    if error < best_error:
                        best, best_error = (a, b), error
            out[:, i, j] = texture[:, best[0] + r, best[1] + r]
    result = scanline_synthesis(sample, (9, 10), window, init=init, show_progress=False)
    assert np.array_equal(result.images[0].numpy(), out)


# ---------------------------------------------------------------------------------------------
# The measures
# ---------------------------------------------------------------------------------------------


def test_nearest_window_distance_is_zero_on_the_sample_and_matches_brute_force():
    sample = colour(8, 9, seed=9)
    assert nearest_window_distance(sample, sample, 3).item() < 1e-3
    image = colour(6, 7, seed=10)
    s, q = sample[0].double(), image[0].double()
    best = []
    for i in range(4):
        for j in range(5):
            best.append(min(((q[:, i:i + 3, j:j + 3] - s[:, a:a + 3, b:b + 3]) ** 2).mean().item()
                            for a in range(6) for b in range(7)))
    expected = np.sqrt(best).mean()
    assert nearest_window_distance(image, sample, 3).item() == pytest.approx(expected, rel=1e-4)
    for q in (0.0, 0.5, 0.95, 1.0):       # numpy's default (linear) quantile, as torch's
        assert nearest_window_distance(image, sample, 3, quantile=q).item() == pytest.approx(
            np.quantile(np.sqrt(best), q), rel=1e-4)
    for wrong in (-0.1, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="quantile must be None or a number from 0 to 1"):
            nearest_window_distance(image, sample, 3, quantile=wrong)


def test_nearest_window_distance_with_a_stride_an_even_window_and_one_sample_per_image():
    images, samples = torch.cat([colour(6, 7, seed=1), colour(6, 7, seed=2)]), torch.cat([colour(5, 6, seed=3),
                                                                                           colour(5, 6, seed=4)])
    k, stride = 4, 2
    expected = []
    for image, sample in zip(images.double().numpy(), samples.double().numpy()):
        nearest = [min(np.sqrt(((image[:, i:i + k, j:j + k] - sample[:, y:y + k, x:x + k]) ** 2).mean())
                       for y in range(5 - k + 1) for x in range(6 - k + 1))
                   for i in range(0, 6 - k + 1, stride) for j in range(0, 7 - k + 1, stride)]
        expected.append(np.mean(nearest))
    measured = nearest_window_distance(images, samples, k, stride=stride).numpy()
    assert np.allclose(measured, expected, atol=1e-5)
    one_for_all = nearest_window_distance(images, samples[:1], k, stride=stride)
    assert one_for_all[0].item() == pytest.approx(measured[0], abs=1e-6)
    with pytest.raises(ValueError, match="window must be an int from 1 to 5"):
        nearest_window_distance(images, samples, 6)
    with pytest.raises(ValueError, match="one sample or one per image"):
        nearest_window_distance(images, torch.cat([samples, samples[:1]]), 3)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        nearest_window_distance(images, samples, 3, stride=0)

def test_random_tiling_pastes_whole_pieces_of_the_sample():
    sample = colour(10, 12, seed=5)
    block, size = 4, 10
    tiled = random_tiling(sample, size, block, seed=3)
    assert tiled.shape == (1, 3, size, size)
    for top in range(0, size, block):
        for left in range(0, size, block):
            piece = tiled[0, :, top:top + block, left:left + block]
            h, w = piece.shape[-2:]
            windows = F.unfold(sample, (h, w))[0].T          # a cut-off piece is a window of its own size
            assert (windows - piece.reshape(1, -1)).abs().amax(1).min() == 0, (top, left)
    assert torch.equal(tiled, random_tiling(sample, size, block, seed=3))
    assert not torch.equal(tiled, random_tiling(sample, size, block, seed=4))
    with pytest.raises(ValueError, match="block must be an int from 1 to 10"):
        random_tiling(sample, size, 11)
    with pytest.raises(ValueError, match="one sample image"):
        random_tiling(torch.cat([sample, sample]), size, block)


def test_histogram_noise_takes_its_pixels_from_the_sample():
    sample = colour(6, 7, seed=13)
    noise = histogram_noise(sample, (9, 8), seed=1)
    rows, cols = noise.source[..., 0], noise.source[..., 1]
    assert noise.images.shape == (1, 3, 9, 8)
    assert torch.equal(noise.images[0], sample[0][:, rows, cols])


def test_source_map_image_colours_rows_red_and_columns_green():
    source = torch.tensor([[[0, 0], [4, 9]], [[2, 3], [4, 0]]])   # (2, 2, 2): pixels copied from a 5x10 sample
    picture = source_map_image(source, (1, 3, 5, 10))
    assert isinstance(picture, torch.Tensor) and picture.shape == (3, 2, 2)      # an image like any other
    expected = [[[0, 0, 0.5], [1, 1, 0.5]], [[0.5, 3 / 9, 0.5], [1, 0, 0.5]]]   # (row, col, colour)
    assert np.allclose(picture.permute(1, 2, 0).numpy(), expected)


def test_texture_samples_are_course_images():
    for name in TEXTURE_CROPS:
        sample = load_texture(name, 32)
        assert sample.shape == (1, 3, 32, 32) and 0 <= sample.min() and sample.max() <= 1
    with pytest.raises(ValueError, match="box"):
        load_texture("astronaut", 32)
    with pytest.raises(ValueError, match="does not fit"):
        load_texture("brick", 32, box=(400, 0, 200))


def test_shuffle_keeps_the_pixels_and_moves_them():
    images = colour(6, 7, seed=12).repeat(2, 1, 1, 1)
    shuffled = shuffle_pixels(images, seed=0)
    for before, after in zip(images, shuffled):
        pixels = sorted(map(tuple, before.flatten(1).T.tolist()))
        assert pixels == sorted(map(tuple, after.flatten(1).T.tolist()))
    assert not torch.equal(images, shuffled)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("synthesise", [efros_leung, scanline_synthesis], ids=["efros_leung", "scanline"])
def test_bad_input_is_a_clear_error(synthesise):
    sample = colour(16, 16)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        synthesise(colour(8, 12), 20, 11)
    with pytest.raises(ValueError, match="odd"):
        synthesise(sample, 20, 4)
    with pytest.raises(TypeError, match="window must be an int >= 3 and odd"):
        synthesise(sample, 20, 5.0)
    with pytest.raises(ValueError, match="smaller than the sample"):
        synthesise(sample, (20, 12), 5)
    with pytest.raises(TypeError, match="size"):
        synthesise(sample, "big", 5)
    with pytest.raises(ValueError, match="4 dimensions"):
        synthesise(sample[0], 20, 5)
    with pytest.raises(ValueError, match="one image"):
        synthesise(sample.repeat(2, 1, 1, 1), 20, 5)
    with pytest.raises(ValueError, match="3 colour channels"):
        synthesise(sample[:, :1], 20, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        synthesise(sample * 255, 20, 5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        synthesise(sample.numpy(), 20, 5)


def test_bad_options_are_clear_errors():
    sample = colour(16, 16)
    with pytest.raises(ValueError, match="mode"):
        efros_leung(sample, 20, 5, mode="fast")
    with pytest.raises(ValueError, match="batch_size"):
        efros_leung(sample, 20, 5, batch_size=0)
    with pytest.raises(ValueError, match="seed_position"):
        efros_leung(sample, 20, 5, seed_position=(14, 0))
    with pytest.raises(ValueError, match="max_error"):
        efros_leung(sample, 20, 5, max_error=0)
    for growth in (1, 0.5, float("nan")):
        with pytest.raises(ValueError, match="threshold_growth must be above 1"):
            efros_leung(sample, 20, 5, threshold_growth=growth)
    with pytest.raises(TypeError, match="threshold_growth must be a number"):
        efros_leung(sample, 20, 5, threshold_growth="1.1")
    with pytest.raises(ValueError, match="init"):
        scanline_synthesis(sample, 20, 5, init=colour(16, 16))
    with pytest.raises(ValueError, match="masks"):
        windowed_ssd(sample, torch.rand(2, 3, 5, 5), torch.ones(2, 3, 3), gaussian_window(5))
