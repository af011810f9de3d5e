"""Cut a student release of the course for homework (`make student-release`).

    python -m vizlib.course.student_release build/student-release

Copies the course (vizlib with its data, tests, benchmarks, notebooks and the set-up files) and
empties every homework region: the lines between a BEGIN SOLUTION and an END SOLUTION
marker comment, in vizlib and in notebook code cells, become one line that raises
NotImplementedError and names the function to complete. The markers stay, so a
student sees where to write, and the tests stay as they are: they grade the work.
`pytest tests/test_saliency.py` in the release fails until saliency's regions are
written, and passes once they are right.
"""

import argparse
import re
import shutil
from pathlib import Path

import nbformat

from vizlib.config import REPO_ROOT

# What a student gets: the package (its data inside), its tests (and the benchmarks they cover), the
# notebooks and the set-up files; with setup.py and MANIFEST.in the release is itself an installable
# project whose wheel carries its own (emptied) notebooks, so it can be published like the course.
RELEASED = ("vizlib", "tests", "notebooks", "benchmarks", "Makefile", "README.md", "pyproject.toml", "setup.py",
            "MANIFEST.in", "constraints.txt", "environment.yml")
RELEASE_MARK = ".student-release"      # marks a folder this tool may replace
# Built so that this file's own text holds no marker a release would empty.
BEGIN, END = (f"# {word} SOLUTION" for word in ("BEGIN", "END"))
DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")


def _enclosing_function(lines, index, indent):
    """The name of the nearest def above lines[index] that is indented less than `indent`."""
    for line in reversed(lines[:index]):
        match = DEF.match(line)
        if match and len(match.group(1)) < indent:
            return match.group(2)
    return None


def stub_solutions(text, where):
    """(`text` with the body of every homework region replaced by a NotImplementedError stub, regions).

    `where` (e.g. "vizlib/saliency.py") goes into the message. Lines outside the regions,
    and the marker lines themselves, are kept as they are.
    """
    lines = text.splitlines(keepends=True)
    out, inside, regions = [], False, 0
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}: a homework region opens inside another (line {index + 1})")
            inside, regions = True, regions + 1
            indent = len(line) - len(line.lstrip())
            function = _enclosing_function(lines, index, indent)
            part = f"{function}() in {where}" if function else where
            out.append(line)
            out.append(" " * indent + f'raise NotImplementedError("homework: write the marked lines of {part}")\n')
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where}: a homework region closes without opening (line {index + 1})")
            inside = False
            out.append(line)
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: a homework region is never closed")
    return "".join(out), regions


def _check_target(out_dir, source):
    """Refuse a target that would overwrite the course itself or a folder that is not an earlier release."""
    target, root = out_dir.resolve(), source.resolve()
    inside_course = any(target == root / name or root / name in target.parents for name in RELEASED)
    if target == root or target in root.parents or inside_course:
        raise ValueError(f"{out_dir} would overwrite the course itself; write the release elsewhere, "
                         f"e.g. {source / 'build' / 'student-release'}")
    if target.exists() and any(target.iterdir()) and not (target / RELEASE_MARK).exists():
        raise ValueError(f"{out_dir} exists and is not an earlier student release; give a new or empty folder")


def build(out_dir, *, source=REPO_ROOT):
    """Write the student release into `out_dir` (replacing an earlier release there); returns
    the number of homework regions emptied."""
    source, out_dir = Path(source), Path(out_dir)
    _check_target(out_dir, source)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / RELEASE_MARK).write_text("made by python -m vizlib.course.student_release; replaced when run again\n")
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.egg-info")
    for name in RELEASED:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, out_dir / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, out_dir / name)
    regions = 0
    for module in sorted((out_dir / "vizlib").rglob("*.py")):      # subpackages too
        text, count = stub_solutions(module.read_text(), module.relative_to(out_dir).as_posix())
        module.write_text(text)
        regions += count
    for path in sorted((out_dir / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for number, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                cell.source, count = stub_solutions(cell.source, f"{path.name}, cell {number}")
                regions += count
        nbformat.write(notebook, path)
    return regions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(REPO_ROOT / "build" / "student-release"))
    args = parser.parse_args(argv)
    regions = build(args.out_dir)
    print(f"{regions} homework regions emptied; the release is in {args.out_dir}")


if __name__ == "__main__":
    main()
