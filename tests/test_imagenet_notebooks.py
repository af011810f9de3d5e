"""Every notebook end to end on more than one network, offline, each run in a pytest process of its own.

nbval (the suite's `notebooks` path) runs every notebook on the network it picks by default offline: EfficientNet-
Lite0, whose trained ImageNet weights are installed with the course, for the notebooks about ImageNet features, and
the course model for the notebooks whose claims are scored on the course's masks (`pick_model(default="course")`).
This file runs each notebook again on the other one, so `make test` asserts every claim on a trained ImageNet
network and on the course model.

torchvision's cache path (what a user who ran `make download` gets) runs on stand-in weights: random weights
planted where torchvision's cache keeps them (a temporary TORCH_HOME), with VIZLIB_UNTRAINED=1 so that claims that
need training print that they are skipped. `make test` runs the tour (00) on SqueezeNet 1.1 and 01 on the AlexNet it
asks `pick_model` for (13 and 14 ask for VGG-19, whose runs take over a minute: they are left to `make test-imagenet`);
`make test-imagenet` (`--imagenet-all`) runs every notebook on every torchvision architecture `pick_model` offers.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import torchvision

from vizlib.config import REPO_ROOT
from vizlib.models import TORCHVISION_MODELS, cached_weights_path

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMEOUT = 1200  # seconds per notebook: VGG-19 at 224 px on two cores is slow even in fast mode


def source(path):
    return "".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])


def picked_architectures(path):
    """The torchvision architectures a notebook asks pick_model for by name."""
    return re.findall(r"pick_model\([^)]*imagenet=\"(\w+)\"", source(path))


def default_model(path):
    """The network a notebook runs on offline when nothing is chosen: "course" or "efficientnet_lite0"."""
    calls = re.findall(r"pick_model\(([^)]*)\)", source(path))
    if not calls:
        return None             # a notebook without a network (12)
    return "course" if 'default="course"' in calls[0] else "efficientnet_lite0"


def runs(all_architectures):
    for path in NOTEBOOKS:
        default = default_model(path)
        if default is not None:
            other = "efficientnet_lite0" if default == "course" else "course"
            yield pytest.param(path, other, id=f"{path.stem}-{other}")
        if all_architectures:
            stand_ins = TORCHVISION_MODELS
        else:
            stand_ins = {"00": ["squeezenet1_1"], "01": picked_architectures(path)}.get(path.name[:2], [])
        for architecture in stand_ins:
            yield pytest.param(path, architecture, id=f"{path.stem}-{architecture}-stand-in")


def pytest_generate_tests(metafunc):
    if {"notebook", "architecture"} <= set(metafunc.fixturenames):
        metafunc.parametrize("notebook, architecture", list(runs(metafunc.config.getoption("imagenet_all"))))


@pytest.fixture(scope="session")
def stand_in_cache(tmp_path_factory):
    """A TORCH_HOME whose weights cache gets an architecture's random weights the first time it is asked."""
    torch_home = tmp_path_factory.mktemp("torch_home")

    def plant(architecture):
        old = torch.hub.get_dir()
        torch.hub.set_dir(str(torch_home / "hub"))      # where torchvision looks under this TORCH_HOME
        try:
            path = cached_weights_path(architecture)
        finally:
            torch.hub.set_dir(old)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                torch.save(torchvision.models.get_model(architecture, weights=None).state_dict(), path)
        return torch_home

    return plant


def test_the_notebook_runs_to_its_end(notebook, architecture, stand_in_cache, tmp_path):
    env = dict(os.environ, VIZLIB_MODEL=architecture, VIZLIB_FAST="1", VIZLIB_PROGRESS="0", MPLBACKEND="Agg")
    if architecture in TORCHVISION_MODELS:
        env.update(TORCH_HOME=str(stand_in_cache(architecture)), VIZLIB_UNTRAINED="1")
    else:       # an empty torchvision cache, so nothing a developer downloaded changes what runs
        env.update(TORCH_HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o",
         "addopts=--nbval-lax --nbval-current-env", str(notebook)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{notebook.name} on {architecture}:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


def test_each_notebook_says_which_network_it_runs_on_by_default():
    defaults = {path.name[:2]: default_model(path) for path in NOTEBOOKS}
    assert defaults.pop("12") is None
    assert set(defaults.values()) == {"course", "efficientnet_lite0"}
    picked = {path.name[:2]: picked_architectures(path) for path in NOTEBOOKS}
    assert picked["01"] == ["alexnet"] and picked["13"] == ["vgg19"] and picked["14"] == ["vgg19"]
    assert all(architecture in TORCHVISION_MODELS for found in picked.values() for architecture in found)
