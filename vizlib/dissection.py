"""Network dissection (Bau et al. 2017): what a unit detects, measured against labelled concept masks.

For every unit (channel) k of a layer:

1. **threshold**: T_k, the activation that only the top `quantile` of the unit's values over the
   whole dataset exceed (Bau et al.: 0.005, the top half percent), every position of every image;
2. **region**: the unit's activation map, upsampled bilinearly to the masks' resolution, where it
   exceeds T_k;
3. **IoU** with each concept c over the dataset:
   IoU(k, c) = sum_images |region_k AND L_c| / sum_images |region_k OR L_c|;
4. the unit **detects** its concept of highest IoU if that IoU exceeds `iou_threshold` (Bau et al.:
   0.04), a number fixed before anything is counted.

Two passes stream the images through the network in batches; between batches only small tallies
are kept, so memory does not grow with the dataset beyond pass 1's top values (below):

- pass 1 (`activation_thresholds`) keeps, per unit, its largest values so far: the top
  floor((n - 1) * quantile) + 2 of its n values are all that numpy's linear-interpolation quantile
  reads, so T_k is **exact**, not a sketch. That is `quantile` of all values (0.5% for Bau's
  setting); above `max_kept` values per layer, a seeded uniform sample of positions is kept
  instead, and the quantile is exact on that sample (its rank error then has standard deviation
  sqrt(q (1 - q) / n_sampled); the result records n_sampled);
- pass 2 (`dissect_layers`) counts |region_k AND L_c|, |region_k| and |L_c| per batch. Bilinear
  weights are non-negative and sum to one, so an upsampled map never exceeds its largest value:
  only the maps that reach T_k are upsampled. Each region pixel is counted once, under the
  combination of concepts it shows (`Concepts` numbers them): one `bincount` over
  (unit, combination) per chunk.

Concepts come as Broden does them (Bau et al.'s dataset): per image, one label map per *kind* of
concept, each pixel carrying at most one concept of each kind (`Concepts`). `course_concepts` builds
them from the course dataset: the shape class (the object's mask), the object's colour (its mask,
binned by hue) and the background photograph (everything but the object).
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from vizlib.arguments import DEFAULT_BATCH_SIZE, check_batch_size
from vizlib.config import progress
from vizlib.counts import check_index, check_positive_int
from vizlib.course_data import CLASSES
from vizlib.hooks import layer_features
from vizlib.wrapper import checks_inputs, get_layer

QUANTILE = 0.005            # Bau et al. 2017: the top 0.5% of a unit's activations
IOU_THRESHOLD = 0.04        # Bau et al. 2017: a unit detects a concept above this IoU
MAX_KEPT = 2**22            # pass 1 keeps at most this many top values per layer (16 MB in float32)
KINDS = ("shape", "colour", "background")
# The six hue sextants of the colour wheel, each centred on its name's hue (red at 0 degrees).
COLOUR_NAMES = ("red", "yellow", "green", "cyan", "blue", "magenta")

__all__ = [
    "QUANTILE", "IOU_THRESHOLD", "KINDS", "COLOUR_NAMES",
    "Concepts", "colour_bins", "course_concepts",
    "activation_thresholds", "DissectionResult", "dissect", "dissect_layers", "unit_regions",
    "DetectorExamples", "detector_examples", "show_detector_counts", "show_detectors",
]


# ---------------------------------------------------------------------------------------------
# Concepts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Concepts:
    """Labelled concept masks, one label map per kind of concept, as Broden stores them.

    labels (N, S, h, w): for image i and kind s, each pixel holds the index (into `names`) of the
    concept of that kind it shows, or -1. Kinds are groups such as shape, colour, background;
    within a kind concepts do not overlap, across kinds they may (a pixel is "star" and "red"); a concept
    belongs to one kind and appears in that kind's map only.
    The masks may be smaller than the images (activation maps are upsampled to them), but they
    must have the images' aspect ratio.
    """

    names: tuple        # C concept names, unique
    kinds: tuple        # the kind of each concept
    labels: torch.Tensor
    # Derived once from the labels, for every dissection of them: each pixel's concepts (one per kind, or
    # none) as an index into the distinct combinations that occur, and which concepts each combination holds.
    pixel_combinations: torch.Tensor = field(init=False, repr=False, compare=False)   # (N, h*w) int32
    combination_concepts: torch.Tensor = field(init=False, repr=False, compare=False)  # (T, C) 0/1
    combination_areas: torch.Tensor = field(init=False, repr=False, compare=False)     # (T,) pixels of each

    def __post_init__(self):
        if len(self.names) != len(self.kinds) or len(set(self.names)) != len(self.names) or not self.names:
            raise ValueError("give one kind per concept and unique concept names")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dim() != 4:
            shape = tuple(self.labels.shape) if isinstance(self.labels, torch.Tensor) else type(self.labels).__name__
            raise ValueError(f"concept labels must be a tensor (N, S, h, w): per image, one label map per kind, "
                             f"got {shape}")
        if self.labels.shape[1] == 0:
            raise ValueError("concept labels need at least one label map per image (N, S, h, w) with S >= 1")
        if self.labels.is_floating_point() or self.labels.dtype == torch.bool:
            raise TypeError(f"concept labels must be integer concept indices (-1: none), got {self.labels.dtype}")
        if self.labels.numel() and not (-1 <= self.labels.min() and self.labels.max() < len(self.names)):
            raise ValueError(f"concept labels must lie between -1 (none) and {len(self.names) - 1}, got "
                             f"{self.labels.min().item()} to {self.labels.max().item()}")
        pixel_combinations, combinations = _combinations(self.labels, len(self.names))
        found = [set(combinations[:, s].tolist()) - {-1} for s in range(combinations.shape[1])]
        shared = [self.names[c] for s, mine in enumerate(found) for other in found[s + 1:] for c in mine & other]
        if shared:
            raise ValueError(f"a concept appears in more than one label map: {sorted(set(shared))}; each kind of "
                             "concept has its own map")
        members = torch.zeros(len(combinations), len(self.names), dtype=torch.float64, device=combinations.device)
        row, kind = (combinations >= 0).nonzero(as_tuple=True)
        members[row, combinations[row, kind]] = 1
        object.__setattr__(self, "pixel_combinations", pixel_combinations)
        object.__setattr__(self, "combination_concepts", members)
        object.__setattr__(self, "combination_areas", torch.bincount(pixel_combinations.flatten().long(),
                                                                     minlength=len(combinations)))

    @property
    def size(self):
        return tuple(self.labels.shape[-2:])

    def areas(self):
        """(C,) how many labelled pixels each concept has over the dataset."""
        return self.combination_areas.double() @ self.combination_concepts

    def check_images(self, images):
        """A clear error unless the concept masks belong to these images (same number, same aspect ratio)."""
        n, height, width = len(images), *images.shape[-2:]
        h, w = self.size
        if len(self.labels) != n or h * width != w * height:
            raise ValueError(f"the concept masks {tuple(self.labels.shape)} do not match the images "
                             f"{tuple(images.shape)}: give one set of label maps per image, at the images' "
                             "aspect ratio (any resolution)")


def _combinations(labels, n_concepts):
    """Each pixel's concepts, one per kind (labels (N, S, h, w)), as one number: an index into the distinct
    combinations that occur. Returns that index (N, h*w) int32 and the combinations (T, S), -1: none."""
    base, kinds = n_concepts + 1, labels.shape[1]
    if base ** kinds >= 2**63:
        raise ValueError(f"{n_concepts} concepts in {kinds} kinds are too many to number their combinations")
    key = torch.zeros(labels.shape[0], labels.shape[2] * labels.shape[3], dtype=torch.long, device=labels.device)
    for s in reversed(range(kinds)):                    # the labels + 1 as the digits of a number in base C + 1
        key = key * base + labels[:, s].flatten(1).long() + 1
    if base ** kinds <= 2**24:                          # a table over every possible number: no sort
        present = torch.bincount(key.flatten(), minlength=base ** kinds) > 0
        numbers, index = present.nonzero().flatten(), (present.cumsum(0) - 1)[key]
    else:
        numbers, index = torch.unique(key, return_inverse=True)
    digits = torch.stack([numbers // base ** s % base for s in range(kinds)], dim=1)
    return index.to(torch.int32), digits - 1


def colour_bins(colours):
    """Hue sextant of each RGB colour (n, 3) in [0, 1]: an index into COLOUR_NAMES."""
    from matplotlib.colors import rgb_to_hsv

    hue = rgb_to_hsv(np.asarray(torch.as_tensor(colours, dtype=torch.float64).clamp(0, 1)))[:, 0]
    return torch.from_numpy(np.floor(hue * 6 + 0.5).astype(np.int64) % 6)


def course_concepts(rendered, size=None):
    """The concepts of course data (`vizlib.course_data.render_shapes`): 8 shapes, 6 colours, the photographs.

    - shape c: the object's mask in images of class c;
    - colour: the object's mask, by the hue sextant of the colour the renderer gave it;
    - background p: every pixel but the object's, in images whose clutter was cut from photograph p.
    size: the masks' resolution (default: the images'), resized by nearest neighbour.
    """
    masks = rendered.masks
    if size is not None:
        masks = F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0].bool()
    shapes = len(CLASSES)
    colours = shapes + len(COLOUR_NAMES)
    none = torch.tensor(-1, dtype=torch.int16)
    per_image = torch.stack([
        rendered.labels,
        shapes + colour_bins(rendered.colours),
        colours + rendered.backgrounds,
    ], dim=1).to(torch.int16)[..., None, None]                             # (N, 3, 1, 1)
    on_object = torch.stack([masks, masks, ~masks], dim=1)                   # (N, 3, h, w)
    labels = torch.where(on_object, per_image, none)
    names = CLASSES + COLOUR_NAMES + tuple(rendered.background_names)
    kinds = ("shape",) * shapes + ("colour",) * len(COLOUR_NAMES) + ("background",) * len(rendered.background_names)
    return Concepts(names, kinds, labels)


# ---------------------------------------------------------------------------------------------
# Pass 1: thresholds
# ---------------------------------------------------------------------------------------------


def _check_fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number between 0 and 1, got {value!r}")
    if not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def _layer_maps(model, images, names):
    """{name: (B, K, h, w)} for one batch, the forward pass ending after the deepest of them."""
    features = layer_features(model, images, names)
    for name, maps in features.items():
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4:
            raise ValueError(f"layer {name!r} gives {tuple(getattr(maps, 'shape', ()))}, not activation maps "
                             "(N, K, h, w): dissect convolutional layers")
    return features


def _top_count(n, quantile):
    """How many of n values, from the top, numpy's linear quantile at 1 - quantile reads (at most n)."""
    below = math.floor((n - 1) * (1 - quantile))      # the lower of the two order statistics it interpolates
    return min(n, n - below + 1)


