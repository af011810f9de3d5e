"""Shared test setup: fast mode for every notebook the suite runs, a headless plot backend."""

import os

# Set before vizlib is imported; the notebook kernels that nbval starts inherit them.
os.environ.setdefault("VIZLIB_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from vizlib.models import course_model  # noqa: E402


@pytest.fixture(scope="session")
def course():
    """The trained course model on the CPU (tests must not change it; they check)."""
    return course_model()
