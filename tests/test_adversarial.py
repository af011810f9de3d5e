"""Fooling images, FGSM and PGD against an attack written out by hand in numpy.

The hand-built model is small enough to differentiate on paper: flatten ->
linear -> tanh -> linear, behind the course wrapper's normalisation. The oracle
below derives the cross-entropy gradient with respect to the pixels in closed
form (no autograd) and runs FGSM and PGD from their papers' definitions, with
the random start drawn as vizlib.adversarial.pgd documents.

Oracles (where each homework region's expected values come from):
- fgsm(), pgd(), project(): the hand model's cross-entropy gradient in numpy, FGSM and PGD as their papers
  define them, the budget clipped with np.clip.
- fooling_image(): the hand model's score gradient in numpy, normalised to the step length; the target reached.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from model_state import assert_unchanged, fingerprint  # noqa: E402
from vizlib.adversarial import (  # noqa: E402
    fgsm, fooling_image, loss_gradient, perturbation_norms, pgd, random_sign_noise, show_attack,
)
from vizlib.arguments import predict  # noqa: E402
from vizlib.wrapper import VizModel, freeze

SIZE, HIDDEN, CLASSES = 4, 6, 4
MEAN, STD = 0.5, 0.25


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, CLASSES))
    model = VizModel(net.double(), name="tiny", class_names="abcd", input_size=SIZE, mean=(MEAN,) * 3, std=(STD,) * 3)
    model.mean, model.std = model.mean.double(), model.std.double()
    return freeze(model)


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, SIZE, SIZE, generator=generator, dtype=torch.float64)


class HandModel:
    """The tiny model's forward pass and input gradients, derived by hand in numpy."""

    def __init__(self, model):
        first, last = model.net[1], model.net[3]
        self.w1, self.b1 = first.weight.numpy().copy(), first.bias.numpy().copy()
        self.w2, self.b2 = last.weight.numpy().copy(), last.bias.numpy().copy()

    def hidden(self, x):
        return np.tanh(((x.reshape(len(x), -1) - MEAN) / STD) @ self.w1.T + self.b1)

    def logits(self, x):
        return self.hidden(x) @ self.w2.T + self.b2

    def _back(self, x, d_logits):
        """Pixels' gradient from the gradient at the logits: chain rule through tanh and both layers."""
        h = self.hidden(x)
        d_hidden = (d_logits @ self.w2) * (1 - h**2)
        return ((d_hidden @ self.w1) / STD).reshape(x.shape)

    def cross_entropy_gradient(self, x, classes):
        z = self.logits(x)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(x)), classes] -= 1  # d CE / d logits = softmax - one-hot
        return self._back(x, p)

    def score_gradient(self, x, classes):
        one_hot = np.zeros((len(x), CLASSES))
        one_hot[np.arange(len(x)), classes] = 1
        return self._back(x, one_hot)


def hand_fgsm(hand, x, classes, epsilon, targeted=False):
    sign = -1 if targeted else 1
    return np.clip(x + sign * epsilon * np.sign(hand.cross_entropy_gradient(x, classes)), 0, 1)


def hand_pgd(hand, x, classes, epsilon, steps, alpha, start_noise=None, targeted=False):
    sign = -1 if targeted else 1
    adv = x.copy() if start_noise is None else np.clip(x + epsilon * start_noise, 0, 1)
    for _ in range(steps):
        adv = adv + sign * alpha * np.sign(hand.cross_entropy_gradient(adv, classes))
        adv = np.clip(np.clip(adv, x - epsilon, x + epsilon), 0, 1)
    return adv


def documented_start_noise(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1).numpy()


def other_classes(model, x):
    """A target for each image that its current prediction is not."""
    return (predict(model, x).classes + 1) % CLASSES


# ---------------------------------------------------------------- FGSM and PGD against the oracle


def test_the_hand_model_is_the_model(tiny, images):
    hand = HandModel(tiny)
    with torch.no_grad():
        assert np.allclose(hand.logits(images.numpy()), tiny(images).numpy(), atol=1e-12)


@pytest.mark.parametrize("epsilon", [0.0, 2 / 255, 8 / 255, 0.3])
def test_fgsm_untargeted_matches_hand_derivation(tiny, images, epsilon):
    labels = torch.tensor([0, 1, 2, 3, 1])
    expected = hand_fgsm(HandModel(tiny), images.numpy(), labels.numpy(), epsilon)
    result = fgsm(tiny, images, labels, epsilon=epsilon)
    assert torch.equal(result, torch.from_numpy(expected))


