"""Drive a live explorer without a browser: every control through its values, as a lecturer would click."""

import ipywidgets

from model_state import assert_unchanged, fingerprint
from vizlib.plotting import panel_controls


def values_to_try(control):
    """Every option of a choice; the ends and the middle of a slider's range."""
    if hasattr(control, "options") and not isinstance(control, ipywidgets.SelectionSlider):
        return [option[1] if isinstance(option, tuple) else option for option in control.options]
    if isinstance(control, ipywidgets.SelectionSlider):
        return list(control.options)
    if isinstance(control, ipywidgets.Checkbox):
        return [True, False]
    low, high = control.min, control.max
    middle = (low + high) // 2 if isinstance(low, int) else (low + high) / 2
    return [low, middle, high]


def drive(panel, *models):
    """Move every control through its values; each new value must redraw a different picture with no error
    message, and every model must be left exactly as it was. Returns {control description: values moved}."""
    message, picture = panel.children[-2], panel.children[-1]
    before = [fingerprint(model) for model in models]
    moved = {}
    for control in panel_controls(panel):
        start = control.value
        for value in values_to_try(control):
            if value == control.value:
                continue
            shown = picture.value
            control.value = value
            assert message.value == "", f"{control.description} = {value!r}: {message.value}"
            assert picture.value != shown, f"{control.description} = {value!r} left the picture as it was"
            moved.setdefault(control.description, []).append(value)
        control.value = start
    for model, state in zip(models, before):
        assert_unchanged(model, state)
    assert moved, "no control could be moved"
    return moved
