"""The arguments that many techniques share, checked in one place.

- `classes`: every function that explains or targets a class takes it the same way:
  None (each image's predicted class), one int for every image, or one index per
  image. `check_classes` validates given indices, `resolve_classes` also fills in the
  prediction, which `predict` computes. Grad-CAM and occlusion take the top class from
  the scores of a forward pass they run anyway, rather than run the model twice.
- Batch sizes: `check_batch_size`, by `vizlib.counts`' rule for positive counts (a module of
  its own, beneath this one and the wrapper).

Each check raises a TypeError for a value of the wrong kind and a ValueError for a
value out of range, before any work is done.
"""

from dataclasses import dataclass

import torch

from vizlib.counts import check_positive_int
from vizlib.wrapper import as_viz_model, checks_inputs

DEFAULT_BATCH_SIZE = 64


def check_batch_size(batch_size):
    """How many images go through the model at once: a positive int."""
    return check_positive_int(batch_size, "batch_size")


def check_classes(model, classes, n=None):
    """Class indices as a LongTensor of length n; an int is used for every image.

    `model` is a model (a bare module's classes are counted as `vizlib.wrapper.as_viz_model`
    says), or the number of classes itself. With n=None the indices are taken as given (one or more).
    """
    if classes is None:    # where None means each image's prediction, the function calls resolve_classes instead
        raise TypeError("classes must be a class index or one per image, got None: this function does not "
                        "predict them")
    count = model if isinstance(model, int) else len(as_viz_model(model).class_names)
    raw = torch.as_tensor(classes)
    if raw.numel() and (raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool):  # [] is float
        raise TypeError(f"class indices must be integers, got {raw.dtype} values {raw.flatten()[:8].tolist()}")
    classes = raw.to(torch.long).flatten()
    if n is None:
        if classes.numel() == 0:
            raise ValueError("no classes given")
        n = classes.numel()
    if classes.numel() == 1:
        classes = classes.expand(n)
    if classes.numel() != n:
        raise ValueError(f"got {classes.numel()} class indices for {n} images")
    if n and count == 0:
        raise ValueError("the model scores no classes (its output is not (N, classes) scores), so it takes no "
                         f"class indices, got {classes.tolist()}")
    if n and (classes.min() < 0 or classes.max() >= count):
        raise ValueError(f"class index out of range: valid indices are 0 to {count - 1}, got {classes.tolist()}")
    return classes


@dataclass(frozen=True)
class Prediction:
    """What a model says about each image, all (N,) on the images' device."""

    classes: torch.Tensor        # the class asked about, or the top class when none was given
    scores: torch.Tensor         # its unnormalised score (logit)
    probabilities: torch.Tensor  # its softmax probability


@checks_inputs("images")
def predict(model, images, classes=None, *, batch_size=DEFAULT_BATCH_SIZE):
    """The model's view of `images`, without gradients: a Prediction.

    classes=None: each image's top class, its score and probability. Given classes
    (one int for all, or one per image): their scores and probabilities. A bare network
    (any module returning (N, classes) scores) is taken as given, unnormalised, as every
    function takes it (vizlib.wrapper). Images go through the model `batch_size` at a time.
    """
    batch_size = check_batch_size(batch_size)
    if classes is not None:
        classes = check_classes(model, classes, len(images)).to(images.device)
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in images.split(batch_size)])
    if logits.dim() != 2:
        raise ValueError(f"the model returned shape {tuple(logits.shape)} for {len(images)} images, not class scores "
                         "(N, classes): it predicts no class")
    if classes is None:
        classes = logits.argmax(1)
    index = classes[:, None].to(logits.device)
    return Prediction(classes, logits.gather(1, index)[:, 0], logits.softmax(1).gather(1, index)[:, 0])


@checks_inputs("images")
def resolve_classes(model, images, classes=None, *, batch_size=DEFAULT_BATCH_SIZE):
    """Class indices (N,) on the images' device: the given ones, else each image's predicted class."""
    if classes is None:
        return predict(model, images, batch_size=batch_size).classes
    return check_classes(model, classes, len(images)).to(images.device)
