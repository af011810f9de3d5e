"""Shared test setup: fast mode for every notebook the suite runs, a headless plot backend, and the split of
the work between pytest-xdist's workers (`make test` runs two)."""

import os

# Set before vizlib is imported; the notebook kernels that nbval starts inherit them.
os.environ.setdefault("VIZLIB_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # each worker takes its share of the cores (before torch starts its thread pool), and so do the notebook
    # kernels and subprocesses it starts: two workers asking for every core would only wait on each other
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))   # in case a plugin imported torch first

from vizlib.models import course_model  # noqa: E402
from vizlib.wrapper import VizModel, freeze  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--imagenet-all", action="store_true", dest="imagenet_all",
                     help="run every notebook on every ImageNet architecture `make download` fetches "
                          "(tests/test_imagenet_notebooks.py; `make test-imagenet`)")


def pytest_xdist_make_scheduler(config, log):
    """How `make test` shares the work between its pytest-xdist workers: a notebook's cells share one kernel, and a
    test file's tests its fixtures, so each file goes to one worker whole; the whole-notebook runs of
    test_imagenet_notebooks.py, the longest tests, are shared out one by one."""
    from xdist.scheduler import LoadScopeScheduling

    class WholeFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return nodeid if path.endswith("test_imagenet_notebooks.py") else path

    return WholeFiles(config, log)


@pytest.fixture(scope="session")
def course():
    """The trained course model on the CPU (tests must not change it; they check)."""
    return course_model()


@pytest.fixture
def tiny_model():
    """conv 3->4 (3x3, no padding) -> tanh -> pool -> linear, in float64: small enough for finite differences."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5))
    model = VizModel(net.double(), name="tiny", class_names="abcde", input_size=6, mean=(0.5,) * 3, std=(0.2,) * 3)
    model.mean, model.std = model.mean.double(), model.std.double()
    return freeze(model)