def test_fgsm_defaults_to_the_current_prediction_and_can_target(tiny, images):
    hand, x = HandModel(tiny), images.numpy()
    predicted = hand.logits(x).argmax(1)
    assert torch.equal(fgsm(tiny, images, epsilon=0.05), torch.from_numpy(hand_fgsm(hand, x, predicted, 0.05)))
    targets = other_classes(tiny, images)
    expected = hand_fgsm(hand, x, targets.numpy(), 0.05, targeted=True)
    assert torch.equal(fgsm(tiny, images, targets, epsilon=0.05, targeted=True), torch.from_numpy(expected))


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("epsilon, steps, step_size", [(8 / 255, 5, 2 / 255), (0.1, 7, 0.03), (0.5, 3, 0.4)])
def test_pgd_matches_hand_derivation(tiny, images, epsilon, steps, step_size, random_start):
    labels = torch.tensor([3, 2, 1, 0, 0])
    noise = documented_start_noise(images.shape, seed=11) if random_start else None
    expected = hand_pgd(HandModel(tiny), images.numpy(), labels.numpy(), epsilon, steps, step_size, noise)
    result = pgd(tiny, images, labels, epsilon=epsilon, steps=steps, step_size=step_size,
                 random_start=random_start, seed=11, show_progress=False)
    assert torch.equal(result, torch.from_numpy(expected))


def test_pgd_targeted_and_default_step_size_match_hand_derivation(tiny, images):
    targets = other_classes(tiny, images)
    epsilon, steps = 0.2, 4
    noise = documented_start_noise(images.shape, seed=3)
    # Madry et al.'s rule of thumb: 2.5 * epsilon / steps, so the walk can cross the ball.
    expected = hand_pgd(HandModel(tiny), images.numpy(), targets.numpy(), epsilon, steps,
                        2.5 * epsilon / steps, noise, targeted=True)
    result = pgd(tiny, images, targets, epsilon=epsilon, steps=steps, targeted=True, seed=3, show_progress=False)
    assert torch.equal(result, torch.from_numpy(expected))


