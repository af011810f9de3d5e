"""Non-parametric texture synthesis: new texture made of pieces copied from a sample.

No network is involved. A texture is treated as a random field whose every pixel
depends only on a small neighbourhood; to make a new pixel, find the places in the
sample whose neighbourhood looks like the one around the new pixel and copy the pixel
found there.

`scanline_synthesis`  the version of the lecture (Wei & Levoy 2000, single
    resolution): start from noise with the sample's histogram, visit the pixels in
    scanline order, and replace each by the centre of the sample window nearest to its
    causal (already generated) neighbourhood; borders wrap around.
`efros_leung`  Efros & Leung (1999): grow the texture outwards from a 3x3 seed patch,
    filling first the unfilled pixels with the most filled neighbours; each is compared
    to every sample window by a Gaussian-weighted SSD over its known neighbours, and
    copied from a window picked at random among those within (1 + 0.1) of the best.

Speed. The SSD of one template q (known-mask m, Gaussian w) against every window p of
the sample is a correlation:

    sum w m (q - p)^2  =  corr(w m, p^2)  -  2 corr(w m q, p)  +  sum w m q^2

so one `conv2d` scores every window of the sample at once, and a batch of B pending
pixels is B output channels of the same `conv2d`. `mode="strict"` fills one pixel at a
time, exactly the algorithm of the paper; `mode="batched"` (the default) scores up to
`batch_size` pixels of the fill list together. That changes the algorithm in one way:
pixels in one batch do not see each other, each is matched with the neighbourhood as
it was before the batch. To keep that harmless, a batch only holds pixels at least
`spacing` (2) apart, so direct neighbours are never matched blind to each other. With
`batch_size=1, spacing=1` the two modes are the same.

Cost: the SSD is exact, so every pixel costs about 2 (C + 1) k^2 L flops (L sample
windows); batching removes the per-pixel overhead of the strict mode, not this
arithmetic. An approximate nearest-neighbour search would, but it would change the
algorithm.

Images are course images (1, 3, H, W) in [0, 1]. A greyscale sample (three equal
channels, like brick, grass and gravel) is synthesised on one channel and repeated.
Errors are per pixel and per channel (the SSD divided by the total weight of the known
pixels and by the number of channels), so the paper's error threshold 0.3 reads the
same for grey and colour.
"""

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vizlib.arguments import check_batch_size
from vizlib.config import progress
from vizlib.counts import check_int_in_range, check_positive_int
from vizlib.images import check_images, sample_crop

SIGMA_DIVISOR = 6.4          # Gaussian sigma = window / 6.4 (Efros & Leung 1999)
TOLERANCE = 0.1              # candidates: SSD <= best * (1 + TOLERANCE), the paper's epsilon
MAX_ERROR = 0.3              # accept a match only below this error (Efros's pseudocode)
THRESHOLD_GROWTH = 1.1       # ... and raise it by this factor when a pass fills nothing (the same pseudocode)
SEED_SIZE = 3                # Efros-Leung grows from a 3x3 seed patch


@dataclass(frozen=True)
class SynthesisResult:
    """A synthesised texture and where each of its pixels was copied from.

    images:  (1, 3, H, W) in [0, 1]
    source:  (H, W, 2) long, the (row, column) in the sample of the pixel copied there
    threshold_raises: how often the error threshold had to be raised (Efros-Leung only)
    """

    images: torch.Tensor
    source: torch.Tensor
    threshold_raises: int = 0


# Square crops (top, left, side) of the offline images that make good texture samples.
TEXTURE_CROPS = {
    "brick": (0, 0, 256),                       # greyscale, regular
    "grass": (0, 0, 96),                        # greyscale, stochastic
    "gravel": (0, 0, 96),                       # greyscale, stochastic
    "immunohistochemistry": (320, 270, 96),     # colour: stained cells and nuclei
}


def load_texture(name, size=64, box=None):
    """A texture sample (1, 3, size, size): a square crop `box` = (top, left, side) of an
    offline image (default `TEXTURE_CROPS[name]`), resized to size x size."""
    if box is None:
        if name not in TEXTURE_CROPS:
            raise ValueError(f"no default crop for {name!r}; pass box=(top, left, side) or use one of "
                             f"{', '.join(TEXTURE_CROPS)}")
        box = TEXTURE_CROPS[name]
    return sample_crop(name, size, box)


