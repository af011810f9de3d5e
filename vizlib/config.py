"""Course-wide settings, read from the environment in this one place.

VIZLIB_FAST=1      shrink sizes and iterations (CI runs every notebook this way)
VIZLIB_MODEL=...   which network the notebooks use: "auto" (default: an ImageNet
                   model when its weights are cached, else the course model),
                   "course", or a torchvision name such as "squeezenet1_1"
VIZLIB_PROGRESS=0  hide progress bars
VIZLIB_CACHE=...   where downloaded datasets live (default ~/.cache/vizlib)
VIZLIB_UNTRAINED=1 test-only: the cached ImageNet weights are random stand-ins (the offline
                   run of every notebook on every architecture), so claims that need
                   trained weights print why they are skipped instead of asserting
"""

import os
import random
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


def _flag(name, default):
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


FAST = _flag("VIZLIB_FAST", False)
SHOW_PROGRESS = _flag("VIZLIB_PROGRESS", True)
UNTRAINED = _flag("VIZLIB_UNTRAINED", False)
MODEL_CHOICE = os.environ.get("VIZLIB_MODEL", "auto").strip() or "auto"
CACHE_DIR = Path(os.environ.get("VIZLIB_CACHE", Path.home() / ".cache" / "vizlib"))

# The clone, for the tools that manage the course (build, release); nothing that runs in a
# notebook reads through it, since an installed wheel has no clone around it.
REPO_ROOT = Path(__file__).resolve().parent.parent


def shipped(name):
    """A file vizlib ships in vizlib/data (weights, training records).

    Found through importlib.resources, so a wheel installed on Colab or a JupyterHub finds
    it exactly as a clone does.
    """
    return resources.files("vizlib") / "data" / name


def fast_or(full, fast):
    """`fast` in fast mode (CI), `full` at teaching quality."""
    return fast if FAST else full


def pick_device():
    """CUDA, then Apple's MPS, then the CPU: the first one available."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed):
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same way.

    Pass the generator to functions that take one, so a cell reproduces even when
    cells above it ran a different number of times.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def progress(iterable=None, *, desc=None, total=None, enabled=None, **kwargs):
    """A tqdm progress bar (a widget in Jupyter), off when VIZLIB_PROGRESS=0 or enabled=False."""
    show = SHOW_PROGRESS if enabled is None else enabled
    return tqdm(iterable, desc=desc, total=total, disable=not show, **kwargs)


def describe():
    """One line a notebook prints at the top: where it runs and how."""
    mode = "fast (VIZLIB_FAST=1)" if FAST else "teaching quality"
    return f"device: {pick_device()} | mode: {mode} | torch {torch.__version__}"