def _quantile_from_top(top, n, quantile):
    """numpy's linear-interpolation quantile at 1 - quantile of n values, from their largest (K, k), sorted down."""
    position = (n - 1) * (1 - quantile)
    below = math.floor(position)
    lower = top[:, n - 1 - below].double()                       # the order statistic number `below`, from the bottom
    upper = top[:, max(n - 2 - below, 0)].double()               # the next one up
    return lower + (position - below) * (upper - lower)


class _TopValues:
    """The running top values of every unit of one layer, from a seeded sample of positions (all when they fit)."""

    def __init__(self, n_images, quantile, max_kept, seed):
        self.n_images, self.quantile, self.max_kept, self.seed = n_images, quantile, max_kept, seed
        self.top = None

    def start(self, maps):
        units, positions = maps.shape[1], maps.shape[2] * maps.shape[3]
        self.positions = positions
        self.n_values = self.n_images * positions
        needed = _top_count(self.n_values, self.quantile) * units
        self.rate = min(1.0, self.max_kept / needed)
        self.generator = torch.Generator().manual_seed(self.seed)
        # positions sampled per image; the same count in every image, so n is known before the stream
        self.per_image = positions if self.rate == 1.0 else max(1, math.floor(self.rate * positions))
        self.n_sampled = self.n_images * self.per_image
        self.k = _top_count(self.n_sampled, self.quantile)
        self.top = maps.new_empty(units, 0)

    def add(self, maps):
        if self.top is None:
            self.start(maps)
        values = maps.flatten(2)                                            # (B, K, h*w)
        if self.per_image < self.positions:
            picks = torch.stack([torch.randperm(self.positions, generator=self.generator)[:self.per_image]
                                 for _ in range(len(maps))]).to(maps.device)
            values = values.gather(2, picks[:, None].expand(-1, values.shape[1], -1))
        merged = torch.cat([self.top, values.transpose(0, 1).flatten(1)], dim=1)     # (K, kept + B * positions)
        self.top = merged.topk(min(self.k, merged.shape[1]), dim=1).values

    def thresholds(self):
        return _quantile_from_top(self.top, self.n_sampled, self.quantile).float().cpu()


