"""The student release: homework regions emptied, instructor-only text and cells removed, everything else
kept. That its tests grade a student's work is tested with the grader (tests/test_grade.py)."""

import subprocess
import sys
import zipfile

import nbformat
import pytest

from vizlib.config import REPO_ROOT
from vizlib.course.student_release import (
    BEGIN, END, HIDDEN, RELEASE_MARK, TEXT_BEGIN, TEXT_END, Removed, build, hide_passages, marked_regions,
    stub_solutions,
)

# They compare the release with the instructor's course; a student's copy has nothing to compare with.
pytestmark = pytest.mark.skipif((REPO_ROOT / RELEASE_MARK).exists(), reason="needs the instructor's course")

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


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """One release of the course for the tests that only read it."""
    out = tmp_path_factory.mktemp("course") / "release"
    return out, build(out)


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


NAMED = f"""def occlusion(model, images):
    def evaluate(batch):
        return model(batch)

    drops = []
    for batch in images:
        {BEGIN}
        drops.append(evaluate(batch))
        {END}
    return drops


def class_objective(model):
    def objective(images):
        {BEGIN}
        return -model(images)
        {END}

    return objective


class ChannelProducts:
    def forward(self, flat):
        {BEGIN}
        return flat * flat
        {END}
"""


def test_stubs_name_the_public_function_the_nested_one_and_the_method():
    stubbed, regions = stub_solutions(NAMED, "demo.py")
    messages = [line.strip() for line in stubbed.splitlines() if "NotImplementedError" in line]
    assert regions == 3 and messages == [
        f'raise NotImplementedError("homework: write the marked lines of {part} in demo.py")'
        for part in ("occlusion()", "objective() inside class_objective()", "ChannelProducts.forward()")
    ]
    namespace = {}
    exec(compile(stubbed, "demo.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"objective\(\) inside class_objective\(\)"):
        namespace["class_objective"](abs)(1)


@pytest.mark.parametrize("text, message", [
    (f"{BEGIN}\n{BEGIN}\n{END}\n", "opens inside another"),
    (f"{END}\n", "closes without opening"),
    (f"{BEGIN}\nx = 1\n", "never closed"),
])
def test_broken_markers_are_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        stub_solutions(text, "broken.py")
    markdown = text.replace(BEGIN, TEXT_BEGIN).replace(END, TEXT_END)
    with pytest.raises(ValueError, match=f"broken.md: a homework region .*{message}"):
        hide_passages(markdown, "broken.md")


def test_the_release_empties_every_region_and_keeps_everything_else(release):
    out, removed = release
    sources = sorted((REPO_ROOT / "vizlib").rglob("*.py"))
    assert removed.regions == sum(path.read_text().count(BEGIN) for path in sources) > 0
    for path in sources:
        original, released = path.read_text(), (out / path.relative_to(REPO_ROOT)).read_text()
        compile(released, path.name, "exec")
        assert released.count(BEGIN) == original.count(BEGIN) and released.count(END) == original.count(END)
        if BEGIN not in original:
            assert released == original
    for name in ("tests/test_saliency.py", "vizlib/data/course_model.pt", "Makefile", "pyproject.toml"):
        assert (out / name).read_bytes() == (REPO_ROOT / name).read_bytes()
    stubs = {path.name: path.read_text() for path in (out / "vizlib").glob("*.py")}
    for module, part in (("occlusion.py", "occlusion()"),
                         ("gradient_ascent.py", "objective() inside class_objective()"),
                         ("gram_texture.py", "ChannelProducts.forward()")):
        assert f"write the marked lines of {part} in vizlib/{module}" in stubs[module]
    assert "of evaluate()" not in stubs["occlusion.py"]             # the helper defined above the region


def test_marked_text_is_hidden_in_the_release_and_kept_in_the_course(release):
    out, removed = release
    passages = instructor_cells = 0
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        everything = nbformat.read(path, as_version=4).cells
        course = [cell for cell in everything if "instructor" not in cell.metadata.get("tags", [])]
        instructor_cells += len(everything) - len(course)
        student = nbformat.read(out / "notebooks" / path.name, as_version=4).cells
        assert len(student) == len(course)                 # exactly the instructor's cells are gone
        for mine, theirs in zip(course, student):
            if mine.cell_type == "markdown":
                passages += len(marked_regions(mine.source.splitlines(), path.name, (TEXT_BEGIN, TEXT_END)))
                assert TEXT_BEGIN not in theirs.source and TEXT_END not in theirs.source
            elif BEGIN not in mine.source:
                assert theirs.source == mine.source
    assert removed.passages == passages >= 7 and removed.cells == instructor_cells >= 2 * 16
    shown = nbformat.read(REPO_ROOT / "notebooks" / "06_saliency.ipynb", as_version=4).cells[1].source
    hidden = nbformat.read(out / "notebooks" / "06_saliency.ipynb", as_version=4).cells[1].source
    assert "grad.abs().amax(dim=1)" in shown and "grad.abs().amax(dim=1)" not in hidden and HIDDEN.strip() in hidden


def _text_files(place):
    """(path, text) of every text file at or under `place`; a notebook's text is its cells' sources."""
    for path in sorted(place.rglob("*")) if place.is_dir() else [place]:
        if path.suffix == ".ipynb":
            yield path, "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        elif path.is_file():
            try:
                yield path, path.read_text()
            except UnicodeDecodeError:                              # weights and other binary data
                continue


def _region_bodies(text, where):
    """The body of each homework region in `text`, as a list of lines."""
    lines = text.splitlines()
    return [lines[begin + 1:end] for begin, end in marked_regions(lines, where)]


def _normalised_texts(root, names):
    return [(path, " ".join(text.split())) for name in names for path, text in _text_files(root / name)]


def test_no_line_of_a_homework_region_is_left_in_the_release(release):
    """Every line of every region's body in the course (whitespace normalised, 25 characters or more) is
    searched for in every text file of the release's notebooks, README, vizlib, tests and benchmarks."""
    out, removed = release
    bodies = [body for path, text in _text_files(REPO_ROOT / "vizlib") if path.suffix == ".py"
              for body in _region_bodies(text, path.name)]
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        bodies += [body for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
                   for body in _region_bodies(cell.source, path.name)]
    answers = {" ".join(line.split()) for body in bodies for line in body}
    answers = {line for line in answers if len(line) >= 25}
    places = ("notebooks", "vizlib", "tests", "benchmarks", "README.md")
    searched = _normalised_texts(out, places)
    leaks = [f"{path.relative_to(out)}: {line}" for path, text in searched for line in answers if line in text]
    print(f"{len(bodies)} regions, {len(answers)} lines checked, {len(searched)} files searched")
    assert len(bodies) == removed.regions and len(answers) > 2 * len(bodies) and len(searched) > 50
    assert leaks == []
    # the same search finds the lines the instructor's notebooks show
    shown = {line for path, text in _normalised_texts(REPO_ROOT, ["notebooks"]) for line in answers if line in text}
    assert len(shown) >= 5


def test_instructor_text_cells_and_solutions_stay_out_of_the_release(tmp_path):
    source = tmp_path / "course"
    (source / "vizlib").mkdir(parents=True)
    (source / "vizlib" / "demo.py").write_text(MODULE)
    (source / "solutions").mkdir()
    (source / "solutions" / "01_demo.py").write_text("print('the answer')\n")
    (source / "notebooks").mkdir()
    instructor = {"tags": ["instructor"]}
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"The heart of it:\n{TEXT_BEGIN}\n```python\nreturn 2 * x\n```\n{TEXT_END}\n"
                                      f"Now run it. Markers in text are only text: {BEGIN}"),
        nbformat.v4.new_markdown_cell("**Answer:** because the ReLU was off.", metadata=instructor),
        nbformat.v4.new_code_cell("print(solved_exercise())", metadata={"tags": ["instructor", "other"]}),
        nbformat.v4.new_code_cell(f"def double(x):\n    {BEGIN}\n    return 2 * x\n    {END}",
                                  metadata={"tags": ["other"]}),
    ])
    nbformat.write(notebook, source / "notebooks" / "01_demo.ipynb")
    out = tmp_path / "release"
    assert build(out, source=source) == Removed(regions=2, passages=1, cells=2)
    cells = nbformat.read(out / "notebooks" / "01_demo.ipynb", as_version=4).cells
    assert [cell.source for cell in cells] == [
        f"The heart of it:\n{HIDDEN}Now run it. Markers in text are only text: {BEGIN}",
        f"def double(x):\n    {BEGIN}\n"
        '    raise NotImplementedError("homework: write the marked lines of double() in 01_demo.ipynb, cell 1")\n'
        f"    {END}",
    ]
    assert not (out / "solutions").exists() and sorted(p.name for p in out.iterdir()) == [
        RELEASE_MARK, "notebooks", "vizlib"]
    assert hide_passages("no markers\n", "x.md") == ("no markers\n", 0)


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