def test_pgd_is_reproducible_by_seed(tiny, images):
    a = pgd(tiny, images, epsilon=0.1, steps=2, seed=5, show_progress=False)
    b = pgd(tiny, images, epsilon=0.1, steps=2, seed=5, show_progress=False)
    c = pgd(tiny, images, epsilon=0.1, steps=2, seed=6, show_progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_attacks_are_per_image_whatever_the_batch(tiny, images):
    labels = torch.tensor([0, 1, 2, 3, 1])
    whole = pgd(tiny, images, labels, epsilon=0.1, steps=3, random_start=False, show_progress=False)
    alone = torch.cat([
        pgd(tiny, images[i:i + 1], labels[i:i + 1], epsilon=0.1, steps=3, random_start=False, show_progress=False)
        for i in range(len(images))
    ])
    assert torch.equal(whole, alone)
    fooled = fooling_image(tiny, images, other_classes(tiny, images), step_size=0.3, show_progress=False)
    for i in range(len(images)):
        single = fooling_image(tiny, images[i:i + 1], other_classes(tiny, images)[i:i + 1], step_size=0.3,
                               show_progress=False)
        assert single.steps.item() == fooled.steps[i].item()
        assert torch.allclose(single.images[0], fooled.images[i], atol=1e-12)


def test_budget_and_pixel_range_hold_on_the_course_model(course):
    from vizlib.course_data import make_shapes

    x, labels, _ = make_shapes(4, "held_out", seed=3)
    epsilon = 8 / 255
    for adversarial in (
        fgsm(course, x, labels, epsilon=epsilon),
        pgd(course, x, labels, epsilon=epsilon, steps=2, show_progress=False),
        random_sign_noise(x, epsilon, seed=0),
    ):
        norms = perturbation_norms(x, adversarial)
        linf, l2 = norms.linf, norms.l2
        assert adversarial.min() >= 0 and adversarial.max() <= 1
        assert linf.max() <= epsilon + 1e-6
        assert (l2 <= epsilon * np.sqrt(x[0].numel()) + 1e-5).all()


# ---------------------------------------------------------------- fooling images


def test_fooling_image_reaches_its_target(tiny, images):
    targets = other_classes(tiny, images)
    result = fooling_image(tiny, images, targets, step_size=0.2, max_steps=200, show_progress=False)
    assert result.success.all()
    with torch.no_grad():
        assert torch.equal(tiny(result.images).argmax(1), targets)
    assert (result.steps >= 1).all() and (result.steps <= 200).all()
    assert result.images.min() >= 0 and result.images.max() <= 1
    # one step fewer would not have been enough: each image stops the first time it gets there
    assert result.steps.max() >= 2
    short = fooling_image(tiny, images, targets, step_size=0.2, max_steps=int(result.steps.max()) - 1,
                          show_progress=False)
    assert not short.success.all()


def test_fooling_image_first_step_is_the_normalised_score_gradient(tiny, images):
    hand, x = HandModel(tiny), images.numpy()
    targets = other_classes(tiny, images)
    g = hand.score_gradient(x, targets.numpy())
    lengths = np.sqrt((g.reshape(len(x), -1) ** 2).sum(1)).reshape(-1, 1, 1, 1)
    expected = np.clip(x + 0.01 * g / lengths, 0, 1)
    result = fooling_image(tiny, images, targets, step_size=0.01, max_steps=1, show_progress=False)
    assert result.steps.tolist() == [1] * len(x)
    assert not result.success.any()
    assert np.allclose(result.images.numpy(), expected, atol=1e-12)


def test_fooling_image_on_the_course_model(course):
    from vizlib.course_data import make_shapes

    x, labels, _ = make_shapes(1, "held_out", seed=0)
    targets = (labels + 4) % 8
    result = fooling_image(course, x, targets, step_size=0.25, max_steps=100, show_progress=False)
    assert result.success.all()
    assert torch.equal(predict(course, result.images).classes, targets)


# ---------------------------------------------------------------- the baseline and the helpers


def test_random_sign_noise_moves_every_pixel_by_epsilon():
    x = torch.full((2, 3, 5, 5), 0.5)
    noisy = random_sign_noise(x, 0.1, seed=4)
    assert torch.allclose((noisy - x).abs(), torch.full_like(x, 0.1))
    assert 0.3 < ((noisy - x) > 0).float().mean() < 0.7
    assert torch.equal(noisy, random_sign_noise(x, 0.1, seed=4))
    edge = random_sign_noise(torch.ones(1, 3, 4, 4), 0.2, seed=0)
    assert edge.max() <= 1 and edge.min() >= 0.8 - 1e-6


def test_perturbation_norms_against_numpy(images):
    other = (images + 0.05 * torch.randn(images.shape, dtype=torch.float64)).clamp(0, 1)
    norms = perturbation_norms(images, other)
    linf, l2 = norms.linf, norms.l2
    delta = (other - images).numpy().reshape(len(images), -1)
    assert np.allclose(linf.numpy(), np.abs(delta).max(1))
    assert np.allclose(l2.numpy(), np.sqrt((delta**2).sum(1)))


def test_show_attack_draws_three_columns(tiny, images):
    adversarial = fgsm(tiny, images[:2], epsilon=0.05)
    fig = show_attack(tiny, images[:2], adversarial)
    assert len(fig.axes) == 6
    assert fig.axes[1].get_title() == "perturbation x10"
    matplotlib.pyplot.close(fig)


# ---------------------------------------------------------------- bad input, model and input left alone


def _calls(targets):
    """Each attack as call(model, images, classes=None, targeted=False); fooling_image is always targeted."""
    return {
        "fgsm": lambda m, x, classes=None, targeted=False: fgsm(m, x, classes, epsilon=0.1, targeted=targeted),
        "pgd": lambda m, x, classes=None, targeted=False: pgd(m, x, classes, epsilon=0.1, steps=2,
                                                              targeted=targeted, show_progress=False),
        "fooling_image": lambda m, x, classes=targets, targeted=True: fooling_image(m, x, classes,
                                                                                   show_progress=False),
    }


@pytest.mark.parametrize("name", ["fgsm", "pgd", "fooling_image"])
def test_model_and_input_untouched(tiny, images, name):
    targets = other_classes(tiny, images)
    x = images.clone().requires_grad_(True)
    x.grad = torch.ones_like(x)
    kept = x.detach().clone()
    before = fingerprint(tiny)
    _calls(targets)[name](tiny, x)
    assert torch.equal(x.detach(), kept) and torch.equal(x.grad, torch.ones_like(x))
    assert_unchanged(tiny, before)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "fooling_image"])