def _check_layers(model, layers):
    if isinstance(layers, str):
        layers = [layers]
    names = [get_layer(model, layer)[0] for layer in layers]
    if not names:
        raise ValueError("give at least one layer to dissect")
    if len(set(names)) != len(names):
        raise ValueError(f"a layer is named twice: {names}")
    return names


def _batches(images, batch_size, device, desc, show_progress):
    """(start, batch on `device`), one batch moved at a time so that memory does not grow with the dataset."""
    starts = range(0, len(images), batch_size)
    for start in progress(starts, desc=desc, enabled=show_progress, leave=False):
        yield start, images[start:start + batch_size].to(device)


def _thresholds_pass(model, images, names, quantile, max_kept, seed, batch_size, show_progress):
    tops = {name: _TopValues(len(images), quantile, max_kept, seed) for name in names}
    with torch.no_grad():
        for _, batch in _batches(images, batch_size, model.device, "dissection: thresholds", show_progress):
            for name, maps in _layer_maps(model, batch, names).items():
                tops[name].add(maps.float())
    return tops


@checks_inputs("images")
def activation_thresholds(model, images, layers, *, quantile=QUANTILE, max_kept=MAX_KEPT, seed=0,
                          batch_size=DEFAULT_BATCH_SIZE, show_progress=None):
    """Pass 1 alone: each unit's threshold T_k, exceeded by the top `quantile` of its values (every position
    of every image), for each of `layers`: a tuple of (K,) tensors. Exact (numpy's linear quantile) while the
    top values fit in `max_kept` per layer; beyond, exact on a seeded uniform sample of positions."""
    quantile = _check_fraction(quantile, "quantile")
    check_batch_size(batch_size)
    check_positive_int(max_kept, "max_kept")
    names = _check_layers(model, layers)
    tops = _thresholds_pass(model, images, names, quantile, max_kept, seed, batch_size, show_progress)
    return tuple(tops[name].thresholds() for name in names)


