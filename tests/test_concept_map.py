"""Notebook = module = test file: notebooks/NN_name.ipynb, vizlib/name.py, tests/test_name.py.

Every other module, core or course tool (vizlib/course/name.py), has its tests/test_name.py too.

Each concept module marks the lines a student writes in homework between
`# BEGIN SOLUTION` and `# END SOLUTION`, so a student release can be cut from it, and
the test file of every module with such regions names, for each, where its expected
values come from (its oracle), so that no grading test merely restates the answer.
"""

import ast
import re

import pytest

from vizlib.config import REPO_ROOT
from vizlib.course.student_release import marked_regions, region_owner

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


def oracles(test_file):
    """{region: oracle} from the bullets under a line "Oracles ...:" in a test file's module docstring:
    "- name(), other(): where their expected values come from"."""
    lines = (ast.get_docstring(ast.parse(test_file.read_text())) or "").splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("Oracles") and line.endswith(":")]
    named, last = {}, None
    for line in lines[header[0] + 1:] if header else []:
        if not line.strip():
            break
        if line.startswith("- "):
            names, _, oracle = line[2:].partition(": ")
            last = names.split(", ")
            named.update(dict.fromkeys(last, oracle))
        elif last and line.startswith("  "):                     # an oracle continued on the next line
            named.update({name: f"{named[name]} {line.strip()}" for name in last})
    return named


REGION_MODULES = [p for p in CODE_MODULES if marker_pairs(p.read_text())]


@pytest.mark.parametrize("module", REGION_MODULES, ids=[p.stem for p in REGION_MODULES])
def test_the_tests_of_each_homework_region_name_its_oracle(module):
    text = module.read_text()
    regions = {region_owner(text, begin + 1) for begin, _ in marked_regions(text.splitlines(), module.name)}
    named = oracles(REPO_ROOT / "tests" / f"test_{module.stem}.py")
    assert set(named) == regions, \
        f"tests/test_{module.stem}.py's docstring: list exactly {sorted(regions)} under Oracles"
    for region, oracle in named.items():
        assert len(oracle.split()) >= 3, f"say where the expected values of {region} come from"


def test_oracle_lists_are_read_bullet_by_bullet(tmp_path):
    test_file = tmp_path / "test_demo.py"
    test_file.write_text('"""Demo.\n\nOracles (what for):\n- f(), g() inside h(): a loop\n  written here.\n'
                         '- C.m(): scipy\n\nMore text: not an oracle.\n"""\n')
    assert oracles(test_file) == {"f()": "a loop written here.", "g() inside h()": "a loop written here.",
                                  "C.m()": "scipy"}
    test_file.write_text("import os\n")
    assert oracles(test_file) == {}


def test_marker_check_catches_mistakes():
    assert marker_pairs("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n") == 1
    with pytest.raises(AssertionError):
        marker_pairs("# BEGIN SOLUTION\n# BEGIN SOLUTION\n")
    with pytest.raises(AssertionError):
        marker_pairs("# BEGIN SOLUTION\n")
