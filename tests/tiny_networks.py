"""A small feature network shared by the texture and style tests (the classifier for finite differences
is the `tiny_model` fixture in conftest.py)."""

import torch
from torch import nn

from vizlib.wrapper import VizModel, freeze


def feature_network(dtype=torch.float32):
    """conv 3->4 -> ReLU -> conv 4->5 -> ReLU -> conv 5->2, all 3x3 with padding: layers "1" and "3" are
    ReLU outputs at the input's size. Seeded weights; the global random state is left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(5, 2, 3, padding=1))
    model = VizModel(net, name="tiny", class_names=(), input_size=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    return freeze(model.to(dtype))


class _OutOfOrder(nn.Module):
    """Modules defined in another order than `forward` runs them: "late" is defined before "early",
    "unused" never runs, and "head" runs last."""

    def __init__(self):
        super().__init__()
        self.late = nn.Conv2d(4, 5, 3, padding=1)
        self.unused = nn.Conv2d(5, 5, 1)
        self.early = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(5, 2, 1)

    def forward(self, x):
        return self.head(self.relu(self.late(self.relu(self.early(x)))))


def out_of_order_network():
    """A seeded `_OutOfOrder` behind the wrapper; its "relu" module runs twice per forward pass."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = _OutOfOrder()
    return freeze(VizModel(net, name="out of order", class_names=(), input_size=None, mean=(0.5,) * 3,
                           std=(0.25,) * 3))
