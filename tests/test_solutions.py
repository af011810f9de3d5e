"""Inline questions and reference solutions, the instructor's part of the course.

Checks:
- every reference solution in ``solutions/NN_topic.py`` runs: each ``exercise_K`` function is one test
  case (fast mode), and each ends with an assert of the finding its worked answer states;
- every concept notebook (01 on) has its solutions file and asks at least two inline questions, each
  ``**Inline question`` markdown cell directly followed by an instructor-tagged ``**Answer.**`` cell, and its
  Exercises cell is directly followed by an instructor-tagged ``**Answers to the exercises (instructor).**`` cell;
- every ``exercise_K`` names an exercise that its notebook's Exercises cell has.

One notebook's solutions at teaching quality: ``VIZLIB_FAST=0 pytest tests/test_solutions.py -k 14_style_transfer``.
"""

import importlib.util
import json
import re

import pytest

from vizlib.config import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
SOLUTION_DIR = REPO_ROOT / "solutions"
SOLUTION_FILES = sorted(SOLUTION_DIR.glob("[0-9][0-9]_*.py"))

# Every concept notebook (all but the tour, 00) carries inline questions and exercise answers.
CONCEPTS = [path.name[:2] for path in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")) if path.name[:2] != "00"]


def load_solutions(path):
    spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exercise_names(path):
    """The exercise_K functions of a solutions file, found from its text so that collection imports nothing."""
    return re.findall(r"^def (exercise_\d+)\(\):", path.read_text(), flags=re.M)


CASES = [(path, name) for path in SOLUTION_FILES for name in exercise_names(path)]


@pytest.mark.parametrize("path, name", CASES, ids=[f"{p.stem}.{n}" for p, n in CASES])
def test_reference_solution_runs_and_its_finding_holds(path, name):
    getattr(load_solutions(path), name)()


def notebook_path(number):
    found = sorted(NOTEBOOK_DIR.glob(f"{number}_*.ipynb"))
    assert len(found) == 1, f"expected one notebook numbered {number}, found {found}"
    return found[0]


def cells(path):
    return json.loads(path.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


def is_instructor(cell):
    return "instructor" in cell.get("metadata", {}).get("tags", [])


def exercises_cell_index(notebook_cells):
    found = [i for i, cell in enumerate(notebook_cells)
             if cell["cell_type"] == "markdown" and re.search(r"^## Exercises\s*$", text(cell), flags=re.M)]
    assert len(found) == 1, f"expected one Exercises cell, found {len(found)}"
    return found[0]


def exercise_numbers(source):
    """The numbers of the exercises listed under the '## Exercises' heading, up to the next heading."""
    section = re.split(r"^## Exercises\s*$", source, flags=re.M)[1]
    section = re.split(r"^#", section, flags=re.M)[0]
    return {int(number) for number in re.findall(r"^(\d+)\.\s", section, flags=re.M)}


def test_every_concept_notebook_has_its_solutions_file():
    assert len(CONCEPTS) >= 19
    assert [path.stem[:2] for path in SOLUTION_FILES] == CONCEPTS
    assert [path.stem for path in SOLUTION_FILES] == [notebook_path(number).stem for number in CONCEPTS]


@pytest.mark.parametrize("number", CONCEPTS)
def test_inline_questions_are_followed_by_instructor_answers(number):
    notebook_cells = cells(notebook_path(number))
    questions = [i for i, cell in enumerate(notebook_cells)
                 if cell["cell_type"] == "markdown" and text(cell).lstrip().startswith("**Inline question")]
    assert len(questions) >= 2, f"notebook {number} asks {len(questions)} inline questions, at least 2 expected"
    for i in questions:
        assert not is_instructor(notebook_cells[i]), f"notebook {number}: question in cell {i} is instructor-only"
        assert i + 1 < len(notebook_cells), f"notebook {number}: question in cell {i} has no answer after it"
        answer = notebook_cells[i + 1]
        assert answer["cell_type"] == "markdown" and is_instructor(answer), (
            f"notebook {number}: the cell after the question in cell {i} is not an instructor-tagged markdown cell")
        assert text(answer).lstrip().startswith("**Answer.**"), (
            f"notebook {number}: the cell after the question in cell {i} does not start with **Answer.**")


@pytest.mark.parametrize("number", CONCEPTS)
def test_exercises_are_followed_by_instructor_answers(number):
    notebook_cells = cells(notebook_path(number))
    i = exercises_cell_index(notebook_cells)
    assert not is_instructor(notebook_cells[i])
    assert i + 1 < len(notebook_cells), f"notebook {number}: nothing after the Exercises cell"
    answers = notebook_cells[i + 1]
    assert answers["cell_type"] == "markdown" and is_instructor(answers), (
        f"notebook {number}: the cell after the Exercises cell is not an instructor-tagged markdown cell")
    assert text(answers).lstrip().startswith("**Answers to the exercises (instructor).**")


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=[p.stem for p in SOLUTION_FILES])
def test_solutions_name_exercises_of_their_notebook(path):
    notebook = NOTEBOOK_DIR / f"{path.stem}.ipynb"
    assert notebook.exists(), f"{path.name} has no notebook {notebook.name}"
    notebook_cells = cells(notebook)
    numbers = exercise_numbers(text(notebook_cells[exercises_cell_index(notebook_cells)]))
    for name in exercise_names(path):
        assert int(name.split("_")[1]) in numbers, (
            f"{path.name}: {name} names no exercise of {notebook.name} (it has {sorted(numbers)})")
