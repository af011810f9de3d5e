"""The wheel carries a copy of notebooks/, made when it is built.

notebooks/ stays the one source: `python -m vizlib.course get DEST` reads this copy in an
installed wheel and notebooks/ itself in a clone (editable installs get no copy).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


class BuildWithNotebooks(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        if not notebooks:    # e.g. an sdist made without MANIFEST.in: a wheel without notebooks is broken
            raise RuntimeError(f"no notebooks in {NOTEBOOKS} to put into the wheel")
        target = Path(self.build_lib) / "vizlib" / "course" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for notebook in notebooks:
            shutil.copyfile(notebook, target / notebook.name)


setup(cmdclass={"build_py": BuildWithNotebooks})
