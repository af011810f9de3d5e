"""vizlib: the helper package of the course on visualizing and understanding CNNs.

Core modules (used by every notebook):
    config      fast switch, device, seeds, progress bars
    images      conversion at the edge, the offline sample images
    course_data the course dataset: shapes on natural clutter, with masks
    datasets    images for a model: course data, Imagenette, offline photographs
    wrapper     the model wrapper (VizModel), `wrap` for a network of your own, layers by name,
                the entry check of every technique (and its one rule for a bare module)
    models      the course model, EfficientNet-Lite0 and torchvision's ImageNet models, wrapped
    efficientnet_lite  EfficientNet-Lite0 written out with readable layer names, its weights' key map
    hooks       hooks that always clean up, running a network only as far as a layer
    layers      which layers each technique reads on each model: one table, one lookup
    arguments   the class argument, predictions and batch sizes, checked in one place
    counts      positive counts and sizes, checked (beneath wrapper and arguments)
    optim       pixel gradients, normalised steps, TV loss, the image-optimisation loop
    plotting    image grids and heat-map overlays

Concept modules, one per notebook (notebooks/NN_<module>.ipynb, tests/test_<module>.py):
    activations 01 filters, 02 neighbours, 03 embedding, 04 patches, 05 occlusion
    gradients   06 saliency, 07 guided_backprop, 08 gradient_ascent, 09 adversarial, 10 inversion
    art         11 deepdream, 12 texture_sampling, 13 gram_texture, 14 style_transfer
    today       15 cam, 16 integrated_gradients, 17 evaluation, 18 feature_visualisation, 19 dissection
and the parts concepts share (each with its tests/test_<module>.py):
    receptive_field  which pixels a unit sees (04 patches)
    sanity           Adebayo's cascading randomisation, rank correlation (07, any attribution method)

Course tools, which manage the course rather than teach it, live in the subpackage
vizlib.course (build_course, student_release, grade, download, train_course_model, train_style_net).
"""

from vizlib.config import FAST, describe, fast_or, pick_device, progress, seed_everything
from vizlib.hooks import capture_activations
from vizlib.images import check_images, load_sample_image, to_image_tensor
from vizlib.models import is_trained, load_model, pick_model
from vizlib.wrapper import VizModel, get_layer, layer_names, wrap

__all__ = [
    "FAST", "describe", "fast_or", "pick_device", "progress", "seed_everything",
    "capture_activations", "get_layer", "layer_names",
    "check_images", "load_sample_image", "to_image_tensor",
    "VizModel", "is_trained", "load_model", "pick_model", "wrap",
]
