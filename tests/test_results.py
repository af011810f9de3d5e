"""The return rule: a tensor for one result, else a frozen dataclass whose pictures are named alike and come first."""

import ast
import dataclasses
import importlib.util
import pkgutil
from pathlib import Path

import torch

import vizlib
from public_api import public_callables

def public_dataclasses():
    return {name: obj for _, name, obj in public_callables() if dataclasses.is_dataclass(obj)}


def test_every_public_dataclass_is_frozen():
    mutable = [name for name, cls in public_dataclasses().items() if not cls.__dataclass_params__.frozen]
    assert not mutable, f"results and settings are frozen dataclasses: {mutable}"


def test_pictures_are_named_alike_and_come_first():
    """A result that holds pictures calls them `images` (N, 3, H, W) or `maps` (N, H, W) and lists them first:
    they are what a reader draws, and the measurements on them follow."""
    other_names = {"image", "map", "heatmaps", "attributions", "pictures", "outputs", "saliency", "result"}
    for name, cls in public_dataclasses().items():
        fields = [f.name for f in dataclasses.fields(cls)]
        assert not other_names & set(fields), f"{name}: pictures are `images` or `maps`, got {fields}"
        holding = [f for f in fields if f in ("images", "maps")]
        assert not holding or fields[0] == holding[0], f"{name}: {holding[0]!r} should be the first field of {fields}"


def test_no_public_named_tuples():
    named_tuples = [name for _, name, obj in public_callables() if isinstance(obj, type) and issubclass(obj, tuple)]
    assert not named_tuples, f"return a frozen dataclass instead: {named_tuples}"


def _returns(function):
    """The return statements of a function definition, not of the functions nested in it."""
    found, stack = [], list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return) and node.value is not None:
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _computes_on_pictures(function):
    """A technique or measure: a checked entry, or a function whose first argument is images, features or maps."""
    checked = any("checks_inputs" in ast.unparse(decorator) for decorator in function.decorator_list)
    first = function.args.args[0].arg if function.args.args else None
    return checked or first in ("images", "features", "maps")


def test_techniques_and_measures_return_a_tensor_or_a_dataclass():
    """Never a tuple to unpack by position, never a numpy array: the result's fields say what each part is."""
    offenders = []
    for info in pkgutil.walk_packages(vizlib.__path__, "vizlib."):
        if info.name.startswith("vizlib.course."):
            continue            # the course's tools (grader, release), not techniques
        tree = ast.parse(Path(importlib.util.find_spec(info.name).origin).read_text())
        for function in tree.body:
            if not isinstance(function, ast.FunctionDef) or function.name.startswith("_"):
                continue
            if not _computes_on_pictures(function):
                continue
            for returned in _returns(function):
                text = ast.unparse(returned.value)
                if isinstance(returned.value, ast.Tuple) or ".numpy()" in text or "np." in text:
                    offenders.append(f"{info.name}.{function.name}: return {text[:60]}")
    assert not offenders, "return a tensor or a frozen dataclass:\n" + "\n".join(offenders)


def test_data_sources_return_labelled_images_that_also_unpack():
    from vizlib.course_data import make_shapes
    from vizlib.datasets import images_for_model
    from vizlib.images import LabelledImages
    from vizlib.models import course_model

    shapes = make_shapes(3, "held_out", seed=1)
    assert isinstance(shapes, LabelledImages) and shapes.images.shape == (3, 3, 64, 64)
    images, labels, masks = shapes                     # torchvision's order: image, label, then the mask
    assert images is shapes.images and labels is shapes.labels and masks is shapes.masks
    chosen = images_for_model(course_model(), 3, seed=1, split="held_out")
    assert isinstance(chosen, LabelledImages) and torch.equal(chosen.images, shapes.images)