# ----------------------------------------------------------------------------- checks


def _check_window(window):
    check_int_in_range(window, "window", 3, context=" and odd")
    if window % 2 == 0:
        raise ValueError(f"window must be an odd int >= 3 (the window needs a centre pixel), got {window}")


def _check_size(size, sample_shape):
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)):
        raise TypeError(f"size must be an int or a pair of ints (H, W), got {size!r}")
    height, width = size
    if height < sample_shape[0] or width < sample_shape[1]:
        raise ValueError(
            f"output size {tuple(size)} is smaller than the sample {tuple(sample_shape)}: synthesis "
            f"makes more texture; to get a smaller piece, crop the sample (need H >= {sample_shape[0]}, "
            f"W >= {sample_shape[1]})"
        )
    return int(height), int(width)


def _prepare(sample, window, name="sample"):
    """A course image (1, 3, h, w) -> (C, h, w), with C = 1 for a grey sample (three equal channels)."""
    check_images(sample, name=name)
    if sample.shape[0] != 1:
        raise ValueError(f"{name}: expected one image (1, 3, h, w), got a batch of {sample.shape[0]}")
    _check_window(window)
    h, w = sample.shape[-2:]
    if h < window or w < window:
        raise ValueError(
            f"{name} of size {h}x{w} is smaller than the {window}x{window} window: the sample must "
            f"hold at least one whole window (use a window <= {min(h, w) if min(h, w) % 2 else min(h, w) - 1}"
            " or a larger sample)"
        )
    grey = bool(torch.equal(sample[0, 0], sample[0, 1]) and torch.equal(sample[0, 0], sample[0, 2]))
    return (sample[0, :1] if grey else sample[0]).contiguous()


def _as_course_image(channels):
    """(C, H, W) with C in (1, 3) -> (1, 3, H, W)."""
    return channels.expand(3, -1, -1).unsqueeze(0).clamp(0, 1).contiguous()


def gaussian_window(window, sigma=None, *, dtype=torch.float32, device=None):
    """The (window, window) Gaussian weights of Efros & Leung, sigma = window / 6.4, peak 1."""
    _check_window(window)
    sigma = window / SIGMA_DIVISOR if sigma is None else float(sigma)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    offsets = torch.arange(window, dtype=dtype, device=device) - window // 2
    g = torch.exp(-offsets.pow(2) / (2 * sigma ** 2))
    return g[:, None] * g[None, :]


# ------------------------------------------------------------------ the heart: SSD and pick


def ssd_terms(stacked, templates, masks, weights):
    """The two parts of the windowed SSD: (window-dependent part (B, h', w'), constant (B,)).

    stacked:   (C + 1, h, w), the sample's channels p and then sum_c p^2 (`stack_sample`)
    templates: (B, C, k, k), masks (B, k, k) (1 = known), weights (k, k)
    With W = weights * mask / (C * sum(weights * mask)) and q the template,

        SSD[b, i, j] = [corr(W, sum_c p^2) - 2 corr(W q, p)][b, i, j]  +  sum W q^2

    the first part is one conv2d of `stacked` (B output channels), the second a number
    per template.
    """
    channels = stacked.shape[0] - 1
    # BEGIN SOLUTION
    known = weights * masks.to(weights.dtype)                                  # W = w * m
    known = known / (known.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12) * channels)
    kernels = torch.cat([-2 * known[:, None] * templates, known[:, None]], dim=1)
    varying = F.conv2d(stacked[None], kernels)[0]                               # all windows at once
    constant = (known[:, None] * templates.pow(2)).sum(dim=(1, 2, 3))          # sum W q^2
    # END SOLUTION
    return varying, constant


def stack_sample(sample):
    """(C, h, w) -> (C + 1, h, w): the channels, then the sum of their squares (the inputs of `ssd_terms`)."""
    return torch.cat([sample, sample.pow(2).sum(0, keepdim=True)])


