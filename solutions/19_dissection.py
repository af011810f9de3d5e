"""Reference solutions to the exercises of notebook 19 (instructor only; the student release leaves this folder out)."""
from collections import Counter

import torch

from vizlib import course_data
from vizlib.dissection import activation_thresholds, course_concepts, dissect, dissect_layers
from vizlib.layers import layers_for
from vizlib.models import course_model

SEED = 0
N = 512                 # the notebook's held-out images in fast mode (seed SEED + 1)


def _setup():
    rendered = course_data.render_shapes(N, "held_out", seed=SEED + 1)
    return course_model(), course_model(trained=False, seed=SEED), rendered, course_concepts(rendered)


def exercise_1():
    """Detector counts at the last two layers, trained against random, at IoU thresholds 0.02, 0.04 and 0.08."""
    model, random_model, rendered, concepts = _setup()
    last = layers_for(model, "dissection")[-2:]
    counts = {}
    for label, net in (("trained", model), ("random", random_model)):
        thresholds = activation_thresholds(net, rendered.images, last, show_progress=False)   # pass 1 once
        for iou_threshold in (0.02, 0.04, 0.08):
            results = dissect_layers(net, rendered.images, last, concepts, thresholds=thresholds,
                                     iou_threshold=iou_threshold, show_progress=False)
            counts[label, iou_threshold] = sum(len(r.detectors()) for r in results)
    for iou_threshold in (0.02, 0.04, 0.08):
        print(f"IoU > {iou_threshold}: trained {counts['trained', iou_threshold]}, "
              f"random {counts['random', iou_threshold]}")
    for iou_threshold in (0.02, 0.04, 0.08):           # the 2x claim at every threshold
        assert counts["trained", iou_threshold] >= 2 * counts["random", iou_threshold], counts
    # the trained count moves most in units, the random one falls to (nearly) nothing
    assert counts["trained", 0.02] - counts["trained", 0.08] > 100 and counts["random", 0.08] <= 2, counts
    return counts


def exercise_2():
    """Background detectors once the quantile lets a region be large enough."""
    model, random_model, rendered, concepts = _setup()
    share = concepts.areas()[-3:] / (N * 64 * 64)
    needed = 0.04 * share.max().item()        # |M_k| / |L_c| must reach 0.04, and |M_k| is about q of the pixels
    print(f"background shares {[round(s, 3) for s in share.tolist()]}: q must exceed about {needed:.3f}")
    quantile = 0.05                           # well above it: a ceiling near 0.05 / 0.3 = 0.17
    found = {}
    for label, net in (("trained", model), ("random", random_model)):
        result = dissect(net, rendered.images, "features.relu5", concepts, quantile=quantile, show_progress=False)
        found[label] = result.counts()
        print(f"{label}, q = {quantile}: {found[label]}")
    assert needed < quantile
    assert found["random"]["background"] >= 10 * max(found["trained"]["background"], 1), found
    assert found["trained"]["shape"] >= 100, found
    return found


def exercise_3():
    """Last-layer shape detectors per class, against the classes the model confuses."""
    model, _, rendered, concepts = _setup()
    result = dissect(model, rendered.images, "features.relu5", concepts, show_progress=False)
    per_class = Counter({name: 0 for name in course_data.CLASSES})
    per_class.update(concept for concept in result.detected if concept in course_data.CLASSES)
    with torch.no_grad():
        predicted = model(rendered.images).argmax(1)
    confusion = torch.zeros(8, 8, dtype=torch.long)
    confusion.index_put_((rendered.labels, predicted), torch.ones(N, dtype=torch.long), accumulate=True)
    accuracy = confusion.diagonal() / confusion.sum(1)
    for k, name in enumerate(course_data.CLASSES):
        print(f"{name:9s} detectors {per_class[name]:3d}   accuracy {accuracy[k]:.3f}")
    fewest = sorted(per_class, key=per_class.get)[:2]
    assert set(fewest) == {"ring", "crescent"}, per_class            # the two thin shapes
    assert max(per_class, key=per_class.get) == "disc", per_class
    assert accuracy.min() > 0.9                                         # every class is still recognised
    ring, crescent = course_data.CLASSES.index("ring"), course_data.CLASSES.index("crescent")
    assert confusion[ring, crescent] + confusion[crescent, ring] > 0   # and these two are confused with each other
    return per_class, confusion


def exercise_4():
    """Concepts at 32x32, as Broden's masks are at half the image size."""
    model, _, rendered, concepts = _setup()
    last = layers_for(model, "dissection")[-2:]
    thresholds = activation_thresholds(model, rendered.images, last, show_progress=False)
    full, half = (dissect_layers(model, rendered.images, last, c, thresholds=thresholds, show_progress=False)
                  for c in (concepts, course_concepts(rendered, size=(32, 32))))
    for a, b in zip(full, half):
        change = (a.iou - b.iou).abs()
        print(f"{a.layer}: detectors {len(a.detectors())} at 64 px, {len(b.detectors())} at 32 px; "
              f"IoU change mean {change.mean():.4f}, largest {change.max():.4f}")
        assert abs(len(a.detectors()) - len(b.detectors())) <= 3
        assert change.max() < 0.01
    return full, half
