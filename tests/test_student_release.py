"""The student release: homework regions emptied, everything else kept, and the tests grade the work."""

import os
import shutil
import subprocess
import sys
import zipfile

import nbformat
import pytest

from vizlib.config import REPO_ROOT
from vizlib.course.student_release import BEGIN, END, RELEASE_MARK, build, stub_solutions

MODULE = f"""import math


def area(radius):
    \"\"\"Area of a disc.\"\"\"
    if radius < 0:
        raise ValueError("negative radius")
    {BEGIN}
    squared = radius ** 2
    return math.pi * squared
    {END}


def circumference(radius):
    return 2 * math.pi * radius
"""


def test_a_region_becomes_a_stub_naming_its_function_and_the_rest_is_kept():
    stubbed, regions = stub_solutions(MODULE, "demo.py")
    assert regions == 1
    assert stubbed.splitlines() == MODULE.splitlines()[:7] + [
        f"    {BEGIN}",
        '    raise NotImplementedError("homework: write the marked lines of area() in demo.py")',
        f"    {END}",
    ] + MODULE.splitlines()[11:]
    namespace = {}
    exec(compile(stubbed, "demo.py", "exec"), namespace)
    with pytest.raises(ValueError, match="negative"):              # the lines before the region still run
        namespace["area"](-1)
    with pytest.raises(NotImplementedError, match=r"area\(\) in demo.py"):
        namespace["area"](2)
    assert namespace["circumference"](1) == pytest.approx(6.283185307)
    assert stub_solutions("x = 1\n", "plain.py") == ("x = 1\n", 0)


@pytest.mark.parametrize("text, message", [
    (f"{BEGIN}\n{BEGIN}\n{END}\n", "opens inside another"),
    (f"{END}\n", "closes without opening"),
    (f"{BEGIN}\nx = 1\n", "never closed"),
])
def test_broken_markers_are_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        stub_solutions(text, "broken.py")


def test_the_release_empties_every_region_and_keeps_everything_else(tmp_path):
    out = tmp_path / "release"
    regions = build(out)
    sources = sorted((REPO_ROOT / "vizlib").rglob("*.py"))
    assert regions == sum(path.read_text().count(BEGIN) for path in sources) > 0
    for path in sources:
        original, released = path.read_text(), (out / path.relative_to(REPO_ROOT)).read_text()
        compile(released, path.name, "exec")
        assert released.count(BEGIN) == original.count(BEGIN) and released.count(END) == original.count(END)
        if BEGIN not in original:
            assert released == original
    for name in ("tests/test_saliency.py", "vizlib/data/course_model.pt", "Makefile", "pyproject.toml", "setup.py"):
        assert (out / name).read_bytes() == (REPO_ROOT / name).read_bytes()
    notebook = nbformat.read(out / "notebooks" / "06_saliency.ipynb", as_version=4)
    original = nbformat.read(REPO_ROOT / "notebooks" / "06_saliency.ipynb", as_version=4)
    assert [cell.source for cell in notebook.cells] == [cell.source for cell in original.cells]
    assert build(out) == regions                                     # an earlier release is replaced


def test_the_release_is_an_installable_project_with_the_same_commands(tmp_path):
    out = tmp_path / "release"
    build(out)
    got = subprocess.run([sys.executable, "-m", "vizlib.course", "get", str(tmp_path / "mine")], cwd=out,
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    for path in (out / "notebooks").glob("*.ipynb"):                # the release's notebooks, not the course's
        assert (tmp_path / "mine" / path.name).read_bytes() == path.read_bytes()
    wheels = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet",
                            "-w", str(wheels), str(out)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    with zipfile.ZipFile(next(wheels.glob("vizlib-*.whl"))) as wheel:
        names = wheel.namelist()
        assert "vizlib/data/course_model.pt" in names
        released = wheel.read("vizlib/course/notebooks/06_saliency.ipynb")
    assert released == (out / "notebooks" / "06_saliency.ipynb").read_bytes()


def test_regions_in_notebook_cells_are_emptied_too(tmp_path):
    source = tmp_path / "course"
    (source / "vizlib").mkdir(parents=True)
    (source / "vizlib" / "demo.py").write_text(MODULE)
    (source / "notebooks").mkdir()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"Write the lines between the markers:\n{BEGIN}\nx = 1\n{END}"),
        nbformat.v4.new_code_cell(f"def double(x):\n    {BEGIN}\n    return 2 * x\n    {END}"),
    ])
    nbformat.write(notebook, source / "notebooks" / "01_demo.ipynb")
    assert build(tmp_path / "release", source=source) == 2
    cells = nbformat.read(tmp_path / "release" / "notebooks" / "01_demo.ipynb", as_version=4).cells
    assert cells[0].source == notebook.cells[0].source                    # markdown is left alone
    assert cells[1].source.splitlines() == [
        "def double(x):", f"    {BEGIN}",
        '    raise NotImplementedError("homework: write the marked lines of double() in 01_demo.ipynb, cell 1")',
        f"    {END}",
    ]


def test_the_release_refuses_to_overwrite_the_course_or_a_foreign_folder(tmp_path):
    for target in (REPO_ROOT, REPO_ROOT / "vizlib", REPO_ROOT / "notebooks" / "x", REPO_ROOT.parent):
        with pytest.raises(ValueError, match="overwrite the course"):
            build(target)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an earlier student release"):
        build(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me" and not (foreign / RELEASE_MARK).exists()


def _pytest_in(folder, *args):
    env = {**os.environ, "VIZLIB_FAST": "1", "VIZLIB_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_the_tests_grade_a_students_work(tmp_path):
    out = tmp_path / "release"
    build(out)
    tests = ["tests/test_texture_sampling.py", "-k", "windowed_ssd_equals or strict_mode_without_randomness"]
    before = _pytest_in(out, *tests)
    assert before.returncode != 0 and "NotImplementedError: homework" in before.stdout
    # the student writes the marked lines (here: the course's own answer) and the same tests pass
    shutil.copy(REPO_ROOT / "vizlib" / "texture_sampling.py", out / "vizlib" / "texture_sampling.py")
    after = _pytest_in(out, *tests)
    assert after.returncode == 0, after.stdout[-2000:]
