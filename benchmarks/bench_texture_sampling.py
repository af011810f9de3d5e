"""Efros-Leung texture synthesis: SSD as batched correlations against per-pixel loops.

Rows (gravel, 64x64 sample, 11x11 window):
- the batched mode against a per-pixel Python loop that scores every sample window
  with numpy (float32, vectorised over windows: the way the algorithm is usually first
  written), on a 64x64 output; goal: at least 100x;
- the batched mode against the strict one-pixel-at-a-time mode (the same correlations,
  one pixel per conv2d), on a 64x64 output;
- the batched mode on a 128x128 output against the strict mode; goal: the batched
  mode under 2 s on 2 CPU cores.

- the numpy loop against the arithmetic alone: the conv2d calls that score every pixel of a
  64x64 output in full batches of 64, with no bookkeeping; the ceiling of any exact batched mode.

Both the numpy loop and the correlations compute the exact SSD, about
(C + 1) k^2 L = 0.7 M multiply-adds per pixel here (L = 54 * 54 sample windows). The
batched mode does them at matrix-multiply speed and the loop at numpy's element-wise
speed; that ratio, not the Python overhead, bounds the speed-up (the last row).
"""

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.harness import Comparison
from vizlib.texture_sampling import MAX_ERROR, SIGMA_DIVISOR, TOLERANCE, efros_leung, load_texture, stack_sample

WINDOW = 11


def _sample():
    return load_texture("gravel", 64)


def numpy_efros_leung(sample, size, window=WINDOW, seed=0):
    """Efros & Leung (1999) as usually first written: one pixel at a time, numpy over the windows."""
    rng = np.random.default_rng(seed)
    texture = sample[0, 0].cpu().numpy().astype(np.float32)            # grey: one channel
    h, w = texture.shape
    r = window // 2
    windows = np.lib.stride_tricks.sliding_window_view(texture, (window, window)).reshape(-1, window, window).copy()
    centres = windows[:, r, r]
    g = np.exp(-(np.arange(window) - r) ** 2 / (2 * (window / SIGMA_DIVISOR) ** 2))
    gauss = np.outer(g, g).astype(np.float32)
    image = np.zeros((size + 2 * r, size + 2 * r), np.float32)
    filled = np.zeros_like(image, dtype=bool)
    top = r + (size - 3) // 2
    si, sj = rng.integers(h - 2), rng.integers(w - 2)
    image[top:top + 3, top:top + 3] = texture[si:si + 3, sj:sj + 3]
    filled[top:top + 3, top:top + 3] = True
    threshold = MAX_ERROR
    inner = (slice(r, r + size), slice(r, r + size))
    while not filled[inner].all():
        grown = filled.copy()
        for du in (-1, 0, 1):
            for dv in (-1, 0, 1):
                grown |= np.roll(np.roll(filled, du, 0), dv, 1)
        pending = np.argwhere(grown[inner] & ~filled[inner]) + r
        rng.shuffle(pending)
        counts = [filled[i - r:i + r + 1, j - r:j + r + 1].sum() for i, j in pending]
        progress = False
        for i, j in pending[np.argsort(-np.array(counts), kind="stable")]:
            template = image[i - r:i + r + 1, j - r:j + r + 1]
            weight = gauss * filled[i - r:i + r + 1, j - r:j + r + 1]
            ssd = ((windows - template) ** 2 * weight).sum(axis=(1, 2)) / weight.sum()
            near = np.flatnonzero(ssd <= ssd.min() * (1 + TOLERANCE))
            pick = near[rng.integers(len(near))]
            if ssd[pick] < threshold:
                image[i, j] = centres[pick]
                filled[i, j] = True
                progress = True
        if not progress:
            threshold *= 1 + TOLERANCE
    return image[inner]


def _efros_leung(sample, size, mode):
    def run():
        efros_leung(sample, size, WINDOW, mode=mode, seed=0, show_progress=False)

    return run


def scoring_arithmetic(sample, size, batch=64):
    """The conv2d calls of `ssd_terms` for size x size pixels in full batches, and nothing else."""
    stacked = stack_sample(sample[0, :1])[None]          # a grey sample: one channel, as the synthesis uses
    kernels = torch.rand(batch, stacked.shape[1], WINDOW, WINDOW, generator=torch.Generator().manual_seed(0))
    calls = -(-size * size // batch)

    def run():
        for _ in range(calls):
            F.conv2d(stacked, kernels)

    return run


def comparisons():
    sample = _sample()
    batched_64 = ("batched (conv2d)", _efros_leung(sample, 64, "batched"))
    yield Comparison(
        "Efros-Leung 64->64 px, 11x11, numpy per-pixel loop",
        ("numpy loop per pixel", lambda: numpy_efros_leung(sample, 64)),
        batched_64, goal="speed-up >= 100", repeats=1,
    )
    yield Comparison(
        "Efros-Leung 64->64 px, 11x11, strict mode",
        ("strict (one pixel per conv2d)", _efros_leung(sample, 64, "strict")),
        batched_64, goal="report", repeats=1,
    )
    yield Comparison(
        "Efros-Leung 64->128 px, 11x11",
        ("strict (one pixel per conv2d)", _efros_leung(sample, 128, "strict")),
        ("batched (conv2d)", _efros_leung(sample, 128, "batched")),
        goal="batched < 2 s on 2 cores", repeats=1,
    )
    yield Comparison(
        "Efros-Leung 64->64 px, 11x11, arithmetic alone",
        ("numpy loop per pixel", lambda: numpy_efros_leung(sample, 64)),
        ("conv2d calls only, batches of 64", scoring_arithmetic(sample, 64)),
        goal="report (ceiling of the batched mode)", repeats=1,
    )