# ---------------------------------------------------------------------------------------------
# Pass 2: IoU per unit and concept
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DissectionResult:
    """One layer dissected: the IoU of every unit with every concept, and what each unit detects."""

    layer: str
    iou: torch.Tensor           # (K, C) over the dataset
    thresholds: torch.Tensor    # (K,) T_k
    concepts: tuple             # C concept names
    kinds: tuple                # the kind of each concept
    detected: tuple             # per unit: the concept of highest IoU if above iou_threshold, else None
    quantile: float
    iou_threshold: float
    n_images: int
    n_sampled: int              # values per unit the thresholds were computed on (N*h*w when exact)
    n_values: int               # values per unit in the dataset (N*h*w)
    areas: torch.Tensor         # (K,) pixels of each unit's region over the dataset, at the masks' resolution

    @property
    def units(self):
        return self.iou.shape[0]

    @property
    def best_iou(self):
        """(K,) each unit's highest IoU over the concepts."""
        return self.iou.max(1).values

    def detectors(self, kind=None):
        """The units that detect a concept (of `kind`, if given), as a list of indices."""
        if kind is not None and kind not in self.kinds:
            raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(dict.fromkeys(self.kinds))}")
        return [k for k, concept in enumerate(self.detected)
                if concept is not None and (kind is None or self.kinds[self.concepts.index(concept)] == kind)]

    def counts(self):
        """{kind: how many units detect a concept of that kind}, every kind listed."""
        return {kind: len(self.detectors(kind)) for kind in dict.fromkeys(self.kinds)}


