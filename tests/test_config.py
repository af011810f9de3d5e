import importlib

import numpy as np
import pytest
import torch

from vizlib import config


@pytest.fixture
def reread(monkeypatch):
    """Re-read the settings under a given environment; restore them afterwards."""

    def read(env):
        for name in ("VIZLIB_FAST", "VIZLIB_PROGRESS", "VIZLIB_MODEL"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        fresh = importlib.reload(config)
        return fresh.FAST, fresh.SHOW_PROGRESS, fresh.MODEL_CHOICE

    yield read
    monkeypatch.undo()
    importlib.reload(config)


def test_one_environment_switch_sets_fast_mode(reread):
    assert reread({}) == (False, True, "auto")
    assert reread({"VIZLIB_FAST": "1", "VIZLIB_PROGRESS": "0", "VIZLIB_MODEL": "course"}) == (
        True, False, "course",
    )
    assert reread({"VIZLIB_FAST": "0"})[0] is False
    assert reread({"VIZLIB_FAST": "yes"})[0] is True


def test_fast_or_follows_the_switch(monkeypatch):
    monkeypatch.setattr(config, "FAST", True)
    assert config.fast_or(full=100, fast=5) == 5
    monkeypatch.setattr(config, "FAST", False)
    assert config.fast_or(full=100, fast=5) == 100


def test_seed_everything_reproduces_all_three_generators():
    def draw():
        g = config.seed_everything(7)
        return np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item()

    assert draw() == draw()
    with pytest.raises(TypeError, match="int"):
        config.seed_everything(1.5)


def test_device_is_one_torch_can_use():
    device = config.pick_device()
    assert torch.zeros(1, device=device).device.type == device.type
    assert ("cuda" if torch.cuda.is_available() else device.type) == device.type


def test_progress_can_be_switched_off():
    assert list(config.progress(range(3), enabled=False)) == [0, 1, 2]
    assert config.progress(range(3), enabled=False).disable


def test_shipped_files_are_found_inside_the_package_not_the_clone():
    from importlib import resources
    from pathlib import Path

    from vizlib import models, style_transfer

    package = Path(str(resources.files("vizlib")))
    for name in ("course_model.pt", "course_model.json", "style_net_hubble_deep_field.pt"):
        assert config.shipped(name).is_file(), name
        assert Path(str(config.shipped(name))).parent == package / "data"
    assert models.COURSE_WEIGHTS == config.shipped("course_model.pt")
    assert style_transfer.weights_path("hubble_deep_field") == config.shipped("style_net_hubble_deep_field.pt")
    assert not hasattr(config, "DATA_DIR")
