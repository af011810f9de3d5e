"""Notebooks are committed clean: no outputs, no execution counts, a python3 kernel, an id on every cell."""

import json

import pytest

from vizlib.config import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_numbered_in_teaching_order():
    assert NOTEBOOKS, "no notebooks found"
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers[0] == 0 and numbers == sorted(set(numbers))
    assert all(path.name[2] == "_" for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs_and_with_a_kernel(path):
    notebook = json.loads(path.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    ids = [cell.get("id") for cell in notebook["cells"]]
    # nbformat 4.5 requires cell ids (a missing one is a warning now, an error in later nbformat versions)
    assert None not in ids and len(set(ids)) == len(ids), f"{path.name}: a cell lacks an id or shares one"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name}: a cell has outputs"
            assert cell["execution_count"] is None, f"{path.name}: a cell has an execution count"
