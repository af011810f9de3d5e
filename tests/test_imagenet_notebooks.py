"""Every notebook end to end on the ImageNet architectures, offline, as a user with cached weights runs it.

Random weights stand in for ImageNet's where torchvision's cache keeps them (a temporary TORCH_HOME) and
VIZLIB_UNTRAINED=1 says so: `pick_model` marks the model untrained, each claim that needs trained weights
prints that it is skipped and why (`vizlib.is_trained`), and every other cell runs and asserts as usual.
Each notebook runs in fast mode under nbval in a pytest process of its own, with that environment.

`make test` runs every notebook on SqueezeNet 1.1 (what `pick_model` takes when its weights are cached) and
each notebook that asks `pick_model` for another architecture (AlexNet in 01, VGG-19 in 13 and 14) on that
one too; `make test-imagenet` (`--imagenet-all`) runs every notebook on every architecture that
`make download` fetches.
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
from vizlib.course.download import DEFAULT_MODELS
from vizlib.models import cached_weights_path

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMEOUT = 1200  # seconds per notebook: VGG-19 at 224 px on two cores is slow even in fast mode


def picked_architectures(path):
    """The ImageNet architectures a notebook asks pick_model for, besides the default."""
    source = "".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
    return re.findall(r"pick_model\([^)]*imagenet=\"(\w+)\"", source)


def runs(all_architectures):
    for path in NOTEBOOKS:
        architectures = DEFAULT_MODELS if all_architectures else ["squeezenet1_1", *picked_architectures(path)]
        for architecture in dict.fromkeys(architectures):
            yield pytest.param(path, architecture, id=f"{path.stem}-{architecture}")


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


def test_the_notebook_runs_to_its_end_on_stand_in_weights(notebook, architecture, stand_in_cache):
    env = dict(os.environ, TORCH_HOME=str(stand_in_cache(architecture)), VIZLIB_UNTRAINED="1",
               VIZLIB_MODEL=architecture, VIZLIB_FAST="1", VIZLIB_PROGRESS="0", MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o",
         "addopts=--nbval-lax --nbval-current-env", str(notebook)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{notebook.name} on {architecture}:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


def test_the_picked_architectures_are_found_in_the_notebooks():
    picked = {path.name[:2]: picked_architectures(path) for path in NOTEBOOKS}
    assert picked["01"] == ["alexnet"] and picked["13"] == ["vgg19"] and picked["14"] == ["vgg19"]
    assert all(architecture in DEFAULT_MODELS for found in picked.values() for architecture in found)
