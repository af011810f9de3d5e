"""Train the feed-forward style network of notebook 14 and write its weights to vizlib/data/ (`make style-net`).

    python -m vizlib.course.train_style_net --style hubble_deep_field --minutes 12

`train_transform_net` trains a `vizlib.style_transfer.TransformNet` so that one forward
pass minimises the style-transfer loss (Johnson et al. 2016) for every content image:
random crops of offline photographs, Adam, the loss network left untouched. The notebook
runs it for a few steps; the shipped network ran for 12 minutes on 2 CPU cores.
"""

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from vizlib import config
from vizlib.arguments import check_batch_size
from vizlib.counts import check_positive_int
from vizlib.images import load_sample_image, resize
from vizlib.models import course_model
from vizlib.style_transfer import (
    CONTENT_WEIGHT, TV_WEIGHT, StyleTransferLoss, TransformNet, default_style_model, style_image, weights_path,
)

# Photographs the feed-forward network trains on; astronaut and chelsea are kept unseen.
TRAINING_PHOTOGRAPHS = ("coffee", "rocket", "china", "flower", "camera", "coins", "moon", "clock")


def training_crops(n, size, *, photographs=TRAINING_PHOTOGRAPHS, generator=None):
    """n random size x size crops (random scale, random flip) of the offline photographs."""
    crops, images = [], [load_sample_image(name) for name in photographs]    # decoded once, cropped n times
    for index in torch.randint(len(photographs), (n,), generator=generator).tolist():
        image = images[index]
        short = min(image.shape[-2:])
        side = int(torch.randint(size, max(size + 1, short // 2), (1,), generator=generator))
        top = int(torch.randint(image.shape[-2] - side + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[-1] - side + 1, (1,), generator=generator))
        crop = resize(image[..., top:top + side, left:left + side], size)
        if torch.rand((), generator=generator) < 0.5:
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.cat(crops)


@dataclass(frozen=True)
class TrainingResult:
    net: TransformNet
    losses: tuple       # the training loss at each step
    seconds: float


def train_transform_net(model, style, *, steps=300, batch_size=2, size=64, lr=2e-3, seed=0, net=None,
                        max_seconds=None, show_progress=None, **loss_options):
    """Train a TransformNet so that net(c) minimises the style-transfer loss for every content c.

    The loss network (`model`, and `style_model` in loss_options) is left as it is, even
    when its weights require gradients: only the transformation network learns. Returns a
    TrainingResult (the net in eval mode).
    """
    check_positive_int(steps, "steps")
    check_batch_size(batch_size)
    loss = StyleTransferLoss(model, style, **loss_options)
    generator = torch.Generator().manual_seed(seed)
    if net is None:
        with torch.random.fork_rng(devices=[]):      # seeded weights; the caller's random state is kept
            torch.manual_seed(seed)
            net = TransformNet()
    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    pool = training_crops(max(64, batch_size), size, generator=generator)
    losses, start = [], time.perf_counter()
    for step in config.progress(range(steps), desc="training", enabled=show_progress, leave=False):
        if step % 50 == 49:   # refresh part of the crop pool now and then
            pool[: len(pool) // 4] = training_crops(len(pool) // 4, size, generator=generator)
        batch = pool[torch.randint(len(pool), (batch_size,), generator=generator)]
        with torch.enable_grad():
            value = loss(net(batch), loss.content_targets(batch)) / batch_size
            optimiser.zero_grad()
            value.backward(inputs=list(net.parameters()))   # never into the loss network's weights
            optimiser.step()
        losses.append(value.item())
        if max_seconds and time.perf_counter() - start > max_seconds:
            break
    net.eval()
    return TrainingResult(net, tuple(losses), time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="hubble_deep_field")
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    config.seed_everything(0)
    result = train_transform_net(course_model(), style_image(args.style), style_model=default_style_model(),
                                 steps=args.steps, batch_size=args.batch_size, size=args.size,
                                 content_weight=CONTENT_WEIGHT, tv_weight=TV_WEIGHT, max_seconds=args.minutes * 60,
                                 show_progress=False)
    path = args.output or weights_path(args.style)
    torch.save(result.net.state_dict(), path)
    print(f"trained {len(result.losses)} steps in {result.seconds / 60:.1f} min; loss "
          f"{result.losses[0]:.3f} -> {np.mean(result.losses[-20:]):.3f}; saved {path}")


if __name__ == "__main__":
    main()
