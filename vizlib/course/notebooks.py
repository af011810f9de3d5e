"""Write the course's numbered notebooks into a folder, e.g. on Colab or a JupyterHub.

An installed wheel carries a copy of notebooks/ made when it was built (setup.py); in a
clone, notebooks/ itself is read. The folder gets a marker file, so that a later call
knows the folder is its own: it then adds only the notebooks that are missing, and a
student's edited notebooks are kept unless `overwrite` is asked for.
"""

from importlib import resources
from pathlib import Path

MARKER = ".vizlib-notebooks"
PATTERN = "[0-9][0-9]_*.ipynb"


def source():
    """Where the notebooks come from: the wheel's copy, else the clone's notebooks/."""
    packaged = resources.files("vizlib.course") / "notebooks"
    if packaged.is_dir():
        return packaged
    clone = Path(__file__).resolve().parents[2] / "notebooks"
    if clone.is_dir():
        return clone
    raise FileNotFoundError(f"no notebooks found: neither {packaged} (an installed wheel) nor {clone} (a clone)")


def get(dest, *, overwrite=False):
    """Write the numbered notebooks into `dest`; returns (names written, names kept as they were)."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{dest} is a file, not a folder; give a folder to write the notebooks into")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).exists():
        raise ValueError(f"{dest} is not empty and holds no earlier copy of the course ({MARKER} is missing); "
                         "give a new or empty folder")
    notebooks = sorted((item for item in source().iterdir() if Path(item.name).match(PATTERN)),
                       key=lambda item: item.name)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MARKER).write_text("notebooks of the CNN visualisation course, written by "
                               "`python -m vizlib.course get`; running it again adds the missing ones\n")
    written, kept = [], []
    for notebook in notebooks:
        target = dest / notebook.name
        if target.exists() and not overwrite:
            kept.append(notebook.name)
            continue
        target.write_bytes(notebook.read_bytes())
        written.append(notebook.name)
    return written, kept
