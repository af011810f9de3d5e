"""The public surface of vizlib, found by walking the package: for tests of conventions that hold everywhere."""

import importlib
import inspect
import pkgutil

import vizlib


def public_callables():
    """(module name, name, object) for every public function and class defined in vizlib, subpackages included."""
    found = []
    for info in pkgutil.walk_packages(vizlib.__path__, "vizlib."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                found.append((module.__name__, name, obj))
    return found
