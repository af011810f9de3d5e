"""Grad-CAM: vizlib against captum's LayerGradCam followed by LayerAttribution.interpolate, at equal output.

captum runs on the bare network with the normalisation in front (`captum_network`), as a
captum user would; both sides explain the same classes at the same layer and upsample
bilinearly to the image. That they agree is asserted before anything is timed.
"""

import warnings

import torch
from captum.attr import LayerAttribution, LayerGradCam

from benchmarks.harness import Comparison, captum_network, in_fast_layout, photographs, same_output
from vizlib.cam import grad_cam
from vizlib.course_data import make_shapes
from vizlib.models import course_model, random_imagenet_model


def _pair(model, images, classes, layer):
    bare = captum_network(model)
    oracle = LayerGradCam(bare, bare[1].get_submodule(layer))

    def attribute(inputs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coarse = oracle.attribute(inputs, target=classes, relu_attributions=True)
        return LayerAttribution.interpolate(coarse, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")[:, 0]

    reference = ("captum LayerGradCam + interpolate", lambda: attribute(images))
    candidate = ("vizlib.cam.grad_cam", lambda: grad_cam(model, images, layer, classes, batch_size=len(images),
                                                         show_progress=False))
    same_output(("captum LayerGradCam, same layout", lambda: attribute(in_fast_layout(images))), candidate, atol=1e-5)
    return reference, candidate


def comparisons():
    model = course_model()
    images, labels, _ = make_shapes(64, "held_out", seed=0)
    yield Comparison("Grad-CAM, course model, 64 images 64px", *_pair(model, images, labels, "features.relu5"),
                     goal="speed-up >= 1.0", repeats=10)

    squeezenet = random_imagenet_model("squeezenet1_1", seed=0)
    classes = torch.arange(8) * 100
    yield Comparison("Grad-CAM, random SqueezeNet, 8 images 224px",
                     *_pair(squeezenet, photographs(224), classes, "features.12"), goal="speed-up >= 1.0", repeats=10)
