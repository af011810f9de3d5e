"""The sanity check of Adebayo et al. (2018): rank correlation against scipy, the randomised copies,
and the whole check against maps whose change is known in closed form."""

import warnings

import pytest
import scipy.stats
import torch
from torch import nn

from model_state import assert_unchanged, fingerprint
from vizlib.sanity import (
    cascading_copies, layer_groups, randomisation_check, rank_correlation,
)
from vizlib.wrapper import VizModel, freeze


def test_rank_correlation_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (5, 40), generator=generator).float()  # many ties
    b = torch.randn(5, 40, generator=generator)
    b[:, ::4] = 0
    expected = [scipy.stats.spearmanr(x, y).statistic for x, y in zip(a.numpy(), b.numpy())]
    assert torch.allclose(rank_correlation(a, b), torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(rank_correlation(a, a), torch.ones(5, dtype=torch.float64))
    assert rank_correlation(torch.zeros(1, 9), torch.rand(1, 9)).isnan().all()  # a constant map ranks nothing
    with pytest.raises(ValueError, match="differ in shape"):
        rank_correlation(torch.rand(2, 4), torch.rand(2, 5))


def test_layer_groups_of_the_course_model_pair_each_conv_with_its_batchnorm(course):
    groups = layer_groups(course)
    expected = [f"features.conv{i}" for i in range(1, 6)] + ["classifier.fc1", "classifier.fc2"]
    assert [name for name, _ in groups] == expected
    assert groups[0][1] == ["features.conv1", "features.bn1"]


def test_cascade_randomises_a_copy_from_the_top_down(course):
    before = fingerprint(course)
    trained = dict(course.named_parameters())
    steps = []
    for name, copy in cascading_copies(course, steps=3, seed=0):
        changed = {key for key, value in copy.named_parameters() if not torch.equal(value, trained[key])}
        steps.append((name, sorted({key.rsplit(".", 1)[0] for key in changed})))
        assert copy is not course
    assert steps == [
        ("classifier.fc2", ["net.classifier.fc2"]),
        ("classifier.fc1", ["net.classifier.fc1", "net.classifier.fc2"]),
        ("features.conv5", ["net.classifier.fc1", "net.classifier.fc2", "net.features.bn5", "net.features.conv5"]),
    ]
    assert_unchanged(course, before)
    def top_weight(seed):
        (_, copy), = cascading_copies(course, 1, seed=seed)
        return copy.net.classifier.fc2.weight.clone()

    assert torch.equal(top_weight(4), top_weight(4))  # reproducible by seed
    assert not torch.equal(top_weight(4), top_weight(5))
    with pytest.raises(ValueError, match="between 1 and 7"):
        next(cascading_copies(course, steps=8))




def _linear_model():
    """Scores = W x + b on (N, 3, 2, 2) images, no normalisation: the gradient of score c is row c of W."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    return freeze(VizModel(net, name="linear", class_names="abc", input_size=2, mean=(0.0,) * 3, std=(1.0,) * 3))


def _gradient(model, images, classes):
    pixels = images.clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(pixels).gather(1, classes[:, None]).sum(), pixels)
    return grad


def test_randomization_check_follows_the_weights_drawn_for_the_randomised_layer():
    model = _linear_model()
    before = fingerprint(model)
    images = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([0, 1, 2, 1])
    methods = {
        "gradient": _gradient,
        "gradient, channels reduced": lambda m, x, c: _gradient(m, x, c).abs().amax(1),   # (N, H, W) maps
        "signed map": lambda m, x, c: _gradient(m, x, c).sum(1),                           # read by its positive part
        "input": lambda m, x, c: x.clone(),                                               # blind to the model
    }
    result = randomisation_check(model, images, methods, classes, seed=3, keep=2)
    assert_unchanged(model, before)
    assert result.layers == ["trained", "1"]
    # the Linear layer redrawn He-normal from the seeded generator: std sqrt(2 / fan_in), bias 0
    fresh = torch.empty(3, 12).normal_(0, (2 / 12) ** 0.5, generator=torch.Generator().manual_seed(3))
    trained = model.net[1].weight.detach()
    expected = [scipy.stats.spearmanr(trained[c].view(3, 4).abs().amax(0), fresh[c].view(3, 4).abs().amax(0)).statistic
                for c in classes.tolist()]
    expected = torch.tensor(expected, dtype=torch.float64)
    with warnings.catch_warnings():     # a positive part that is all zeros has no correlation (NaN)
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        signed = [scipy.stats.spearmanr(trained[c].view(3, 4).sum(0).clamp_min(0),
                                        fresh[c].view(3, 4).sum(0).clamp_min(0)).statistic for c in classes.tolist()]
    assert torch.allclose(result.correlations["signed map"][1], torch.tensor(signed, dtype=torch.float64),
                          atol=1e-12, equal_nan=True)
    for name in ("gradient", "gradient, channels reduced"):
        assert torch.allclose(result.correlations[name][0], torch.ones(4, dtype=torch.float64))
        assert torch.allclose(result.correlations[name][1], expected, atol=1e-12)
    assert torch.allclose(result.correlations["input"], torch.ones(2, 4, dtype=torch.float64))
    assert torch.allclose(result.maps["gradient"][1], fresh[classes[:2]].view(2, 3, 2, 2))
    assert result.maps["gradient, channels reduced"].shape == (2, 2, 2, 2)
    means = torch.cat([torch.ones(1, dtype=torch.float64), expected.mean()[None]])
    assert torch.allclose(result.mean("gradient"), means)
    assert result.counted("input").tolist() == [4, 4]


def test_randomization_check_refuses_bad_classes_before_any_work():
    model = _linear_model()
    calls = []
    with pytest.raises(ValueError, match="class index out of range"):
        randomisation_check(model, torch.rand(2, 3, 2, 2), {"m": lambda *args: calls.append(1)}, [0, 3])
    assert calls == []
