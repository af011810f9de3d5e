"""Reference solutions to the exercises of notebook 04 (instructor only; the student release leaves this folder out)."""

import torch

from vizlib import patches
from vizlib.course_data import make_shapes
from vizlib.datasets import images_for_model
from vizlib.models import course_model
from vizlib.receptive_field import receptive_field

SEED = 0
N_IMAGES = 256
K = 9


def padding_share(images, field, top):
    """Mean share of each top patch that lies outside the image (filled with padding)."""
    size = images.shape[-1]
    shares = []
    for row_col in top.position.reshape(-1, 2).tolist():
        top_, left, bottom, right = field.box(*row_col)
        inside = (max(0, min(bottom, size) - max(top_, 0))) * (max(0, min(right, size) - max(left, 0)))
        shares.append(1 - inside / ((bottom - top_) * (right - left)))
    return sum(shares) / len(shares)


def exercise_1():
    """A deeper layer: field size and how much of its top patches is padding."""
    model = course_model()
    images, _, _ = images_for_model(model, N_IMAGES, seed=SEED)
    result = {}
    for layer in ("features.relu3", "features.relu4"):
        field = receptive_field(model, layer)
        top = patches.top_activations(model, images, layer, k=K, show_progress=False)
        result[layer] = (field.size[0], padding_share(images, field, top))
        print(f"{layer}: field {field.size[0]} px on {images.shape[-1]} px images, "
              f"{result[layer][1]:.0%} of its top patches is padding")
    assert result["features.relu4"][0] >= 0.8 * images.shape[-1], "relu4's field covers most of the image"
    assert result["features.relu4"][1] > result["features.relu3"][1], "more of each patch is padding"


def exercise_2():
    """pool5's field by hand, walking the layers with the three formulas."""
    model = course_model()
    start, size, jump = 0, 1, 1
    for name in model.layer_names:
        module = model.layer(name)
        if isinstance(module, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            pair = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
            k, s, p, d = (pair(module.kernel_size), pair(module.stride), pair(module.padding), pair(module.dilation))
            start, size, jump = start - p * jump, size + d * (k - 1) * jump, jump * s
        if name == "features.pool5":
            break
    field = receptive_field(model, "features.pool5")
    print(f"by hand: size {size}, stride {jump}, start {start}; receptive_field: {field}")
    assert (size, jump, start) == (field.size[0], field.stride[0], field.start[0])


def exercise_3():
    """The similarity of random patches with and without centring and leaving the channel out."""
    model = course_model()
    images, _, _ = images_for_model(model, N_IMAGES, seed=SEED)
    layer = "features.relu3"
    top = patches.top_activations(model, images, layer, k=K, show_progress=False)
    index, position = patches.random_units(top, K * 20, seed=SEED)
    features = patches.unit_features(model, images, layer, index, position).view(20, K, -1)
    centre = patches.unit_features(model, images, layer, *patches.random_units(top, K * 20, seed=SEED + 1)).mean(0)
    raw = sum(patches.mean_pairwise_cosine(group) for group in features) / len(features)
    centred = sum(patches.mean_pairwise_cosine(group, centre=centre) for group in features) / len(features)
    print(f"random patches, mean pairwise cosine: raw {raw:.3f}, centred {centred:.3f}")
    assert raw > 0.2 and abs(centred) < 0.1, "ReLU vectors share a positive mean direction; centring removes it"


def exercise_4():
    """The claim on the untrained course model."""
    model = course_model()
    images, _, _ = images_for_model(model, N_IMAGES, seed=SEED)
    margins = {}
    for name, net in (("trained", model), ("untrained", course_model(trained=False, seed=SEED))):
        top = patches.top_activations(net, images, "features.relu3", k=K, show_progress=False)
        similarity = patches.feature_similarity(net, images, top, seed=SEED)
        top_similarity, random_similarity = similarity.top, similarity.random
        margins[name] = (top_similarity.mean() - random_similarity.mean()).item()
    print(f"margin of top over random patches at features.relu3: {margins}")
    assert margins["untrained"] >= 0.2, "a random network passes the check too"


def exercise_5():
    """Streaming images rendered batch by batch, and re-rendering the ones needed for the patches."""
    model = course_model()
    seeds = range(4)
    stream = (make_shapes(64, "held_out", seed=s).images for s in seeds)
    streamed = patches.top_activations(model, stream, "features.relu3", k=K, show_progress=False)
    everything = torch.cat([make_shapes(64, "held_out", seed=s).images for s in seeds])
    in_memory = patches.top_activations(model, everything, "features.relu3", k=K, show_progress=False)
    assert torch.equal(streamed.image_index, in_memory.image_index)
    # to cut a patch, re-render the image from (seed, position within its batch): index // 64, index % 64
    index = int(streamed.image_index[0, 0])
    again = make_shapes(64, "held_out", seed=seeds[index // 64]).images[index % 64]
    assert torch.equal(again, everything[index]), "the rendering is deterministic in (split, seed)"
    print(f"streamed {streamed.n_images} images; channel 0's best is image {index}, re-rendered exactly")
