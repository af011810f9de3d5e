"""The course outside its clone: a built wheel installed into a fresh environment, and the first
cell of every notebook that installs the course where it is missing (Colab, Kaggle, a JupyterHub).

Offline throughout: the fresh environments reuse this environment's packages (torch, nbval, ...)
through a .pth file, with vizlib itself left out, and pip never reaches an index.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from vizlib.config import REPO_ROOT
from vizlib.course.notebooks import MARKER

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# What a wheel is built from; a copy, so that nothing stale in the clone's build/ can slip in.
PROJECT_FILES = ("vizlib", "notebooks", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
INSTALL_VARIABLE = "VIZLIB_INSTALL"


def first_code_cell(path):
    return next(cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code")


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The course's wheel, built once, the way the README's instructions build it."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
    for name in PROJECT_FILES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet", "-w", str(out),
          str(source)])
    (built,) = out.glob("vizlib-*.whl")
    return built


@pytest.fixture(scope="module")
def shared_packages(tmp_path_factory):
    """This environment's installed packages minus vizlib, as folders of links a .pth file can name."""
    folders = []
    for index, site in enumerate(p for p in dict.fromkeys(sys.path) if p.endswith(("site-packages", "dist-packages"))):
        if not Path(site).is_dir():
            continue
        overlay = tmp_path_factory.mktemp(f"shared{index}")
        for entry in Path(site).iterdir():
            # no vizlib (nor its editable-install hooks), and no .pth start-up code
            if not entry.name.lower().startswith(("vizlib", "__editable__")) and entry.suffix != ".pth":
                (overlay / entry.name).symlink_to(entry)
        folders.append(overlay)
    return folders


def fresh_environment(root, shared_packages):
    """A new virtual environment outside the clone: this environment's packages, no vizlib, no index."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "shared-packages.pth").write_text("".join(f"{folder}\n" for folder in shared_packages))
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", INSTALL_VARIABLE)}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", VIZLIB_FAST="1", VIZLIB_PROGRESS="0",
               MPLBACKEND="Agg")
    assert _run([str(python), "-c", "import importlib.util as u; print(u.find_spec('vizlib'))"],
                env=env, cwd=root).stdout.strip() == "None", "vizlib leaks into the fresh environment"
    return python, env


def vizlib_file(python, env, cwd):
    return Path(_run([str(python), "-c", "import vizlib; print(vizlib.__file__)"], env=env, cwd=cwd).stdout.strip())


def run_notebooks(python, env, folder, *names):
    """nbval on these notebooks in `folder`, with the fresh environment's kernel; returns seconds."""
    start = time.perf_counter()
    _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
          "--rootdir", str(folder), *names], env=env, cwd=folder)
    return time.perf_counter() - start


def test_the_wheel_carries_the_package_its_data_and_the_notebooks(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("course_model.pt", "course_model.json", "style_net_hubble_deep_field.pt"):
        assert f"vizlib/data/{name}" in names
    assert {"vizlib/course/__main__.py", "vizlib/course/notebooks.py"} <= names
    assert {f"vizlib/course/notebooks/{path.name}" for path in NOTEBOOKS} == {
        name for name in names if name.startswith("vizlib/course/notebooks/")}
    assert not any(name.startswith(("data/", "notebooks/", "tests/")) for name in names)
    assert wheel.stat().st_size < 4e6, f"the wheel grew to {wheel.stat().st_size / 1e6:.1f} MB"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not any("jupyterlab" in line and "extra ==" not in line for line in requires)


def test_installed_outside_the_clone_the_course_runs(wheel, shared_packages, tmp_path):
    python, env = fresh_environment(tmp_path / "venv", shared_packages)
    _run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], env=env)
    assert (tmp_path / "venv") in vizlib_file(python, env, tmp_path).parents
    course = tmp_path / "my course"
    _run([str(python), "-m", "vizlib.course", "get", str(course)], env=env, cwd=tmp_path)
    assert sorted(p.name for p in course.iterdir()) == sorted([MARKER] + [p.name for p in NOTEBOOKS])
    seconds = run_notebooks(python, env, course, "00_setup_and_tour.ipynb", "06_saliency.ipynb")
    print(f"00 and 06 from the installed wheel: {seconds:.0f} s")


def test_the_install_cell_is_the_same_first_code_cell_in_every_notebook():
    cells = {path.name: first_code_cell(path) for path in NOTEBOOKS}
    reference = cells[NOTEBOOKS[0].name]["source"]
    assert any("import vizlib" in line for line in reference) and INSTALL_VARIABLE in "".join(reference)
    for name, cell in cells.items():
        assert cell["source"] == reference, f"{name}: the install cell differs from {NOTEBOOKS[0].name}'s"
    assert not any("jupyterlab" in line or "--no-deps" in line for line in reference)


def install_cell():
    return "".join(first_code_cell(NOTEBOOKS[0])["source"])


def test_where_vizlib_imports_the_install_cell_does_nothing(monkeypatch):
    monkeypatch.setenv(INSTALL_VARIABLE, "/no/such/course.whl")     # would fail, were it used
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append(args))
    exec(compile(install_cell(), "install cell", "exec"), {})
    assert calls == []


def test_the_install_cell_installs_the_course_and_the_notebook_runs(wheel, shared_packages, tmp_path):
    python, env = fresh_environment(tmp_path / "venv", shared_packages)
    torch_before = _run([str(python), "-c", "import torch; print(torch.__file__)"], env=env).stdout
    # as a student on Colab would: only the notebook, the variable set, nothing installed yet
    folder = tmp_path / "colab"
    folder.mkdir()
    shutil.copy(NOTEBOOKS[0], folder)
    env[INSTALL_VARIABLE] = str(wheel)
    seconds = run_notebooks(python, env, folder, NOTEBOOKS[0].name)
    print(f"{NOTEBOOKS[0].name}, installing the course in its first cell: {seconds:.0f} s")
    assert (tmp_path / "venv") in vizlib_file(python, env, folder).parents
    torch_after = _run([str(python), "-c", "import torch; print(torch.__file__)"], env=env).stdout
    assert torch_after == torch_before and (tmp_path / "venv") not in Path(torch_after).parents
    installed = _run([str(python), "-m", "pip", "list", "--path", sysconfig.get_paths(vars={"base": str(
        tmp_path / "venv")})["purelib"], "--format", "freeze"], env=env).stdout
    assert "vizlib" in installed and "jupyterlab" not in installed.lower()


@pytest.mark.parametrize("value", ["/no/such/folder/vizlib-0.1.0-py3-none-any.whl", None])
def test_an_install_variable_that_points_nowhere_is_a_clear_error(value, shared_packages, tmp_path):
    python, env = fresh_environment(tmp_path / "venv", shared_packages)
    if value is not None:
        env[INSTALL_VARIABLE] = value                # else the cell's placeholder default
    done = subprocess.run([str(python), "-c", install_cell()], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    error = done.stderr.strip().splitlines()
    message = next(line for line in error if line.startswith("RuntimeError"))
    assert INSTALL_VARIABLE in message and (value is None or value in message)
