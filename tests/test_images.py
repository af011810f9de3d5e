import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vizlib.images import (
    SAMPLE_IMAGES, centre_crop_resize, check_images, load_sample_image, resize, sample_crop, to_image_tensor,
    to_numpy_image,
)


def test_uint8_numpy_becomes_float_in_unit_range():
    array = np.array([[[0, 128, 255]]], dtype=np.uint8)  # one RGB pixel
    image = to_image_tensor(array)
    assert image.shape == (1, 3, 1, 1) and image.dtype == torch.float32
    assert torch.allclose(image.flatten(), torch.tensor([0.0, 128 / 255, 1.0]))


def test_pil_greyscale_and_alpha_become_rgb():
    grey = Image.fromarray(np.full((4, 5), 51, np.uint8), mode="L")
    assert torch.allclose(to_image_tensor(grey), torch.full((1, 3, 4, 5), 0.2))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    image = to_image_tensor(rgba)
    assert image.shape == (1, 3, 2, 2) and image[0, 0].eq(1).all() and image[0, 1:].eq(0).all()


def test_tensors_pass_through_with_a_batch_dimension():
    chw = torch.rand(3, 8, 9)
    assert torch.equal(to_image_tensor(chw)[0], chw)
    assert torch.equal(to_image_tensor(chw.unsqueeze(0)), chw.unsqueeze(0))


def test_float_out_of_range_is_refused_not_rescaled():
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255"):
        to_image_tensor(np.full((4, 4, 3), 200.0))


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (np.zeros((2, 2, 3)), TypeError, "torch.Tensor"),
        (torch.rand(3, 8, 8), ValueError, "unsqueeze"),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), TypeError, "uint8"),
        (torch.rand(1, 3, 8, 8) * 255, ValueError, "0-255"),
        (torch.rand(1, 1, 8, 8), ValueError, "3 colour channels"),
        (torch.rand(1, 3, 8, 8) - 0.5, ValueError, r"\[0, 1\]"),
    ],
)
def test_check_images_says_what_was_expected_and_given(bad, error, words):
    with pytest.raises(error, match=words):
        check_images(bad)


@pytest.mark.parametrize("value, words",
                         [(float("nan"), "NaN"), (float("inf"), "infinite"), (-float("inf"), "infinite")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_a_single_nan_or_infinite_pixel_anywhere_is_refused(value, words, dtype):
    for index in ((0, 0, 0, 0), (2, 1, 5, 3), (3, 2, 7, 7)):     # first, middle and last pixel of the batch
        images = torch.rand(4, 3, 8, 8).to(dtype)
        images[index] = value
        with pytest.raises(ValueError, match=f"expected values in \\[0, 1\\], got {words}"):
            check_images(images)


def test_every_sample_image_loads_offline_as_rgb():
    for name in SAMPLE_IMAGES:
        image = load_sample_image(name, size=32)
        assert image.shape == (1, 3, 32, 32), name
        assert 0 <= image.min() and image.max() <= 1


def test_greyscale_sample_repeats_its_channel():
    brick = load_sample_image("brick")
    assert brick.shape == (1, 3, 512, 512)
    assert torch.equal(brick[:, 0], brick[:, 1]) and torch.equal(brick[:, 0], brick[:, 2])


def test_unknown_sample_image_lists_the_names():
    with pytest.raises(ValueError, match="astronaut"):
        load_sample_image("lena")


def test_resizing_keeps_range_and_crops_the_centre():
    image = torch.zeros(1, 3, 40, 80)
    image[..., 16:64] = 1.0  # a white centre band a little wider than the central square
    square = centre_crop_resize(image, 20)
    assert square.shape == (1, 3, 20, 20) and square.min() > 0.99
    assert resize(torch.rand(2, 3, 30, 30), (7, 11)).shape == (2, 3, 7, 11)


def test_to_numpy_image_is_hwc_and_refuses_batches():
    image = torch.rand(1, 3, 4, 6)
    assert to_numpy_image(image).shape == (4, 6, 3)
    with pytest.raises(ValueError, match="one image"):
        to_numpy_image(torch.rand(2, 3, 4, 6))


def test_sample_crop_is_the_square_piece_resized():
    coffee = load_sample_image("coffee")                                   # 400 x 600
    assert torch.equal(sample_crop("coffee", 32, (10, 20, 32)), coffee[..., 10:42, 20:52])
    half = sample_crop("coffee", 16, (10, 20, 32))
    assert half.shape == (1, 3, 16, 16)
    assert torch.allclose(half, F.avg_pool2d(coffee[..., 10:42, 20:52], 2), atol=0.05)
    assert torch.equal(sample_crop("coffee", 400, None), coffee[..., :400, :400])   # the top-left square
    with pytest.raises(ValueError, match=r"crop \(390, 0, 32\) does not fit in coffee \(400x600\)"):
        sample_crop("coffee", 16, (390, 0, 32))
