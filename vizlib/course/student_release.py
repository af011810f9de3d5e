"""Cut a student release of the course for homework (`make student-release`).

    python -m vizlib.course.student_release build/student-release

Copies the course (vizlib with its data, tests, benchmarks, notebooks and the set-up files) without
what gives an answer away:

- every homework region, the lines between a BEGIN SOLUTION and an END SOLUTION marker
  comment in vizlib and in notebook code cells, becomes one line that raises
  NotImplementedError and names what to complete: the function (`saliency()`), the method
  (`ChannelProducts.forward()`) or the nested function and the one around it
  (`objective() inside class_objective()`). The marker comments stay, so a student sees
  where to write;
- in notebook markdown, the lines from a `<!-- BEGIN SOLUTION -->` line to an
  `<!-- END SOLUTION -->` line (the code of a region shown in the text, say) become the one
  line of `HIDDEN`, which says the instructor's copy shows them; the markers are HTML
  comments, invisible in the instructor's rendered notebook;
- notebook cells tagged `instructor` (cell metadata "tags"; answers to inline questions,
  solutions to exercises) are left out;
- only the folders and files in `RELEASED` are copied: a top-level `solutions/` folder of
  reference solutions never is.

The tests stay as they are: they grade the work. `pytest tests/test_saliency.py` in the
release fails until saliency's regions are written, and passes once they are right.
"""

import argparse
import ast
import re
import shutil
from dataclasses import astuple, dataclass
from pathlib import Path

import nbformat

from vizlib.config import REPO_ROOT

# What a student gets: the package (its data inside), its tests (and the benchmarks they cover), the
# notebooks and the set-up files; with setup.py and MANIFEST.in the release is itself an installable
# project whose wheel carries its own (emptied) notebooks, so it can be published like the course.
RELEASED = ("vizlib", "tests", "notebooks", "benchmarks", "Makefile", "README.md", "pyproject.toml", "setup.py",
            "MANIFEST.in", "constraints.txt", "environment.yml")
RELEASE_MARK = ".student-release"      # marks a folder this tool may replace
# Built so that this file's own text holds no marker a release would act on.
BEGIN, END = (f"# {word} SOLUTION" for word in ("BEGIN", "END"))
TEXT_BEGIN, TEXT_END = (f"<!-- {word} SOLUTION -->" for word in ("BEGIN", "END"))
INSTRUCTOR_TAG = "instructor"
HIDDEN = "*(The instructor's copy shows this part; here it is yours to work out.)*\n"
MAGIC = re.compile(r"^\s*[%!]")        # IPython lines that are not Python


@dataclass(frozen=True)
class Removed:
    """What a release took out: code regions emptied, markdown passages and instructor cells removed."""
    regions: int
    passages: int
    cells: int


def marked_regions(lines, where, markers=(BEGIN, END)):
    """[(begin, end)]: the indices of each pair of marker lines in `lines`, in order.

    A marker that opens inside another region, closes none or is never closed is a ValueError
    naming `where` and the line.
    """
    begin_marker, end_marker = markers
    regions, begin = [], None
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped == begin_marker:
            if begin is not None:
                raise ValueError(f"{where}: a homework region opens inside another (line {index + 1})")
            begin = index
        elif stripped == end_marker:
            if begin is None:
                raise ValueError(f"{where}: a homework region closes without opening (line {index + 1})")
            regions.append((begin, index))
            begin = None
    if begin is not None:
        raise ValueError(f"{where}: a homework region is never closed (line {begin + 1})")
    return regions


def region_owner(text, line):
    """What a student completes at 1-based `line` of `text`: "saliency()", "ChannelProducts.forward()",
    "objective() inside class_objective()"; None outside any def or where `text` is not Python.

    Only the defs whose bodies contain the line count, so a helper defined just above a
    region is never named in place of the function around it.
    """
    source = "".join("\n" if MAGIC.match(row) else row for row in text.splitlines(keepends=True))
    try:
        node = ast.parse(source)
    except SyntaxError:
        return None
    chain = []
    while True:
        inner = [child for child in ast.iter_child_nodes(node)
                 if hasattr(child, "end_lineno") and child.lineno <= line <= child.end_lineno]
        if not inner:
            break
        node = inner[0]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            chain.append(node)
    names, classes = [], []
    for definition in chain:      # classes prefix the method they hold; each def is one step outwards
        if isinstance(definition, ast.ClassDef):
            classes.append(definition.name)
        else:
            names.append(".".join(classes + [definition.name]) + "()")
            classes = []
    return " inside ".join(reversed(names)) or None


def stub_solutions(text, where):
    """(`text` with the body of every homework region replaced by a NotImplementedError stub, regions).

    `where` (e.g. "vizlib/saliency.py") goes into the message. Lines outside the regions,
    and the marker lines themselves, are kept as they are.
    """
    lines = text.splitlines(keepends=True)
    regions = marked_regions(lines, where)
    out, kept_from = [], 0
    for begin, end in regions:
        indent = lines[begin][:len(lines[begin]) - len(lines[begin].lstrip())]
        owner = region_owner(text, begin + 1)
        part = f"{owner} in {where}" if owner else where
        out += lines[kept_from:begin + 1]
        out.append(f'{indent}raise NotImplementedError("homework: write the marked lines of {part}")\n')
        kept_from = end
    return "".join(out + lines[kept_from:]), len(regions)


def hide_passages(text, where):
    """(`text` with each marked markdown passage, markers included, replaced by HIDDEN, passages)."""
    lines = text.splitlines(keepends=True)
    regions = marked_regions(lines, where, (TEXT_BEGIN, TEXT_END))
    out, kept_from = [], 0
    for begin, end in regions:
        out += lines[kept_from:begin] + [HIDDEN]
        kept_from = end + 1
    hidden = "".join(out + lines[kept_from:])
    return hidden if text.endswith("\n") else hidden.removesuffix("\n"), len(regions)


def release_notebook(notebook, name):
    """Turn an instructor's notebook (nbformat) into the student's, in place; returns Removed."""
    kept = [cell for cell in notebook.cells if INSTRUCTOR_TAG not in cell.get("metadata", {}).get("tags", [])]
    regions = passages = 0
    for number, cell in enumerate(kept):
        if cell.cell_type == "code":
            cell.source, count = stub_solutions(cell.source, f"{name}, cell {number}")
            regions += count
        elif cell.cell_type == "markdown":
            cell.source, count = hide_passages(cell.source, f"{name}, cell {number}")
            passages += count
    removed = Removed(regions, passages, len(notebook.cells) - len(kept))
    notebook.cells = kept
    return removed


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
    """Write the student release into `out_dir` (replacing an earlier release there); returns Removed."""
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
    totals = [0, 0, 0]
    for module in sorted((out_dir / "vizlib").rglob("*.py")):      # subpackages too
        text, count = stub_solutions(module.read_text(), module.relative_to(out_dir).as_posix())
        module.write_text(text)
        totals[0] += count
    for path in sorted((out_dir / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for index, count in enumerate(astuple(release_notebook(notebook, path.name))):
            totals[index] += count
        nbformat.write(notebook, path)
    return Removed(*totals)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(REPO_ROOT / "build" / "student-release"))
    args = parser.parse_args(argv)
    removed = build(args.out_dir)
    print(f"{removed.regions} homework regions emptied, {removed.passages} marked passages and "
          f"{removed.cells} instructor cells removed; the release is in {args.out_dir}")


if __name__ == "__main__":
    main()