# How far a map's maximum may sit below T_k while one of its upsampled values, a convex combination rounded
# in float32, still exceeds it: a few units in the last place.
_ROUNDING = 8 * torch.finfo(torch.float32).eps


class _Tally:
    """|region_k AND concept c| and |region_k| for every unit k of one layer, accumulated batch by batch.

    Each region pixel is counted once, under the combination of concepts its pixel shows (`Concepts`);
    the combinations' counts become the concepts' at the end."""

    def __init__(self, thresholds, combination_concepts, size, device):
        self.thresholds = thresholds.to(device)
        self.combination_concepts = combination_concepts.to(device)            # (T, C) 0/1
        self.size, self.device = size, device
        self.counts = torch.zeros(len(thresholds), len(combination_concepts), dtype=torch.long, device=device)

    def add(self, maps, pixel_combinations, chunk=2**24):
        """maps (B, K, h, w); pixel_combinations (B, P): each mask pixel's combination of concepts.

        A bilinear upsampling never exceeds its map's largest value, so only the maps that reach T_k
        (a few percent of a deep layer's) can have a region: just those are upsampled, at most `chunk`
        values at once, so that memory stays bounded whatever the layer's width."""
        units, combinations = len(self.thresholds), len(self.combination_concepts)
        floor = self.thresholds - _ROUNDING * self.thresholds.abs()
        image, unit = (maps.amax((2, 3)) > floor).nonzero(as_tuple=True)               # the maps that may
        step = max(1, chunk // (self.size[0] * self.size[1]))
        for first in range(0, len(image), step):
            i, k = image[first:first + step], unit[first:first + step]
            upsampled = F.interpolate(maps[i, k][:, None], size=self.size, mode="bilinear",
                                      align_corners=False).flatten(1)                     # (n, P)
            # BEGIN SOLUTION
            which, pixel = (upsampled > self.thresholds[k, None]).nonzero(as_tuple=True)   # each region pixel
            combination = pixel_combinations[i[which], pixel].long()                        # the concepts it shows
            pair = k[which] * combinations + combination
            self.counts += torch.bincount(pair, minlength=units * combinations).view(units, combinations)
            # END SOLUTION

    @property
    def area(self):
        """(K,) |region_k|: every region pixel, whatever it shows."""
        return self.counts.sum(1)

    @property
    def intersection(self):
        """(K, C) |region_k AND concept c|: the counts of the combinations that hold c."""
        return self.counts.double() @ self.combination_concepts

    def iou(self, concept_area):
        """(K, C) intersection over union, 0 where both the region and the concept are empty."""
        intersection, area = self.intersection, self.area.double()
        # BEGIN SOLUTION
        union = area[:, None] + concept_area[None, :] - intersection
        return torch.where(union > 0, intersection / union.clamp_min(1), torch.zeros_like(union))
        # END SOLUTION


@checks_inputs("images")
def dissect_layers(model, images, layers, concepts, *, quantile=QUANTILE, iou_threshold=IOU_THRESHOLD,
                   thresholds=None, max_kept=MAX_KEPT, seed=0, batch_size=DEFAULT_BATCH_SIZE, show_progress=None):
    """Dissect each of `layers` on `images` and their `concepts` (Bau et al. 2017): a tuple of
    `DissectionResult`, one per layer, in the order given.

    Pass 1 finds every unit's threshold (see `activation_thresholds`; skipped when `thresholds`, one (K,)
    tensor per layer, are given); pass 2 counts the IoU of the thresholded, upsampled maps with every
    concept. Both passes share one forward pass per batch among the layers, which ends at the deepest.
    """
    quantile = _check_fraction(quantile, "quantile")
    iou_threshold = _check_fraction(iou_threshold, "iou_threshold")
    check_batch_size(batch_size)
    check_positive_int(max_kept, "max_kept")
    if not isinstance(concepts, Concepts):
        raise TypeError(f"concepts must be a vizlib.dissection.Concepts, got {type(concepts).__name__}")
    concepts.check_images(images)
    names = _check_layers(model, layers)
    if thresholds is not None and len(thresholds) != len(names):
        raise ValueError(f"give one thresholds tensor per layer: {len(names)} layers, {len(thresholds)} given")

    device = model.device
    if thresholds is None:
        tops = _thresholds_pass(model, images, names, quantile, max_kept, seed, batch_size, show_progress)
        thresholds = [tops[name].thresholds() for name in names]
        sampled = [(tops[name].n_sampled, tops[name].n_values) for name in names]
    else:
        sampled = [(None, None)] * len(names)
    tallies = {name: _Tally(torch.as_tensor(t, dtype=torch.float32), concepts.combination_concepts,
                            concepts.size, device) for name, t in zip(names, thresholds)}
    shapes = {}
    with torch.no_grad():
        for start, batch in _batches(images, batch_size, device, "dissection: IoU", show_progress):
            shown = concepts.pixel_combinations[start:start + len(batch)].to(device)   # (B, P)
            for name, maps in _layer_maps(model, batch, names).items():
                if maps.shape[1] != len(tallies[name].thresholds):
                    raise ValueError(f"layer {name!r} has {maps.shape[1]} units but "
                                     f"{len(tallies[name].thresholds)} thresholds were given")
                shapes[name] = maps.shape[2:]
                tallies[name].add(maps.float(), shown)
    concept_area = concepts.areas().to(device)
    results = []
    for name, (n_sampled, n_values) in zip(names, sampled):
        iou = tallies[name].iou(concept_area).float().cpu()
        best, where = iou.max(1)
        detected = tuple(concepts.names[c] if value > iou_threshold else None
                         for value, c in zip(best.tolist(), where.tolist()))
        full = len(images) * shapes[name][0] * shapes[name][1]
        results.append(DissectionResult(
            layer=name, iou=iou, thresholds=tallies[name].thresholds.cpu(), concepts=tuple(concepts.names),
            kinds=tuple(concepts.kinds), detected=detected, quantile=quantile, iou_threshold=iou_threshold,
            n_images=len(images), n_sampled=full if n_sampled is None else n_sampled, n_values=full,
            areas=tallies[name].area.cpu(),
        ))
    return tuple(results)


@checks_inputs("images")
def dissect(model, images, layer, concepts, **options):
    """Dissect one layer: a `DissectionResult` (see `dissect_layers` for the options)."""
    if not isinstance(layer, str):
        raise TypeError(f"dissect takes one layer name; for several use dissect_layers, got {type(layer).__name__}")
    return dissect_layers(model, images, [layer], concepts, **options)[0]


@checks_inputs("images")
def unit_regions(model, images, result, unit, *, size=None):
    """Where `unit` of the dissected layer exceeds its threshold T_k on `images`, its map upsampled
    bilinearly to `size` (default: the images'): bool (N, H, W)."""
    unit = check_index(unit, result.units, "unit", context=f" (layer {result.layer!r})")
    size = tuple(images.shape[-2:]) if size is None else tuple(size)
    with torch.no_grad():
        maps = _layer_maps(model, images.to(model.device), [result.layer])[result.layer][:, unit:unit + 1].float()
    upsampled = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]
    return (upsampled > result.thresholds[unit].to(upsampled.device)).cpu()


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorExamples:
    """For a few units of a dissected layer: the images that excite each most and its region in them."""

    units: tuple
    image_index: torch.Tensor   # (U, k) the images, by the unit's maximum activation, highest first
    regions: torch.Tensor       # (U, k, H, W) bool: where the unit exceeds its threshold
    titles: tuple               # per unit: "unit 12: star (IoU 0.21)"