def windowed_ssd(sample, templates, masks, weights):
    """Normalised, weighted SSD of each template against every window of the sample.

    sample:    (C, h, w) or a course image (1, C, h, w)
    templates: (B, C, k, k) neighbourhoods of B pixels; unknown entries may hold anything
    masks:     (B, k, k), 1 where the template is known, 0 elsewhere
    weights:   (k, k), e.g. `gaussian_window(k)`
    returns    (B, h - k + 1, w - k + 1): for template b and the window at (i, j),

        sum_{u,v,c} W (q[c,u,v] - p[c,i+u,j+v])^2 / (C * sum_{u,v} W),   W = weights * masks[b]

    computed for all windows at once as correlations (`ssd_terms`: one conv2d, B output
    channels). A template with no known pixel scores 0 everywhere.
    """
    if sample.dim() == 4:
        sample = sample[0]
    if templates.dim() != 4 or templates.shape[1] != sample.shape[0]:
        raise ValueError(f"templates must be (B, {sample.shape[0]}, k, k), got {tuple(templates.shape)}")
    k = templates.shape[-1]
    if masks.shape != (templates.shape[0], k, k) or weights.shape != (k, k):
        raise ValueError(
            f"masks must be (B, k, k) = {(templates.shape[0], k, k)} and weights (k, k), got "
            f"{tuple(masks.shape)} and {tuple(weights.shape)}"
        )
    if sample.shape[-2] < k or sample.shape[-1] < k:
        raise ValueError(f"the sample {tuple(sample.shape[-2:])} is smaller than the {k}x{k} window")
    varying, constant = ssd_terms(stack_sample(sample), templates, masks, weights)
    return (varying + constant[:, None, None]).clamp_min(0)


def pick_windows(ssd, *, offset=None, tolerance=TOLERANCE, generator=None, random=True):
    """Pick one window per row of `ssd` (B, ...): uniformly among those within (1 + tolerance) of the best.

    `offset` (B,), if given, is added to every row first (so `ssd` may be the
    window-dependent part of `ssd_terms` and `offset` its constant). With
    `random=False` the best window is taken, the lowest index on ties.
    Returns (index into the flattened windows (B,), its error (B,)).
    """
    flat = ssd.flatten(1)
    if offset is None:
        offset = torch.zeros(len(flat), dtype=flat.dtype, device=flat.device)
    # BEGIN SOLUTION
    if random:
        best = (flat.amin(dim=1) + offset).clamp_min(0)                          # the best error per row
        slack = 8 * torch.finfo(flat.dtype).eps                                  # rounding of the correlations
        limit = best * (1 + tolerance) + slack - offset
        rows, columns = (flat <= limit[:, None]).nonzero(as_tuple=True)          # the near-best, row by row
        counts = torch.bincount(rows, minlength=len(flat))
        first = counts.cumsum(0) - counts
        draws = torch.rand(len(flat), generator=generator, dtype=torch.float64).to(flat.device)
        index = columns[first + (draws * counts).long().clamp_max(counts - 1)]   # uniform among them
    else:
        index = flat.argmin(dim=1)
    # END SOLUTION
    return index, (flat.gather(1, index[:, None])[:, 0] + offset).clamp_min(0)


# --------------------------------------------------------------------------- Efros-Leung


def _fill_order(filled, window, generator, random):
    """Unfilled pixels with a filled 8-neighbour, most filled window-neighbours first.

    `filled` is the (H, W) bool map of the output. Ties are broken at random
    (random=True) or by scanline position (random=False). Returns (rows, cols).
    """
    height, width = filled.shape
    r = window // 2
    padded = F.pad(filled, (r + 1, r, r + 1, r))                     # one more row/column in front
    touching = torch.zeros_like(filled)
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            touching |= padded[r + 1 + du:r + 1 + du + height, r + 1 + dv:r + 1 + dv + width]
    pending = (touching & ~filled).flatten().nonzero()[:, 0]
    # known pixels in each pixel's window, from an integral image
    integral = padded.to(torch.int32).cumsum(0).cumsum(1)
    counts = (integral[window:, window:] - integral[:-window, window:]
              - integral[window:, :-window] + integral[:-window, :-window]).flatten()[pending]
    if random:
        shuffle = torch.randperm(len(pending), generator=generator).to(pending.device)
        pending, counts = pending[shuffle], counts[shuffle]
    pending = pending[torch.sort(-counts, stable=True).indices]
    return pending // width, pending % width


