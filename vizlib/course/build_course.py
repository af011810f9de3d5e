"""Execute every notebook and write the course as a reader sees it (`make course`).

    python -m vizlib.course.build_course build/course [--fast]

Writes, per notebook, the executed .ipynb and an .html page, plus index.html
listing every notebook with its title and how long it took to run.
"""

import argparse
import html
import os
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import ExecutePreprocessor

from vizlib.config import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"


def notebook_title(notebook):
    """The first Markdown heading of a notebook, without its '#' marks."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "untitled"


def build(out_dir, *, notebooks_dir=NOTEBOOKS, timeout=600):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
            notebook, {"metadata": {"path": str(notebooks_dir)}}
        )
        seconds = time.perf_counter() - start
        nbformat.write(notebook, out_dir / path.name)
        page, _ = HTMLExporter().from_notebook_node(notebook)
        (out_dir / path.with_suffix(".html").name).write_text(page, encoding="utf-8")
        rows.append((path.stem, notebook_title(notebook), seconds))
        print(f"{path.name}: {seconds:.1f} s")
    items = "\n".join(
        f'<li><a href="{stem}.html">{html.escape(title)}</a> <small>({seconds:.0f} s)</small></li>'
        for stem, title, seconds in rows
    )
    (out_dir / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Visualizing and understanding CNNs</title>"
        f"<h1>Visualizing and understanding CNNs</h1><ol start='0'>\n{items}\n</ol>\n",
        encoding="utf-8",
    )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(REPO_ROOT / "build" / "course"))
    parser.add_argument("--fast", action="store_true", help="run in fast mode (VIZLIB_FAST=1)")
    args = parser.parse_args(argv)
    if args.fast:
        os.environ["VIZLIB_FAST"] = "1"  # the kernels inherit it
    build(args.out_dir)
    print(f"open {Path(args.out_dir) / 'index.html'}")


if __name__ == "__main__":
    main()
