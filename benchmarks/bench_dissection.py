"""Network dissection's two passes against bare forward passes of the same model over the same images.

Goal: each pass keeps at least 70% of a bare forward pass's throughput (speed-up >= 0.7), and so does the
whole dissection against two forward passes. Both passes run the network only as far as the deepest dissected
layer (the bare forward runs all of it); pass 2 is given pass 1's thresholds, so each row times one pass.
The layers are the "dissection" role of vizlib.layers: five, from the first convolutional stage to the last;
the last layer alone, as Bau et al. dissect one layer at a time, shows the cost of one layer's bookkeeping.
"""

import torch

from benchmarks.harness import Comparison
from vizlib.course_data import render_shapes
from vizlib.dissection import activation_thresholds, course_concepts, dissect_layers
from vizlib.images import resize
from vizlib.layers import layers_for
from vizlib.models import course_model, random_imagenet_model


def _bare_forward(model, images, batch_size, times=1):
    def run():
        with torch.no_grad():
            for _ in range(times):
                for batch in images.split(batch_size):
                    model(batch)

    return run


def _cases():
    rendered = render_shapes(1024, "held_out", seed=0)
    yield "course model", course_model(), rendered.images, course_concepts(rendered), 64
    small = render_shapes(64, "held_out", seed=0)
    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    yield "random SqueezeNet 224px", squeezenet, resize(small.images, 224), course_concepts(small), 16


def comparisons():
    for label, model, images, concepts, batch_size in _cases():
        every = layers_for(model, "dissection")
        for layers in (every, every[-1:]):
            thresholds = activation_thresholds(model, images, layers, batch_size=batch_size, show_progress=False)
            options = dict(batch_size=batch_size, show_progress=False)
            bare = ("bare forward", _bare_forward(model, images, batch_size))
            which = f"{len(layers)} layers" if len(layers) > 1 else layers[0]
            where = f"{label}, {len(images)} images, {which}"
            yield Comparison(f"dissection pass 1 (thresholds), {where}", bare, (
                "activation_thresholds", lambda: activation_thresholds(model, images, layers, **options)),
                goal="speed-up >= 0.7", repeats=3)
            yield Comparison(f"dissection pass 2 (IoU), {where}", bare, (
                "dissect_layers, thresholds given", lambda: dissect_layers(
                    model, images, layers, concepts, thresholds=thresholds, **options)),
                goal="speed-up >= 0.7", repeats=3)
            yield Comparison(f"dissection, both passes, {where}", (
                "two bare forwards", _bare_forward(model, images, batch_size, times=2)), (
                "dissect_layers", lambda: dissect_layers(model, images, layers, concepts, **options)),
                goal="speed-up >= 0.7", repeats=3)
