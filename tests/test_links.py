"""Every relative link in the notebooks' text and in the README points at a file that exists."""

import json
import re

import pytest

from vizlib.config import REPO_ROOT

PAGES = sorted((REPO_ROOT / "notebooks").glob("*.ipynb")) + [REPO_ROOT / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)")   # markdown links, without their #anchor


def markdown_of(page):
    if page.suffix != ".ipynb":
        return page.read_text()
    cells = json.loads(page.read_text())["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")


def relative_links(text):
    return [target for target in LINK.findall(text) if "://" not in target and not target.startswith("mailto:")]


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_relative_link_resolves(page):
    broken = [target for target in relative_links(markdown_of(page)) if not (page.parent / target).exists()]
    assert broken == [], f"{page.name} links to missing files: {broken}"


def test_links_are_found_and_checked():
    text = "See [07](07_guided_backprop.ipynb#rules), [web](https://example.org) and [gone](nowhere.ipynb)."
    assert relative_links(text) == ["07_guided_backprop.ipynb", "nowhere.ipynb"]
    assert sum(len(relative_links(markdown_of(page))) for page in PAGES) >= len(PAGES)  # the pages do link
