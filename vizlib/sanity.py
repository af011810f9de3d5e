"""Sanity checks for attribution maps (Adebayo et al. 2018), for any attribution method.

A map that explains a network's decision must change when the layers that make the
decision are replaced by noise. The cascading randomisation re-initialises a copy of
the model from the top layer down and, after each layer, compares every method's map
with the trained model's map: the Spearman rank correlation of the two maps, per image, each
read by the course's one rule (`vizlib.saliency.attribution_map`, as 17 scores them).

- `rank_correlation(a, b)`: Spearman's correlation of each pair of maps, ties averaged.
- `layer_groups`, `cascading_copies`: the layers with weights, and the randomised copies.
- `randomisation_check(model, images, methods, classes=None)`: the whole check, for any
  methods {name: fn(model, images, classes) -> maps}; `guided_backprop.cascading_randomisation`
  runs it for the ReLU rules of notebook 07.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn

from vizlib.wrapper import checks_inputs, network
from vizlib.arguments import resolve_classes
from vizlib.saliency import attribution_map


def _average_ranks(rows):
    """Ranks 1..D along each row of (N, D); tied values share the mean of their ranks."""
    n, d = rows.shape
    ordered, order = rows.sort(dim=1)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = (starts.cumsum(1) - 1 + d * torch.arange(n)[:, None]).flatten()  # tie group, unique per row
    positions = torch.arange(1, d + 1, dtype=torch.float64).repeat(n)
    sums = torch.zeros(n * d, dtype=torch.float64).index_add_(0, group, positions)
    counts = torch.bincount(group, minlength=n * d).clamp_min(1)
    ranks_in_order = (sums / counts)[group].view(n, d)
    return torch.empty_like(ranks_in_order).scatter_(1, order, ranks_in_order)


def rank_correlation(a, b):
    """Spearman rank correlation of each pair of rows of a and b (flattened per item): (N,).

    Ties get average ranks. A constant map (such as all zeros) ranks nothing: its
    correlation is undefined, NaN, as in scipy.
    """
    a, b = a.detach().flatten(1).cpu(), b.detach().flatten(1).cpu()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denominator = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(denominator > 0, (ra * rb).sum(1) / denominator.clamp_min(1e-300), torch.nan)


def layer_groups(model):
    """Layers with weights, bottom to top, as [(name, [module names])].

    A BatchNorm layer joins the layer before it, so a convolution and its normalisation
    are randomised together.
    """
    groups = []
    for name, module in network(model).named_modules():
        if not name or not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and groups:
            groups[-1][1].append(name)
        else:
            groups.append((name, [name]))
    return groups


def _reinitialise(module, generator):
    """Random weights drawn from `generator`: He-normal weights, zero biases, identity batch norm.

    He initialisation (a standard one for ReLU networks) keeps the size of the signal
    through a deep stack of random layers, so no map fades out just for lack of scale.
    """
    with torch.no_grad():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()  # weight 1, bias 0, running mean 0, running variance 1
            return
        for name, parameter in module.named_parameters(recurse=False):
            fresh = torch.zeros(parameter.shape, dtype=parameter.dtype)  # drawn on the CPU: same on any device
            if name == "weight" and parameter.dim() >= 2:
                nn.init.kaiming_normal_(fresh, nonlinearity="relu", generator=generator)
            elif name != "bias":
                nn.init.normal_(fresh, std=0.02, generator=generator)
            parameter.copy_(fresh)


def cascading_copies(model, steps=None, *, seed=0):
    """Yield (group name, copy) with the top 1, 2, ... layer groups of a deep copy re-initialised.

    The same copy is re-initialised further at each step (a cascade, from the top layer
    down); the model passed in is never touched. `steps` limits how many groups.
    """
    groups = layer_groups(model)[::-1]
    if steps is not None:
        if not 1 <= steps <= len(groups):
            raise ValueError(f"steps must be between 1 and {len(groups)} (the model's layers with weights), "
                             f"got {steps}")
        groups = groups[:steps]
    randomised = copy.deepcopy(model)
    modules = dict(network(randomised).named_modules())
    generator = torch.Generator().manual_seed(seed)
    for name, members in groups:
        for member in members:
            _reinitialise(modules[member], generator)
        yield name, randomised


@dataclass(frozen=True)
class RandomisationResult:
    maps: dict            # method -> (steps + 1, keep, ...) the maps of the first `keep` images
    layers: list          # ["trained", then the group randomised last at each step (top first)]
    correlations: dict    # method -> (steps + 1, N) Spearman correlation of |map| with the trained map

    def mean(self, rule):
        """Mean correlation over images at each step, (steps + 1,); images whose map is constant are left out."""
        return self.correlations[rule].nanmean(1)

    def counted(self, rule):
        """How many images have a correlation at each step (a map of all zeros has none): (steps + 1,)."""
        return (~self.correlations[rule].isnan()).sum(1)


@checks_inputs("images")
def randomisation_check(model, images, methods, classes=None, *, steps=None, seed=0, keep=4):
    """Adebayo et al. (2018): how much does each map change as the layers are randomised from the top?

    methods: {name: fn(model, images, classes) -> maps (N, ...)}. For each step of
    `cascading_copies`, every method's map is compared with the trained model's map of the
    same method: Spearman correlation per image of the maps read by `attribution_map` (the largest |.| over
    colour channels; a map without channels keeps its positive part). The class explained stays `classes`
    throughout (None: each image's class as the trained model predicts it). A map that is all zeros has no
    correlation (NaN) and is left out of the means. Returns a RandomisationResult.
    """
    classes = resolve_classes(model, images, classes)
    trained = {name: method(model, images, classes) for name, method in methods.items()}
    layers = ["trained"]
    read = {name: attribution_map(maps) for name, maps in trained.items()}
    correlations = {name: [rank_correlation(maps, maps)] for name, maps in read.items()}
    kept = {name: [maps[:keep].cpu()] for name, maps in trained.items()}
    for layer, randomised in cascading_copies(model, steps, seed=seed):
        layers.append(layer)
        for name, method in methods.items():
            maps = method(randomised, images, classes)
            correlations[name].append(rank_correlation(read[name], attribution_map(maps)))
            kept[name].append(maps[:keep].cpu())
    return RandomisationResult(
        layers=layers,
        correlations={name: torch.stack(values) for name, values in correlations.items()},
        maps={name: torch.stack(values) for name, values in kept.items()},
    )
