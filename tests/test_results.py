"""The return rule: a tensor for one result, else a frozen dataclass whose main field is named alike everywhere."""

import dataclasses

from public_api import public_callables

# The main field of each result: `maps` for attributions, `images` for synthesis.
MAIN_FIELD = {
    "OcclusionResult": "maps",
    "RandomisationResult": "maps",
    "OptimisationResult": "images",
    "FoolingResult": "images",
    "SynthesisResult": "images",
    "TrainingResult": "net",
    "Prediction": "classes",
    "DissectionResult": "iou",
}


def public_dataclasses():
    return {name: obj for _, name, obj in public_callables() if dataclasses.is_dataclass(obj)}


def test_every_public_dataclass_is_frozen():
    mutable = [name for name, cls in public_dataclasses().items() if not cls.__dataclass_params__.frozen]
    assert not mutable, f"results and settings are frozen dataclasses: {mutable}"


def test_every_result_names_its_main_field_by_the_convention():
    results = {name: cls for name, cls in public_dataclasses().items() if name.endswith("Result") or name in MAIN_FIELD}
    assert set(results) == set(MAIN_FIELD)
    for name, cls in results.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        assert MAIN_FIELD[name] in fields, f"{name} has no field {MAIN_FIELD[name]!r}"


def test_no_public_named_tuples():
    named_tuples = [name for _, name, obj in public_callables() if isinstance(obj, type) and issubclass(obj, tuple)]
    assert not named_tuples, f"return a frozen dataclass instead: {named_tuples}"
