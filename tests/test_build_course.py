import nbformat

from vizlib.course.build_course import build, notebook_title


def test_build_writes_executed_notebooks_pages_and_an_index(tmp_path):
    source = tmp_path / "notebooks"
    source.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# 00 A tiny tour"), nbformat.v4.new_code_cell("print(6 * 7)")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source / "00_tiny.ipynb")

    rows = build(tmp_path / "out", notebooks_dir=source)

    assert [row[:2] for row in rows] == [("00_tiny", "00 A tiny tour")]
    executed = nbformat.read(tmp_path / "out" / "00_tiny.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"].strip() == "42"
    assert "42" in (tmp_path / "out" / "00_tiny.html").read_text()
    assert 'href="00_tiny.html"' in (tmp_path / "out" / "index.html").read_text()


def test_title_is_the_first_heading():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("intro\n## Saliency maps\n# later")]
    assert notebook_title(notebook) == "Saliency maps"