@checks_inputs("images")
def detector_examples(model, images, result, units, *, k=4, batch_size=DEFAULT_BATCH_SIZE):
    """The k images on which each of `units` responds most (its maximum), and its thresholded region there."""
    from vizlib.patches import top_activations

    units = [int(u) for u in units]
    if not units:
        raise ValueError("give at least one unit")
    top = top_activations(model, images, result.layer, k=k, batch_size=batch_size, show_progress=False)
    index = torch.stack([top.image_index[u] for u in units])
    regions = torch.stack([unit_regions(model, images[index[i]], result, u) for i, u in enumerate(units)])
    titles = []
    for u in units:
        concept = result.detected[u] or result.concepts[int(result.iou[u].argmax())]
        titles.append(f"unit {u}: {concept} ({result.iou[u].max():.2f})")
    return DetectorExamples(tuple(units), index, regions, tuple(titles))


def show_detectors(images, examples, *, concept_masks=None, size=1.4):
    """One row per unit: its top images with its region outlined in yellow (and, if given, the object's
    mask (N, H, W) in cyan). Outlines are drawn as contours, as thick at 224 px as at 64 px."""
    import matplotlib.pyplot as plt

    from vizlib.plotting import as_display_array

    rows, k = examples.image_index.shape
    fig, axes = plt.subplots(rows, k, figsize=(size * k + 1.6, size * rows + 0.5), squeeze=False)
    for r in range(rows):
        for c in range(k):
            i = int(examples.image_index[r, c])
            ax = axes[r, c]
            ax.imshow(as_display_array(images[i]), interpolation="nearest")
            outlines = [(examples.regions[r, c], "yellow")]
            if concept_masks is not None:
                outlines.insert(0, (concept_masks[i], "cyan"))
            for mask, colour in outlines:
                if mask.any():
                    ax.contour(mask.float().cpu().numpy(), levels=[0.5], colors=colour, linewidths=1.5)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(examples.titles[r].replace(": ", ":\n"), rotation=0, ha="right", va="center",
                              fontsize=10)
    fig.suptitle("top images per unit: region above T_k (yellow)"
                 + (", object (cyan)" if concept_masks is not None else ""), fontsize=12)
    fig.tight_layout()
    return fig


