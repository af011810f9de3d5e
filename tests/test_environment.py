"""The install itself: a matching torch/torchvision pair, and conda and pip agreeing."""

import re
import tomllib

import torch
import yaml

from vizlib.config import REPO_ROOT


def package_name(requirement):
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_torchvision_ops_import_and_run():
    import torchvision.ops  # fails when pip swapped in a torch build torchvision was not built for

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip_side = {package_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        pip_side |= {package_name(r) for r in extra}
    conda = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())["dependencies"]
    conda_side = set()
    for entry in conda:
        if isinstance(entry, dict):
            conda_side |= {package_name(r) for r in entry["pip"] if not r.startswith("-")}
        else:
            conda_side.add(package_name(entry))
    assert conda_side - {"python", "pip"} == pip_side


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    assert re.search(r"^make test$", ci, re.M)
    assert "make test" in readme and "make lab" in readme
