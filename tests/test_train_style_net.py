"""Training the feed-forward style network: the loss network and the random state left alone, weights that
load, and the command that writes them."""

import numpy as np
import pytest
import torch

from model_state import assert_unchanged, fingerprint
from test_style_transfer import images
from tiny_networks import feature_network
from vizlib.course.train_style_net import main, train_transform_net, training_crops
from vizlib.style_transfer import load_transform_net, stylise


def test_training_leaves_a_trainable_loss_network_and_the_global_random_state_alone():
    model = feature_network()
    model.requires_grad_(True)                       # a loss network someone forgot to freeze
    before, state = fingerprint(model), torch.random.get_rng_state()
    result = train_transform_net(model, images(1, 16, 2), steps=2, batch_size=2, size=16,
                                 style_weights={"1": 1.0}, content_layer="3", show_progress=False)
    assert len(result.losses) == 2
    assert_unchanged(model, before)                  # no .grad written into the loss network
    assert torch.equal(torch.random.get_rng_state(), state)


def test_training_runs_a_few_steps_and_weights_round_trip(course, tmp_path):
    before = fingerprint(course)
    result = train_transform_net(course, images(1, 32, 2), steps=2, batch_size=2, size=32,
                                 style_weights={"features.relu1": 1.0}, show_progress=False)
    assert len(result.losses) == 2 and np.isfinite(result.losses).all()
    assert_unchanged(course, before)
    path = tmp_path / "net.pt"
    torch.save(result.net.state_dict(), path)
    loaded = load_transform_net("anything", path)
    x = images(1, 32, 3)
    assert torch.equal(stylise(loaded, x), stylise(result.net, x))
    with pytest.raises(FileNotFoundError, match="train one"):
        load_transform_net("no_such_style", tmp_path / "missing.pt")


def test_training_crops_are_seeded_square_images():
    crops = training_crops(3, 24, photographs=("coffee", "rocket"), generator=torch.Generator().manual_seed(1))
    again = training_crops(3, 24, photographs=("coffee", "rocket"), generator=torch.Generator().manual_seed(1))
    assert crops.shape == (3, 3, 24, 24) and 0 <= crops.min() and crops.max() <= 1
    assert torch.equal(crops, again)


def test_training_command_writes_weights_the_loader_accepts(tmp_path, capsys):
    out = tmp_path / "style_net.pt"
    main(["--style", "hubble_deep_field", "--steps", "1", "--size", "16", "--output", str(out)])
    net = load_transform_net("hubble_deep_field", out)
    assert not net.training and stylise(net, images(1, 16)).shape == (1, 3, 16, 16)
    assert "trained 1 steps" in capsys.readouterr().out