def _short_names(layers):
    """The shortest dotted endings that still tell the layers apart: "features.relu5" -> "relu5"; a bare number
    keeps its parent ("features.12"); EfficientNet's "features.stem.relu" and "features.head.relu" -> "stem.relu"
    and "head.relu", where "relu" alone would put two layers on one bar."""
    parts = [layer.split(".") for layer in layers]
    depth = [2 if p[-1].isdigit() else 1 for p in parts]
    while True:
        names = [".".join(p[-d:]) for p, d in zip(parts, depth)]
        clashing = [i for i, name in enumerate(names) if names.count(name) > 1 and depth[i] < len(parts[i])]
        if not clashing:
            return names
        for i in clashing:
            depth[i] += 1


def show_detector_counts(results, *, title=None):
    """Per-layer bars of detector units by kind of concept, one panel per network.

    results: {label: sequence of DissectionResult, shallow to deep}, e.g. {"trained": ..., "random": ...}.
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("give at least one network's results")
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.8), squeeze=False, sharey=True)
    colours = {"shape": "tab:blue", "colour": "tab:orange", "background": "tab:green"}
    for ax, (label, layer_results) in zip(axes[0], results.items()):
        names = _short_names([r.layer for r in layer_results])
        bottom = np.zeros(len(layer_results))
        kinds = list(dict.fromkeys(kind for r in layer_results for kind in r.counts()))
        for kind in kinds:
            counts = np.array([r.counts().get(kind, 0) for r in layer_results])
            ax.bar(names, counts, bottom=bottom, label=kind, color=colours.get(kind))
            bottom += counts
        ax.tick_params(axis="x", labelrotation=30 if max(map(len, names)) > 6 else 0)
        for x, (total, r) in enumerate(zip(bottom, layer_results)):
            ax.text(x, total, f"{int(total)}/{r.units}", ha="center", va="bottom", fontsize=10)
        ax.set_title(label, fontsize=12)
        ax.set_xlabel("layer")
    axes[0, 0].set_ylabel("detector units")
    axes[0, 0].set_ylim(0, 1.25 * max(1, max(sum(r.counts().values()) for rs in results.values() for r in rs)))
    axes[0, -1].legend(title="concept kind", fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig
