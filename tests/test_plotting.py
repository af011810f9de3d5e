import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vizlib.plotting import overlay, show_images, show_mask  # noqa: E402


def test_grid_draws_every_image_with_its_title():
    images = torch.rand(5, 3, 8, 8)
    fig = show_images(images, titles=list("abcde"), ncols=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 5 and [ax.get_title() for ax in drawn] == list("abcde")
    assert np.allclose(drawn[1].images[0].get_array(), images[1].permute(1, 2, 0).numpy())
    plt.close(fig)


def test_grid_takes_maps_and_refuses_mismatched_titles():
    fig = show_images([torch.rand(6, 6), np.zeros((6, 6, 3))])
    assert len([ax for ax in fig.axes if ax.images]) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="titles"):
        show_images(torch.rand(2, 3, 4, 4), titles=["one"])


def test_overlay_blends_a_rescaled_heat_map():
    image = torch.zeros(1, 3, 4, 4)
    heat = torch.arange(16.0).view(4, 4)
    blended = overlay(image, heat, alpha=1.0, cmap="gray")
    assert blended.shape == (4, 4, 3)
    assert np.allclose(blended[0, 0], 0) and np.allclose(blended[3, 3], 1)
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, torch.zeros(3, 3))


def test_mask_outline_marks_the_border_only():
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    drawn = show_mask(torch.zeros(1, 3, 7, 7), mask, colour=(1, 0, 0))
    assert drawn[1, 3, 0] == 1 and drawn[3, 3, 0] == 0 and drawn[0, 0, 0] == 0
