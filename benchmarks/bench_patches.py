"""Streaming top-k patches against a bare forward pass of the same model over the same batches.

Goal: the streaming top-k keeps at least 80% of the bare forward pass's throughput
(speed-up >= 0.8). With `stop_early` the forward pass ends at the chosen layer, so it
can beat the full forward pass; the row without it shows what the bookkeeping costs.
"""

import torch

from benchmarks.harness import Comparison
from vizlib.course_data import make_shapes
from vizlib.images import load_sample_image
from vizlib.models import course_model, random_imagenet_model
from vizlib.patches import top_activations


def _bare_forward(model, images, batch_size):
    def run():
        with torch.no_grad():
            for batch in images.split(batch_size):
                model(batch)

    return run


def _streaming(model, layer, images, batch_size, stop_early):
    def run():
        top_activations(model, images, layer, k=9, batch_size=batch_size, stop_early=stop_early, show_progress=False)

    return run


def _cases():
    course = course_model()
    course_images = make_shapes(1024, "held_out", seed=0).images
    yield "course model", course, "features.relu3", course_images, 128
    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    photo = torch.cat([load_sample_image(name, size=256) for name in ("chelsea", "astronaut")])
    crops = torch.cat([photo[..., i:i + 224, j:j + 224] for i in range(0, 32, 8) for j in range(0, 32, 8)])
    yield "random SqueezeNet 224px", squeezenet, "features.7", crops, 16


def comparisons():
    for label, model, layer, images, batch_size in _cases():
        bare = ("bare forward", _bare_forward(model, images, batch_size))
        for stop_early in (True, False):
            how = "stops at layer" if stop_early else "full forward"
            yield Comparison(
                f"top-k patches {layer}, {label}, {len(images)} images ({how})",
                bare,
                (f"streaming top-9 ({how})", _streaming(model, layer, images, batch_size, stop_early)),
                goal="speed-up >= 0.8",
            )
