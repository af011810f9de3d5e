"""Reference solutions to the exercises of notebook 13 (instructor only; the student release leaves this folder out)."""
from vizlib.gram_texture import (
    default_texture_weights, gram_distance, gram_matrix, random_filter_bank, synthesise_texture, texture_filter_bank,
    texture_sample,
)
from vizlib.hooks import layer_features
from vizlib.texture_sampling import nearest_window_distance

SEED = 0
SIZE = 48
STEPS = 40


def _setup(name="brick"):
    extractor = texture_filter_bank(seed=SEED)
    return extractor, default_texture_weights(extractor), texture_sample(name, SIZE)


def judge_scores(images, sample):
    """(Gram distance in the notebook's judge network, 8x8 nearest-patch distance): neither is optimised."""
    judge = random_filter_bank(kernel_sizes=(7,), channels=64, octaves=4, seed=1)
    layers = list(default_texture_weights(judge))
    return (gram_distance(judge, images, layers, sample).mean().item(),
            nearest_window_distance(images, sample, 8, stride=2).mean().item())


def exercise_1():
    """Gram sizes per layer, then relative=True against relative=False."""
    extractor, weights, sample = _setup()
    features = layer_features(extractor, sample, list(weights))
    sizes = {name: gram_matrix(f).pow(2).mean().item() for name, f in features.items()}
    print("mean squared Gram entry: " + ", ".join(f"{k} {v:.1e}" for k, v in sizes.items()))
    scores = {}
    for relative in (True, False):
        result = synthesise_texture(extractor, sample, weights, steps=STEPS, seed=SEED, relative=relative)
        scores[relative] = judge_scores(result.images, sample)
        gram, patch = scores[relative]
        print(f"relative={relative}: judge Gram distance {gram:.4f}, patch distance {patch:.4f}")
    assert abs(scores[True][0] - scores[False][0]) < 0.005 and abs(scores[True][1] - scores[False][1]) < 0.01, scores
    return sizes, scores


def exercise_2():
    """Only the full-resolution layers, only the coarsest octave, and all of them."""
    extractor, weights, sample = _setup()
    choices = {"all": dict(weights),
               "full resolution": {k: 1.0 for k in weights if "down" not in k},
               "coarsest octave": {k: 1.0 for k in weights if "down8" in k}}
    scores = {}
    for label, chosen in choices.items():
        result = synthesise_texture(extractor, sample, chosen, steps=STEPS, seed=SEED)
        scores[label] = judge_scores(result.images, sample)
        print(f"{label:16s}: judge Gram distance {scores[label][0]:.4f}, patch distance {scores[label][1]:.4f}")
    assert scores["coarsest octave"][0] > 5 * scores["full resolution"][0], scores
    assert scores["full resolution"][0] > 1.5 * scores["all"][0], scores
    return scores


def exercise_3():
    """The sparse star field: what the Gram matrices of a mostly black image ask for."""
    extractor, weights, sample = _setup("hubble")
    result = synthesise_texture(extractor, sample, weights, steps=STEPS, seed=SEED)
    bright = {"sample": (sample.amax(1) > 0.5).float().mean().item(),
              "result": (result.images.amax(1) > 0.5).float().mean().item()}
    print(f"mean value: sample {sample.mean():.3f}, result {result.images.mean():.3f}; "
          f"share of pixels above 0.5: sample {bright['sample']:.4f}, result {bright['result']:.4f}")
    assert abs(result.images.mean().item() - sample.mean().item()) < 0.03
    assert bright["result"] < 0.05
    return bright


def exercise_4():
    """Twice the sample's size, same steps: the Gram match is much worse."""
    extractor, weights, sample = _setup()
    same = synthesise_texture(extractor, sample, weights, steps=STEPS, seed=SEED)
    double = synthesise_texture(extractor, sample, weights, size=2 * SIZE, steps=STEPS, seed=SEED)
    scores = {"same size": judge_scores(same.images, sample), "double size": judge_scores(double.images, sample)}
    for label, (gram, patch) in scores.items():
        print(f"{label:11s}: judge Gram distance {gram:.4f}, patch distance {patch:.4f}")
    assert scores["double size"][0] > 3 * scores["same size"][0], scores
    return scores


def exercise_5():
    """L-BFGS against Adam (lr 0.05) for the same number of steps."""
    extractor, weights, sample = _setup()
    runs = {"lbfgs": synthesise_texture(extractor, sample, weights, steps=STEPS, seed=SEED),
            "adam": synthesise_texture(extractor, sample, weights, steps=STEPS, seed=SEED, optimizer="adam", lr=0.05)}
    for label, run in runs.items():
        print(f"{label:5s}: final loss {run.losses[-1]:.4f}, judge and patch distances "
              + ", ".join(f"{v:.4f}" for v in judge_scores(run.images, sample)))
    assert runs["adam"].losses[-1] > 20 * runs["lbfgs"].losses[-1]
    return runs
