"""Notebook = module = test file: notebooks/NN_name.ipynb, vizlib/name.py, tests/test_name.py.

Every other module, core or course tool (vizlib/course/name.py), has its tests/test_name.py too.

Each concept module marks the lines a student writes in homework between
`# BEGIN SOLUTION` and `# END SOLUTION`, so a student release can be cut from it.
"""

import re

import pytest

from vizlib.config import REPO_ROOT

CONCEPT_NOTEBOOKS = sorted(p for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.name[:2] != "00")
MODULES = sorted((REPO_ROOT / "vizlib").rglob("*.py"))
MODULE_IDS = [p.relative_to(REPO_ROOT).as_posix() for p in MODULES]


def concept_name(notebook):
    return notebook.stem[3:]


def marker_pairs(text):
    """Number of well-formed BEGIN/END SOLUTION pairs; raises on bad nesting."""
    depth = pairs = 0
    for marker in re.findall(r"# (BEGIN|END) SOLUTION", text):
        depth += 1 if marker == "BEGIN" else -1
        if depth not in (0, 1):
            raise AssertionError("solution markers are nested or unbalanced")
        pairs += marker == "END"
    assert depth == 0, "a BEGIN SOLUTION has no END SOLUTION"
    return pairs


@pytest.mark.parametrize("notebook", CONCEPT_NOTEBOOKS, ids=[p.name for p in CONCEPT_NOTEBOOKS])
def test_each_notebook_has_its_module_and_test_file(notebook):
    name = concept_name(notebook)
    module = REPO_ROOT / "vizlib" / f"{name}.py"
    assert module.exists(), f"{notebook.name} needs vizlib/{name}.py"
    assert (REPO_ROOT / "tests" / f"test_{name}.py").exists(), f"{notebook.name} needs tests/test_{name}.py"
    assert marker_pairs(module.read_text()) >= 1, f"vizlib/{name}.py marks no solution lines"


@pytest.mark.parametrize("module", MODULES, ids=MODULE_IDS)
def test_solution_markers_are_balanced(module):
    marker_pairs(module.read_text())


# Package files (__init__, __main__) are tested through the modules they gather or run.
CODE_MODULES = [p for p in MODULES if p.stem not in ("__init__", "__main__")]


@pytest.mark.parametrize("module", CODE_MODULES, ids=[p.relative_to(REPO_ROOT).as_posix() for p in CODE_MODULES])
def test_each_module_has_its_test_file(module):
    assert (REPO_ROOT / "tests" / f"test_{module.stem}.py").exists(), \
        f"{module.relative_to(REPO_ROOT)} needs tests/test_{module.stem}.py"


def test_marker_check_catches_mistakes():
    assert marker_pairs("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n") == 1
    with pytest.raises(AssertionError):
        marker_pairs("# BEGIN SOLUTION\n# BEGIN SOLUTION\n")
    with pytest.raises(AssertionError):
        marker_pairs("# BEGIN SOLUTION\n")
