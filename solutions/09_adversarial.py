"""Reference solutions to the exercises of notebook 09 (instructor only; the student release leaves this folder out).

Exercise 4 (transfer to a network trained again with another seed) needs retraining the course model, so it has a
worked answer and no function here.
"""

import torch

from vizlib.adversarial import fooling_image, perturbation_norms, pgd
from vizlib.arguments import predict
from vizlib.datasets import images_for_model
from vizlib.gradient_ascent import transform_robustness
from vizlib.models import course_model

SEED = 0
EPSILON = 4 / 255


def fresh(n=32):
    model = course_model()
    images, labels, _ = images_for_model(model, n, seed=2024)
    images, labels = images.to(model.device), labels.to(model.device)
    correct = predict(model, images).classes == labels
    return model, images[correct], labels[correct]


def exercise_1():
    """Targeted against untargeted PGD at the same budgets."""
    model, images, labels = fresh()
    targets = (labels + 1) % len(model.class_names)
    rates = {}
    for e in (2, 4):
        epsilon = e / 255
        untargeted = predict(model, pgd(model, images, labels, epsilon=epsilon, seed=SEED, show_progress=False)).classes
        targeted = predict(model, pgd(model, images, targets, epsilon=epsilon, targeted=True, seed=SEED,
                                      show_progress=False)).classes
        rates[e] = ((untargeted != labels).float().mean().item(), (targeted == targets).float().mean().item())
    print(f"success at epsilon (x/255): untargeted, targeted (reached the target) {rates}")
    assert all(t < u for u, t in rates.values()), "a chosen target is harder to reach than any wrong class"


def exercise_2():
    """L2 and L-infinity size of the fooling images against the PGD examples."""
    model, images, labels = fresh(16)
    target = model.class_names.index("star")
    keep = labels != target
    images, labels = images[keep][:4], labels[keep][:4]
    fooled = fooling_image(model, images, target, step_size=0.1, max_steps=100, show_progress=False)
    adversarial = pgd(model, images, labels, epsilon=EPSILON, seed=SEED, show_progress=False)
    norms = perturbation_norms(images, fooled.images)
    fool_linf, fool_l2 = norms.linf, norms.l2
    norms = perturbation_norms(images, adversarial)
    pgd_linf, pgd_l2 = norms.linf, norms.l2
    print(f"fooling images: L-inf {fool_linf.mean() * 255:.1f}/255, L2 {fool_l2.mean():.2f}; "
          f"PGD: L-inf {pgd_linf.mean() * 255:.1f}/255, L2 {pgd_l2.mean():.2f}")
    assert fooled.success.all()
    assert fool_l2.mean() < pgd_l2.mean() and fool_linf.mean() > pgd_linf.mean(), (
        "each attack is the smaller one in the norm it economises")


def exercise_3():
    """epsilon = 32/255 against 4/255: does the new class survive transforms, as a class visualisation does?"""
    model, images, labels = fresh(16)
    target = model.class_names.index("star")
    keep = labels != target
    images = images[keep][:8]
    targets = torch.full((len(images),), target, device=images.device)
    kept, reached = {}, {}
    for e in (4, 32):
        attacked = pgd(model, images, targets, epsilon=e / 255, targeted=True, seed=SEED, show_progress=False)
        reached[e] = (predict(model, attacked).classes == target).float().mean().item()
        kept[e] = transform_robustness(model, attacked, targets, n=32, seed=SEED).mean().item()
    print(f"targeted PGD towards 'star' at 4/255 and 32/255: reached {reached}; the target survives random shifts "
          f"and rescalings in {kept} of the copies")
    assert reached[32] > 0.9
    assert kept[32] > kept[4] + 0.2, \
        "at 32/255 the change carries evidence that survives resampling, as drawn shapes do"