def _batches(rows, cols, batch_size, spacing):
    """Cut the fill list into batches, in list order; with spacing s > 1, only pixels with the
    same (row mod s, column mod s) share a batch, so no two of them are closer than s."""
    if spacing > 1:
        group = (rows % spacing) * spacing + cols % spacing
        order = torch.sort(group, stable=True).indices
        sizes = torch.bincount(group, minlength=spacing * spacing).tolist()
        parts = zip(rows[order].split(sizes), cols[order].split(sizes))
    else:
        parts = [(rows, cols)]
    for part_rows, part_cols in parts:
        for start in range(0, len(part_rows), batch_size):
            yield part_rows[start:start + batch_size], part_cols[start:start + batch_size]


def efros_leung(sample, size, window=11, *, mode="batched", batch_size=64, spacing=2, random=True,
                tolerance=TOLERANCE, max_error=MAX_ERROR, threshold_growth=THRESHOLD_GROWTH, seed=0,
                seed_position=None, show_progress=None):
    """Grow a texture of `size` (int or (H, W)) from `sample` (1, 3, h, w) (Efros & Leung 1999).

    A 3x3 patch of the sample (at `seed_position` (row, col), else at random) is put
    in the middle of the output. Then, pass after pass: list the unfilled pixels
    touching filled ones, most filled neighbours (in the window) first; for each,
    score its known neighbourhood against every sample window (`windowed_ssd`, Gaussian
    sigma = window / 6.4), pick a window among those within (1 + tolerance) of the best
    (`pick_windows`) and copy its centre, if its error is below `max_error`. A pass
    that fills nothing multiplies the threshold by `threshold_growth` (> 1, so the
    threshold passes every error in the end and the loop ends): epsilon = 0.1 is the
    paper's (section 2.1); the threshold 0.3 and the growth 1.1 are from Efros's pseudocode.

    mode="strict": one pixel at a time, each seeing every pixel filled before it:
    exactly the algorithm of the paper.
    mode="batched": the fill list of a pass is cut into batches of up to `batch_size`
    pixels, which are matched together (one conv2d) and do not see each other. With
    `spacing` s > 1 a batch only holds pixels with the same (row mod s, column mod s),
    so pixels next to each other are never in one batch; that keeps the seams that
    independent neighbours would make out of the texture. batch_size=1 with
    spacing=1 is the strict mode.
    random=False: no randomness at all: the best window (lowest index on ties), ties in
    the fill order broken by scanline position; `seed_position` then defaults to (0, 0).
    Returns a SynthesisResult (images (1, 3, H, W), source (H, W, 2), threshold_raises).
    """
    if mode not in ("batched", "strict"):
        raise ValueError(f"mode must be 'batched' or 'strict', got {mode!r}")
    check_batch_size(batch_size)
    check_positive_int(spacing, "spacing")
    if not tolerance >= 0 or not max_error > 0:
        raise ValueError(f"tolerance must be >= 0 and max_error > 0, got {tolerance} and {max_error}")
    if isinstance(threshold_growth, bool) or not isinstance(threshold_growth, numbers.Real):
        raise TypeError(f"threshold_growth must be a number above 1, got {threshold_growth!r}")
    if not threshold_growth > 1:
        raise ValueError(f"threshold_growth must be above 1 (else a pass that fills nothing repeats forever), "
                         f"got {threshold_growth}")
    texture = _prepare(sample, window)
    height, width = _check_size(size, texture.shape[-2:])
    if mode == "strict":
        batch_size, spacing = 1, 1
    device, dtype = texture.device, texture.dtype
    channels, (h, w), r = texture.shape[0], texture.shape[-2:], window // 2
    generator = torch.Generator().manual_seed(seed)

    if seed_position is None:
        seed_position = (0, 0) if not random else (
            int(torch.randint(h - SEED_SIZE + 1, (1,), generator=generator)),
            int(torch.randint(w - SEED_SIZE + 1, (1,), generator=generator)),
        )
    si, sj = seed_position
    if not (0 <= si <= h - SEED_SIZE and 0 <= sj <= w - SEED_SIZE):
        raise ValueError(f"seed_position must lie in [0, {h - SEED_SIZE}] x [0, {w - SEED_SIZE}], got {seed_position}")

    # The output, padded by r on every side (never filled there) so that every window is
    # whole, kept flat: pixel (i, j) of the output is entry (i + r) * padded_width + j + r.
    padded_width = width + 2 * r
    image = torch.zeros(channels, height + 2 * r, padded_width, dtype=dtype, device=device)
    filled = torch.zeros(height + 2 * r, padded_width, dtype=torch.bool, device=device)
    source = torch.full((height, width), -1, dtype=torch.long, device=device)   # flat index into the sample
    top, left = (height - SEED_SIZE) // 2, (width - SEED_SIZE) // 2
    seed_box = (slice(r + top, r + top + SEED_SIZE), slice(r + left, r + left + SEED_SIZE))
    image[(slice(None),) + seed_box] = texture[:, si:si + SEED_SIZE, sj:sj + SEED_SIZE]
    filled[seed_box] = True
    flat_sample = torch.arange(h * w, device=device).view(h, w)
    source[top:top + SEED_SIZE, left:left + SEED_SIZE] = flat_sample[si:si + SEED_SIZE, sj:sj + SEED_SIZE]
    inner = filled[r:r + height, r:r + width]                 # a view: the output without its padding
    image, filled, texture_flat = image.view(channels, -1), filled.view(-1), texture.reshape(channels, -1)

    stacked = stack_sample(texture)
    weights = gaussian_window(window, dtype=dtype, device=device)
    window_offsets = (torch.arange(window, device=device)[:, None] * padded_width
                      + torch.arange(window, device=device)).flatten()        # window entries, flat
    windows_per_row = w - window + 1
    threshold, raises = float(max_error), 0
    bar = progress(total=height * width, desc=f"Efros-Leung ({mode})", enabled=show_progress)
    bar.update(SEED_SIZE * SEED_SIZE)
    while not bool(inner.all()):
        filled_this_pass = 0
        for rows, cols in _batches(*_fill_order(inner, window, generator, random), batch_size, spacing):
            corner = rows * padded_width + cols                              # top-left of each window
            neighbourhood = corner[:, None] + window_offsets                  # (B, k*k)
            templates = image[:, neighbourhood].view(channels, -1, window, window).transpose(0, 1)
            masks = filled[neighbourhood].view(-1, window, window)
            varying, constant = ssd_terms(stacked, templates, masks, weights)
            index, error = pick_windows(varying, offset=constant, tolerance=tolerance,
                                        generator=generator, random=random)
            accept = error < threshold
            if not bool(accept.all()):
                if not bool(accept.any()):
                    continue
                rows, cols, corner, index = rows[accept], cols[accept], corner[accept], index[accept]
            copied = (index // windows_per_row + r) * w + index % windows_per_row + r
            centre = corner + r * padded_width + r
            image[:, centre] = texture_flat[:, copied]
            filled[centre] = True
            source[rows, cols] = copied
            filled_this_pass += len(rows)
            bar.update(len(rows))
        if filled_this_pass == 0:
            threshold *= threshold_growth
            raises += 1
    bar.close()
    result = image.view(channels, height + 2 * r, padded_width)[:, r:r + height, r:r + width]
    return SynthesisResult(_as_course_image(result), torch.stack([source // w, source % w], dim=-1), raises)


# ------------------------------------------------------------------------------ scanline


def causal_offsets(window):
    """(row, col) offsets of the causal neighbourhood: the r rows above, and r pixels to the left."""
    _check_window(window)
    r = window // 2
    above = [(du, dv) for du in range(-r, 0) for dv in range(-r, r + 1)]
    return torch.tensor(above + [(0, dv) for dv in range(-r, 0)], dtype=torch.long)


def histogram_noise(sample, size, seed=0):
    """Noise with the sample's histogram: pixels of `sample` (1, 3, h, w) put at random places.

    Returns a SynthesisResult (images (1, 3, H, W), source (H, W, 2)); the start of `scanline_synthesis`.
    """
    check_images(sample, name="sample")
    if sample.shape[0] != 1:
        raise ValueError(f"sample: expected one image (1, 3, h, w), got a batch of {sample.shape[0]}")
    height, width = _check_size(size, (1, 1))
    h, w = sample.shape[-2:]
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(h * w, (height * width,), generator=generator).to(sample.device)
    image = sample[0].flatten(1)[:, picks].view(1, 3, height, width)
    return SynthesisResult(image.contiguous(), torch.stack([picks // w, picks % w], dim=-1).view(height, width, 2))


def scanline_synthesis(sample, size, window=11, *, seed=0, init=None, show_progress=None):
    """Texture by scanline nearest-neighbour copying (Wei & Levoy 2000, one resolution).

    The output starts as noise with the sample's histogram (pixels of the sample put
    at random places), or as `init` (1, 3, H, W). Pixels are then visited row by row,
    left to right; each one's causal neighbourhood (`causal_offsets`: the pixels above
    it and to its left within the window, wrapping around the borders) is compared
    (plain SSD) with the same L-shaped part of every sample window, and the centre of
    the nearest window is copied (lowest index on ties). The first rows see noise
    through the wrap-around, which is why they look worse.
    Returns a SynthesisResult (images (1, 3, H, W), source (H, W, 2)).
    """
    texture = _prepare(sample, window)
    height, width = _check_size(size, texture.shape[-2:])
    device = texture.device
    channels, w, r = texture.shape[0], texture.shape[-1], window // 2
    if init is not None:
        check_images(init, name="init")
        if tuple(init.shape) != (1, 3, height, width):
            raise ValueError(f"init must have shape (1, 3, {height}, {width}), got {tuple(init.shape)}")

    offsets = causal_offsets(window).to(device)
    # the causal part of every sample window, (L, C * n): rows = windows in scanline order
    patches = F.unfold(texture[None], window)[0].view(channels, window, window, -1)
    patches = patches[:, offsets[:, 0] + r, offsets[:, 1] + r].permute(2, 0, 1).reshape(-1, channels * len(offsets))
    patch_norms = patches.pow(2).sum(1)
    windows_per_row = w - window + 1

    if init is None:
        init = histogram_noise(sample, (height, width), seed=seed).images
    output = init[0, :channels].to(device=device, dtype=texture.dtype).flatten(1).clone()   # (C, H*W)
    # flat indices of every pixel's causal neighbours, wrapping around the borders
    ii = torch.arange(height, device=device)[:, None, None]
    jj = torch.arange(width, device=device)[None, :, None]
    neighbours = ((ii + offsets[:, 0]) % height) * width + (jj + offsets[:, 1]) % width   # (H, W, n)
    neighbours = neighbours.reshape(height * width, -1)

    texture_flat = texture.reshape(channels, -1)
    copied = []
    for i in progress(range(height), desc="scanline", enabled=show_progress):
        for j in range(width):
            pixel = i * width + j
            # BEGIN SOLUTION
            query = output[:, neighbours[pixel]].reshape(-1)                 # the causal neighbourhood
            best = int(torch.addmv(patch_norms, patches, query, alpha=-2).argmin())   # |p|^2 - 2 p.q
            centre = (best // windows_per_row + r) * w + best % windows_per_row + r
            output[:, pixel] = texture_flat[:, centre]
            # END SOLUTION
            copied.append(centre)
    copied = torch.tensor(copied, dtype=torch.long, device=device)
    source = torch.stack([copied // w, copied % w], dim=-1)
    image = output.view(channels, height, width)
    return SynthesisResult(_as_course_image(image), source.view(height, width, 2))


# ------------------------------------------------------------------------------ measures


def shuffle_pixels(images, seed=0):
    """The same pixels in random places: the same colour histogram, no structure left."""
    check_images(images)
    n, c, h, w = images.shape
    generator = torch.Generator().manual_seed(seed)
    flat = images.flatten(2)
    order = torch.stack([torch.randperm(h * w, generator=generator) for _ in range(n)]).to(images.device)
    return flat.gather(2, order[:, None].expand(n, c, h * w)).view(n, c, h, w)


def random_tiling(sample, size, block, seed=0):
    """A copy of the sample, not a synthesis: `size` x `size` pixels of `block` x `block` pieces of
    `sample` (1, 3, h, w), each cut at a random place and pasted side by side with no matching.

    The strongest simple baseline of a texture's local statistics: inside a piece every window
    occurs in the sample; only the seams between pieces are new. Returns (1, 3, size, size).
    """
    check_images(sample, name="sample")
    if len(sample) != 1:
        raise ValueError(f"give one sample image (1, 3, h, w), got {len(sample)}")
    check_positive_int(size, "size")
    smallest = min(sample.shape[-2:])
    check_int_in_range(block, "block", 1, smallest, context=" (the sample's smallest side)")
    generator = torch.Generator().manual_seed(seed)
    h, w = sample.shape[-2:]
    tiled = sample.new_empty(1, sample.shape[1], size, size)
    for top in range(0, size, block):
        for left in range(0, size, block):
            row = torch.randint(h - block + 1, (), generator=generator).item()
            col = torch.randint(w - block + 1, (), generator=generator).item()
            piece = sample[0, :, row:row + block, col:col + block]
            tiled[0, :, top:top + block, left:left + block] = piece[:, :size - top, :size - left]
    return tiled


def nearest_window_distance(images, sample, window=3, *, stride=1, quantile=None, chunk=512):
    """Per image, the mean over its window x window windows of the RMS distance to the nearest sample window.

    The images' windows are taken every `stride` pixels; every window of the sample
    (stride 1) is a candidate. `sample` is one image (1, 3, h, w) for all, or one per
    image. 0 means every window of the image occurs somewhere in the sample; an image of
    shuffled pixels is far from every window. With `quantile` (0 to 1) the windows'
    distances are summarised by that quantile instead of the mean: 0.95 reads the worst
    windows, such as the seams between copied pieces. Returns a (N,) tensor.
    """
    check_images(images)
    check_images(sample, name="sample")
    if len(sample) not in (1, len(images)):
        raise ValueError(f"give one sample or one per image ({len(images)}), got {len(sample)}")
    smallest = min(*images.shape[-2:], *sample.shape[-2:])
    check_int_in_range(window, "window", 1, smallest, context=" (the smallest image side)")
    check_positive_int(stride, "stride")
    if quantile is not None and (isinstance(quantile, bool) or not isinstance(quantile, numbers.Real)
                                 or not 0 <= quantile <= 1):
        raise ValueError(f"quantile must be None or a number from 0 to 1, got {quantile!r}")
    distances = []
    with torch.no_grad():
        references = [F.unfold(one[None], window)[0] for one in sample]           # (3 k k, L) each
        for i, image in enumerate(images):
            keys = references[i if len(sample) > 1 else 0]
            key_norms = keys.pow(2).sum(0)
            queries = F.unfold(image[None], window, stride=stride)[0].T          # (M, 3 k k)
            nearest = torch.cat([      # |q - p|^2 = |q|^2 - 2 q.p + |p|^2, smallest over the sample's p
                torch.addmm(key_norms, q, keys, alpha=-2).amin(dim=1) + q.pow(2).sum(1)
                for q in queries.split(chunk)
            ])
            rms = (nearest.clamp_min(0) / keys.shape[0]).sqrt()
            distances.append(rms.mean() if quantile is None else rms.quantile(quantile))
    return torch.stack(distances)


def source_map_image(source, sample_shape):
    """Where each output pixel came from, as an image (3, H, W): row -> red, column -> green.

    Smooth patches of colour are pieces of the sample copied whole; a speckled map is a
    texture assembled pixel by pixel.
    """
    h, w = sample_shape[-2:]
    rows = source[..., 0].float() / max(h - 1, 1)
    cols = source[..., 1].float() / max(w - 1, 1)
    return torch.stack([rows, cols, 0.5 * torch.ones_like(rows)]).clamp(0, 1).cpu()
