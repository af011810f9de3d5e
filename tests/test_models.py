import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torchvision

from model_state import assert_unchanged, fingerprint
from vizlib import models
from vizlib.course_data import CLASSES, make_shapes


@pytest.fixture
def torch_cache(tmp_path):
    """An empty torchvision weights cache, restored afterwards."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def fill_cache_with_random_squeezenet():
    """A state dict with the right architecture and random weights, where torchvision looks."""
    path = models.cached_weights_path("squeezenet1_1")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = torchvision.models.squeezenet1_1(weights=None).state_dict()
    torch.save(state, path)
    return state


def test_course_model_is_frozen_and_described(course):
    assert not course.training and not any(m.training for m in course.modules())
    assert not any(p.requires_grad for p in course.parameters())
    assert course.class_names == CLASSES and course.input_size == 64
    assert "features.conv1" in course.layer_names and "classifier.fc2" in course.layer_names
    assert course.layer("features.conv1").kernel_size == (7, 7)


def test_course_model_held_out_accuracy_at_least_95_percent(course):
    images, labels, _ = make_shapes(2048, "held_out", seed=123)  # a seed training never used
    with torch.no_grad():
        predictions = torch.cat([course(images[i:i + 512]).argmax(1) for i in range(0, 2048, 512)])
    accuracy = (predictions == labels).float().mean().item()
    print(f"course model held-out accuracy: {accuracy:.4f} (chance {1 / len(CLASSES):.3f})")
    assert accuracy >= 0.95


def test_normalisation_lives_inside_the_wrapper():
    model = models.random_imagenet_model("squeezenet1_1")
    images = torch.rand(2, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(images), model.net((images - mean) / std), atol=1e-6)


def test_imagenet_class_names_come_with_random_models():
    model = models.random_imagenet_model("squeezenet1_1")
    assert len(model.class_names) == 1000 and model.class_names[0] == "tench"
    assert model.input_size == 224


def test_random_models_are_seeded_and_keep_the_global_random_state():
    state = torch.random.get_rng_state()
    first, again = (models.random_imagenet_model("squeezenet1_1", seed=3) for _ in range(2))
    other = models.random_imagenet_model("squeezenet1_1", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    weights = [next(m.parameters()) for m in (first, again, other)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_an_untrained_course_model_can_be_seeded_without_touching_the_global_state():
    state = torch.random.get_rng_state()
    first, again = models.course_model(trained=False, seed=5), models.course_model(trained=False, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    other = models.course_model(trained=False, seed=6)
    assert not torch.equal(first.layer("features.conv1").weight, other.layer("features.conv1").weight)


def test_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="squeezenet1_1.*vgg19"):
        models.load_model("resnet9000")


@pytest.mark.parametrize(
    "bad, error",
    [
        (torch.rand(3, 64, 64), ValueError),
        (torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8), TypeError),
        (torch.rand(1, 3, 64, 64) * 255, ValueError),
        (torch.rand(1, 1, 64, 64), ValueError),
        ([[0.5]], TypeError),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(course, bad, error):
    before = fingerprint(course)
    with pytest.raises(error, match="expected"):
        course(bad)
    assert_unchanged(course, before)


def test_an_image_size_the_network_cannot_take_is_named_for_every_technique(course):
    from vizlib.adversarial import fgsm
    from vizlib.guided_backprop import guided_backprop

    small = torch.rand(2, 3, 8, 8)
    before = fingerprint(course)
    for call in (lambda: course(small), lambda: guided_backprop(course, small, [0, 1]),
                 lambda: fgsm(course, small, [0, 1], epsilon=0.01)):
        with pytest.raises(ValueError, match=r"size 8x8 \(its input size is 64x64; resize with vizlib.images.resize\)"):
            call()
    assert_unchanged(course, before)
    sizeless = models.VizModel(torch.nn.Conv2d(3, 2, 5), name="sizeless", class_names=(), input_size=None,
                               mean=(0.5,) * 3, std=(0.25,) * 3)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):      # no input size: the error as it was
        sizeless(torch.rand(1, 3, 3, 3))


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory"), NotImplementedError("no kernel")])
def test_an_error_that_names_its_own_cause_is_not_blamed_on_the_image_size(error):
    class Failing(torch.nn.Module):
        def forward(self, x):
            raise error

    model = models.VizModel(Failing(), name="failing", class_names=(), input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)
    with pytest.raises(type(error)) as raised:      # 32 px is not the input size, yet size is not the cause
        model(torch.rand(1, 3, 32, 32))
    assert raised.value is error


def test_cached_weights_load_through_torchvision_without_network(torch_cache, no_network):
    state = fill_cache_with_random_squeezenet()
    model = models.imagenet_model("squeezenet1_1")
    assert models.cached_weights_path("squeezenet1_1").parent == torch_cache / "checkpoints"
    for name, tensor in model.net.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.class_names[0] == "tench" and model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_missing_weights_fail_fast_naming_the_download_command(torch_cache, no_network):
    start = time.perf_counter()
    with pytest.raises(models.WeightsNotAvailableError, match="make download"):
        models.load_model("vgg19")
    assert time.perf_counter() - start < 5


def test_pick_model_prefers_cached_imagenet_weights_then_the_installed_ones(torch_cache, capsys):
    assert models.pick_model("auto", device="cpu").name == "efficientnet_lite0"
    assert "make download" in capsys.readouterr().out
    fill_cache_with_random_squeezenet()
    assert models.pick_model("auto", device="cpu").name == "squeezenet1_1"
    assert "squeezenet1_1" in capsys.readouterr().out
    assert models.pick_model("auto", default="course", device="cpu").name == "course"   # masks score its claims
    assert models.pick_model("course", device="cpu").name == "course"
    with pytest.raises(ValueError, match="available"):
        models.pick_model("imagenet")


def test_missing_course_weights_name_the_training_command(tmp_path):
    with pytest.raises(models.WeightsNotAvailableError, match="make course-model"):
        models.course_model(tmp_path / "nothing.pt")


def test_the_untrained_setting_marks_stand_in_weights_and_skips_only_their_claims(torch_cache, capsys):
    fill_cache_with_random_squeezenet()
    real = models.pick_model("auto", device="cpu", untrained=False)
    assert real.trained and models.is_trained(real, "any claim")
    assert "Skipped" not in capsys.readouterr().out
    stand_in = models.pick_model("auto", device="cpu", untrained=True)
    assert stand_in.name == "squeezenet1_1" and not stand_in.trained
    assert "random stand-in weights" in capsys.readouterr().out
    assert not models.is_trained(stand_in, "saliency beats the centre blob")
    assert "Skipped on random weights: saliency beats the centre blob" in capsys.readouterr().out
    assert models.course_model().trained and models.load_model("squeezenet1_1", device="cpu").trained


def test_under_the_untrained_setting_every_cached_imagenet_model_is_a_stand_in(torch_cache, monkeypatch):
    fill_cache_with_random_squeezenet()
    monkeypatch.setattr(models.config, "UNTRAINED", True)
    assert not models.imagenet_model("squeezenet1_1").trained       # also what a notebook loads beside its own
    assert models.course_model().trained


def test_the_untrained_setting_with_the_course_model_is_an_error(torch_cache):
    with pytest.raises(ValueError, match="VIZLIB_UNTRAINED.*course ships its trained weights"):
        models.pick_model("course", device="cpu", untrained=True)
    with pytest.raises(ValueError, match="VIZLIB_UNTRAINED"):
        models.pick_model("auto", device="cpu", untrained=True)     # nothing cached: auto means EfficientNet-Lite0


def test_the_untrained_setting_is_read_from_the_environment_in_config_alone():
    code = "from vizlib import config; print(config.UNTRAINED)"     # imagenet_model marks its weights by it
    env = {**os.environ, "VIZLIB_UNTRAINED": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_every_model_built_with_random_weights_is_marked_so_and_is_trained_skips_its_claims(course, capsys):
    """`trained` says what the weights are. The random filter banks are random by design: their own claims need no
    training, so notebooks assert those without is_trained, which guards only claims that need it."""
    from vizlib.filters import untrained_like
    from vizlib.gram_texture import random_filter_bank, texture_filter_bank
    from vizlib.style_transfer import default_style_model

    assert course.trained and models.course_model(trained=True).trained
    assert models.is_trained(course, "a claim that needs training")
    assert "Skipped" not in capsys.readouterr().out
    random_weights = {
        "course model, trained=False": models.course_model(trained=False),
        "course model, trained=False, seeded": models.course_model(trained=False, seed=1),
        "random_imagenet_model": models.random_imagenet_model("squeezenet1_1"),
        "untrained_like(course model)": untrained_like(course),
        "untrained_like(ImageNet model)": untrained_like(models.random_imagenet_model("alexnet")),
        "random_filter_bank": random_filter_bank(kernel_sizes=(3,), channels=2),
        "texture_filter_bank": texture_filter_bank(),
        "default_style_model": default_style_model(),
    }
    for kind, model in random_weights.items():
        assert model.trained is False, kind
        assert not models.is_trained(model, f"a claim on the {kind}"), kind
        assert f"Skipped on random weights: a claim on the {kind}" in capsys.readouterr().out, kind
