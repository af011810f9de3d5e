"""Reference solutions to the exercises of notebook 08 (instructor only; the student release leaves this folder out)."""

import torch

from vizlib.gradient_ascent import (
    class_visualisation, high_frequency_share, settings_for, start_image, transform_robustness, unit_visualisation,
)
from vizlib.models import course_model
from vizlib.optim import optimise_image

SEED = 0
STEPS = 40  # the notebook's fast-mode step count on the course model
N_TRANSFORMS = 32


def run(model, settings, n_classes=8):
    classes = list(range(n_classes))
    start = start_image(len(classes), model.input_size, seed=SEED, device=model.device)
    images = class_visualisation(model, classes, settings=settings, init=start, seed=SEED, show_progress=False).images
    kept = transform_robustness(model, images, classes, n=N_TRANSFORMS, seed=SEED).mean().item()
    return images, kept, high_frequency_share(images).mean().item()


def exercise_1():
    """Each regulariser switched off in turn."""
    model = course_model()
    variants = {"all on": {}, "no blur": {"blur_every": 0}, "no jitter": {"max_jitter": 0}, "no L2": {"l2": 0.0},
                "no value clipping": {"value_percentile": 0.0},
                "no contribution clipping": {"contribution_percentile": 0.0}}
    result = {name: run(model, settings_for(model, steps=STEPS, **change), n_classes=4)[1:]
              for name, change in variants.items()}
    for name, (kept, high) in result.items():
        print(f"{name:24s} class kept {kept:.1%}, high-frequency share {high:.3f}")
    assert result["no blur"][1] == max(high for _, high in result.values()), "blur matters most for smoothness"
    assert result["no blur"][1] > 1.5 * result["all on"][1]


def exercise_2():
    """The CS231n values in [0, 1] pixel space."""
    model = course_model()
    classes = list(range(len(model.class_names)))
    scores, contrast = {}, {}
    for name, settings in (("CS231n", settings_for(model, steps=STEPS, optimizer="sgd", lr=25, l2=1e-3)),
                           ("retuned", settings_for(model, steps=STEPS))):
        images, _, _ = run(model, settings)
        with torch.no_grad():
            scores[name] = model(images).gather(1, torch.tensor(classes, device=images.device)[:, None]).mean().item()
        contrast[name] = (images - 0.5).abs().mean().item()
    print(f"mean class score after {STEPS} steps: {scores}; mean |pixel - grey|: {contrast}")
    assert scores["CS231n"] < 0.1 * scores["retuned"], "steps of 25 x the gradient overshoot: the score barely rises"
    assert contrast["CS231n"] > 2 * contrast["retuned"], "and the pixels are thrown far from grey"


def exercise_3():
    """The fourth regulariser, clipping pixels of small contribution: off, at its default 20% and at 50%."""
    model = course_model()
    result = {}
    for percentile in (0.0, 20.0, 50.0):
        images, kept, high = run(model, settings_for(model, steps=STEPS, contribution_percentile=percentile))
        grey = (images == 0.5).all(1).float().mean().item()
        result[percentile] = (kept, high, grey)
        print(f"contribution_percentile {percentile:4g}: class kept {kept:.1%}, high-frequency share {high:.3f}, "
              f"grey pixels {grey:.1%}")
    assert result[20.0][2] > result[0.0][2] + 0.05, "more of the background is plain grey"
    assert result[50.0][1] > result[0.0][1] + 0.03, "clipping half the pixels leaves speckle: more fine detail"
    return result


def exercise_4():
    """Maximising the softmax probability instead of the score."""
    model = course_model()
    classes = torch.arange(len(model.class_names), device=model.device)
    settings = settings_for(model, steps=STEPS)
    start = start_image(len(classes), model.input_size, seed=SEED, device=model.device)

    def probability_objective(images):
        probability = model(images).softmax(1).gather(1, classes[:, None]).squeeze(1)
        return -probability.sum()

    by_probability = optimise_image(probability_objective, start, steps=STEPS, lr=settings.lr,
                                    max_jitter=settings.max_jitter, blur_every=settings.blur_every,
                                    blur_sigma=settings.blur_sigma, seed=SEED, show_progress=False)
    by_probability = getattr(by_probability, "images", by_probability)
    by_score = class_visualisation(model, classes.tolist(),
                                   settings=settings.replace(l2=0.0, value_percentile=0.0, contribution_percentile=0.0),
                                   init=start, seed=SEED, show_progress=False).images
    with torch.no_grad():
        probability = model(by_probability).softmax(1).gather(1, classes[:, None]).mean().item()
    contrast = {name: (images - 0.5).abs().mean().item() for name, images in
                (("probability", by_probability), ("score", by_score))}
    print(f"mean probability reached {probability:.3f}; mean |pixel - grey|: {contrast}")
    assert probability > 0.9
    assert contrast["probability"] < 0.7 * contrast["score"], "the ascent stops once the probability saturates"


def frequency_centroid(images):
    """Mean spatial frequency (cycles/pixel) of the images' power, each channel's mean removed."""
    centred = images - images.mean((2, 3), keepdim=True)
    power = torch.fft.fft2(centred.cpu().double()).abs().pow(2).sum(1)
    n = images.shape[-1]
    f = torch.fft.fftfreq(n, dtype=torch.float64)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt()
    return ((power * radius).sum((1, 2)) / power.sum((1, 2))).mean().item()


def exercise_5():
    """Channels of bn2, bn3 and bn5: the size of what they draw."""
    model = course_model()
    settings = settings_for(model, objective="unit", steps=STEPS)
    centroid = {layer: frequency_centroid(unit_visualisation(model, layer, list(range(4)), settings=settings,
                                                             seed=SEED, show_progress=False).images)
                for layer in ("features.bn2", "features.bn3", "features.bn5")}
    print(f"mean spatial frequency of the channel pictures (cycles/pixel): {centroid}")
    assert centroid["features.bn2"] > centroid["features.bn3"] > centroid["features.bn5"], (
        "deeper channels draw larger patterns: lower frequencies")
