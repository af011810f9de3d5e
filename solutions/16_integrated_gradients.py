"""Reference solutions to the exercises of notebook 16 (instructor only; the student release leaves this folder out)."""
import torch

from vizlib import course_data
from vizlib.integrated_gradients import completeness_error, gradient_x_input, integrated_gradients, make_baselines
from vizlib.models import load_model
from vizlib.sanity import rank_correlation
from vizlib.saliency import attribution_map, mask_share

SEED = 0
STEPS = 32


def _dark_objects(n_pool=256, n=12):
    """The n held-out images whose object is darkest (mean pixel value inside the mask)."""
    images, labels, masks = course_data.make_shapes(n_pool, "held_out", seed=3)
    brightness = (images.mean(1) * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)
    order = brightness.argsort()[:n]
    return images[order], labels[order], masks[order], brightness[order]


def exercise_1():
    """Dark objects from a black baseline: their inside gets little; a grey baseline gives it back."""
    model = load_model("course")
    images, labels, masks, brightness = _dark_objects()
    images = images.to(model.device)
    print(f"{len(images)} darkest objects, mean brightness {brightness.mean():.3f}")
    share = {}
    for kind in ("black", "grey"):
        maps = attribution_map(integrated_gradients(model, images, labels, baselines=kind, steps=STEPS,
                                                    show_progress=False)).cpu()
        share[kind] = mask_share(maps, masks).mean().item()
        print(f"IG from {kind}: share of the attribution inside the object {share[kind]:.3f}")
    assert share["grey"] > share["black"] + 0.15, share
    return share


def exercise_2():
    """Expected-gradients-style map (IG averaged over noise baselines) against the black and blurred maps."""
    model = load_model("course")
    images, labels, _ = course_data.make_shapes(12, "held_out", seed=7)
    images = images.to(model.device)

    def ig(baselines):
        return attribution_map(integrated_gradients(model, images, labels, baselines=baselines, steps=STEPS // 2,
                                                    show_progress=False)).cpu()

    expected = torch.stack([ig(make_baselines(images, "noise", seed=s)) for s in range(3)]).mean(0)
    rho = {kind: rank_correlation(expected, ig(kind)).mean().item() for kind in ("black", "blur")}
    print("rank correlation of the averaged-noise map with: " + ", ".join(f"{k} {v:.3f}" for k, v in rho.items()))
    closer = max(rho, key=rho.get)
    print("closer to:", closer)
    assert rho["blur"] > rho["black"] + 0.02, rho
    return rho


def exercise_4():
    """Completeness of Gradient x Input (black baseline) against that of IG on the notebook's images."""
    model = load_model("course")
    images, labels, _ = course_data.make_shapes(8, "held_out", seed=SEED)
    images = images.to(model.device)
    gxi = completeness_error(model, images, gradient_x_input(model, images, labels), labels)
    ig = completeness_error(model, images, integrated_gradients(model, images, labels, steps=STEPS,
                                                                show_progress=False), labels)
    print("Gradient x Input gap per image: " + " ".join(f"{g:.1%}" for g in gxi.tolist()))
    print(f"median gap: Gradient x Input {gxi.median():.1%}, IG ({STEPS} steps) {ig.median():.1%}")
    assert gxi.median() > 5 * ig.median() and gxi.median() > 0.1, (gxi, ig)
    return gxi, ig
