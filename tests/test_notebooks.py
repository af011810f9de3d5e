"""`python -m vizlib.course get DEST`: the numbered notebooks into a folder, a student's edits never lost."""

import subprocess
import sys

import pytest

from vizlib.config import REPO_ROOT
from vizlib.course import notebooks
from vizlib.course.notebooks import MARKER, get

NUMBERED = sorted(path.name for path in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_writes_every_numbered_notebook_and_a_marker(tmp_path):
    dest = tmp_path / "new" / "course"
    written, kept = get(dest)
    assert written == NUMBERED and kept == [] and len(NUMBERED) >= 15
    assert sorted(path.name for path in dest.iterdir()) == sorted(NUMBERED + [MARKER])
    for name in NUMBERED:
        assert (dest / name).read_bytes() == (REPO_ROOT / "notebooks" / name).read_bytes()


def test_over_an_earlier_copy_only_missing_notebooks_are_added_unless_overwrite(tmp_path):
    get(tmp_path)
    edited, removed = tmp_path / NUMBERED[1], tmp_path / NUMBERED[2]
    edited.write_text("a student's work")
    removed.unlink()
    (tmp_path / "notes.txt").write_text("mine")
    written, kept = get(tmp_path)
    assert written == [removed.name] and removed.exists()
    assert edited.read_text() == "a student's work" and edited.name in kept
    assert (tmp_path / "notes.txt").read_text() == "mine"
    written, kept = get(tmp_path, overwrite=True)
    assert written == NUMBERED and kept == []
    assert edited.read_bytes() == (REPO_ROOT / "notebooks" / edited.name).read_bytes()


def test_a_non_empty_folder_without_the_marker_is_refused_and_left_alone(tmp_path):
    (tmp_path / "thesis.tex").write_text("keep me")
    with pytest.raises(ValueError, match=f"not empty.*{MARKER}"):
        get(tmp_path)
    with pytest.raises(ValueError, match="not empty"):
        get(tmp_path, overwrite=True)
    assert [path.name for path in tmp_path.iterdir()] == ["thesis.tex"]


def test_a_file_as_destination_is_a_clear_error(tmp_path):
    target = tmp_path / "course.ipynb"
    target.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        get(target)
    assert target.read_text() == "x"


def test_in_a_clone_the_notebooks_come_from_notebooks_itself():
    assert notebooks.source() == REPO_ROOT / "notebooks"     # the wheel's copy is tested in test_install.py


def test_the_command_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "vizlib.course", *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=60)

    done = run("get", str(tmp_path / "c"))      # each run starts python and torch: two runs only
    assert done.returncode == 0 and f"{len(NUMBERED)} notebooks written" in done.stdout
    (tmp_path / "file").write_text("x")
    refused = run("get", str(tmp_path / "file"))
    assert refused.returncode == 2 and "error:" in refused.stderr and "is a file" in refused.stderr
