"""Live explorers: how long a picture takes to follow a control, against the one-second budget of a lecture.

Reference: one second (a sleep). Candidate: one move of one control of one explorer, each move a full redraw
(the computation and the PNG): a slider moves between its top value and the one below it (where the work is
largest, e.g. the most SmoothGrad samples or the largest epsilon), a choice steps through its options. Speed-up
>= 1 means the picture follows the control within a second; the table has one row per control.
On the course model (64 px) and on EfficientNet-Lite0 (224 px), with the settings the notebooks use.
"""

import itertools
import time

import ipywidgets
import torch

from benchmarks.harness import Comparison
from vizlib.adversarial import attack_explorer
from vizlib.cam import cam_explorer
from vizlib.datasets import images_for_model
from vizlib.evaluation import deletion_explorer
from vizlib.filters import filter_explorer
from vizlib.layers import layer_for, layers_for
from vizlib.models import course_model, efficientnet_lite0_model
from vizlib.occlusion import occlusion_explorer
from vizlib.plotting import panel_controls
from vizlib.saliency import saliency, saliency_explorer


def _one_second():
    time.sleep(1.0)


def _values(control):
    if isinstance(control, (ipywidgets.IntSlider, ipywidgets.FloatSlider)):
        return control.max, control.max - control.step     # the top of a slider: the most work where work grows
    return [o[1] if isinstance(o, tuple) else o for o in control.options]


def _mover(control):
    values = itertools.cycle(_values(control))

    def move():
        value = next(values)
        if value == control.value:
            value = next(values)
        control.value = value

    return move


def _explorers(model, images, classes):
    size = images.shape[-1]
    yield "01 filters", filter_explorer(model, images)
    yield "05 occlusion", occlusion_explorer(model, images, classes, show_progress=False,
                                             windows=None if size == 64 else (size // 8, size // 4))
    yield "06 saliency", saliency_explorer(model, images, classes, max_samples=25 if size == 64 else 10)
    yield "09 attacks", attack_explorer(model, images, classes, max_epsilon=16)
    yield "15 Grad-CAM", cam_explorer(model, images, [*layers_for(model, "cam_depths"), layer_for(model, "grad_cam")])
    plain = saliency(model, images, classes)
    maps = {"saliency": plain, "mirrored": plain.flip(-1)}   # any second order will do: the scrubber only redraws
    yield "17 deletion", deletion_explorer(model, images, maps, classes, steps=16, show_progress=False)


def comparisons():
    for label, model in (("course model", course_model()), ("EfficientNet-Lite0", efficientnet_lite0_model())):
        images, labels, _ = images_for_model(model, 2, seed=0)
        with torch.no_grad():
            classes = labels if labels is not None else model(images).argmax(1)
        for name, panel in _explorers(model, images, classes):
            for control in panel_controls(panel):
                yield Comparison(f"{name} explorer, {label}: {control.description}", ("budget", _one_second),
                                 ("one redraw", _mover(control)), goal="speed-up >= 1.0", repeats=3)