def test_class_index_out_of_range(tiny, images, name):
    call = _calls(other_classes(tiny, images))[name]
    before = fingerprint(tiny)
    with pytest.raises(ValueError, match="valid indices are 0 to 3"):
        call(tiny, images, torch.tensor([0, 1, 2, 3, 4]), targeted=True)
    with pytest.raises(ValueError, match="valid indices are 0 to 3"):
        call(tiny, images, -1, targeted=True)
    if name != "fooling_image":
        with pytest.raises(ValueError, match="valid indices are 0 to 3"):
            call(tiny, images, torch.tensor([0, 1, 9, 3, 1]))
        with pytest.raises(ValueError, match="3 class indices for 5 images"):
            call(tiny, images, torch.tensor([0, 1, 2]))
        with pytest.raises(ValueError, match="a targeted attack needs classes"):
            call(tiny, images, targeted=True)
        with pytest.raises(TypeError, match="targeted must be True or False"):
            call(tiny, images, 1, targeted=1)
    assert_unchanged(tiny, before)


def test_loss_gradient_takes_classes_as_every_technique_does(tiny, images):
    per_image = loss_gradient(tiny, images, torch.full((len(images),), 2))
    assert torch.equal(loss_gradient(tiny, images, 2), per_image)
    assert torch.equal(loss_gradient(tiny, images, [2] * len(images)), per_image)
    with pytest.raises(ValueError, match="valid indices are 0 to 3, got"):
        loss_gradient(tiny, images, 9)
    for needs_classes in (loss_gradient, fooling_image):       # neither predicts a class for None
        with pytest.raises(TypeError, match="got None: this function does not predict them"):
            needs_classes(tiny, images, None)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "fooling_image"])
def test_target_equal_to_the_current_prediction(tiny, images, name):
    targets = other_classes(tiny, images)
    targets[2] = predict(tiny, images).classes[2]
    before = fingerprint(tiny)
    with pytest.raises(ValueError, match=r"image\(s\) \[2\] are already predicted as their target"):
        _calls(targets)[name](tiny, images, targets, targeted=True)
    assert_unchanged(tiny, before)


@pytest.mark.parametrize("epsilon", [-0.01, 1.5, float("nan")])
def test_epsilon_outside_zero_one(tiny, images, epsilon):
    before = fingerprint(tiny)
    for call in (
        lambda: fgsm(tiny, images, epsilon=epsilon),
        lambda: pgd(tiny, images, epsilon=epsilon, show_progress=False),
        lambda: random_sign_noise(images, epsilon),
    ):
        with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
            call()
    with pytest.raises(TypeError, match=r"epsilon must be a number in \[0, 1\]"):
        fgsm(tiny, images, epsilon="8/255")
    assert_unchanged(tiny, before)


def test_wrong_shapes_and_settings(tiny, images):
    before = fingerprint(tiny)
    with pytest.raises(ValueError, match=r"4 dimensions \(N, 3, H, W\)"):
        fgsm(tiny, images[0], epsilon=0.1)
    with pytest.raises(ValueError, match="3 colour channels"):
        pgd(tiny, images[:, :1], epsilon=0.1)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        fooling_image(tiny, images * 255, 0)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        pgd(tiny, images, epsilon=0.1, steps=0)
    with pytest.raises(ValueError, match="step_size must be a positive number"):
        pgd(tiny, images, epsilon=0.1, step_size=-0.01)
    with pytest.raises(ValueError, match="max_steps must be a positive int"):
        fooling_image(tiny, images, other_classes(tiny, images), max_steps=0)
    with pytest.raises(ValueError, match="differ in shape"):
        perturbation_norms(images, images[:2])
    assert_unchanged(tiny, before)


def test_zero_gradient_is_a_clear_error_not_nan(images):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, CLASSES))
    model = freeze(VizModel(net.double(), name="flat", class_names="abcd", input_size=SIZE, mean=(0.5,) * 3,
                            std=(0.25,) * 3))
    model.mean, model.std = model.mean.double(), model.std.double()
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor([1.0, 0, 0, 0]))
    before = fingerprint(model)
    with pytest.raises(ValueError, match="gradient is exactly zero"):
        fooling_image(model, images, 1, show_progress=False)
    assert_unchanged(model, before)


def test_attack_explorer_moves_with_every_control(course):
    from explorer_drive import drive

    from vizlib.adversarial import attack_explorer
    from vizlib.course_data import make_shapes

    images = make_shapes(2, "held_out", seed=3).images
    moved = drive(attack_explorer(course, images, max_epsilon=8), course)
    assert set(moved) == {"image", "attack", "epsilon x255"}
