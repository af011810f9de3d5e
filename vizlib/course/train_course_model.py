"""Train the course model and write its weights into the package, vizlib/data (`make course-model`).

    python -m vizlib.course.train_course_model [--seed 0] [--epochs 10] [--train-size 49152]

The training set is rendered once (about 30 s); every batch is then flipped,
turned by multiples of 90 degrees and has its colour channels shuffled at
random, none of which changes a shape's class. Held-out accuracy is measured on the held-out backgrounds.
"""

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vizlib import config
from vizlib.course_data import AREA_RANGE, HELD_OUT_BACKGROUNDS, make_shapes
from vizlib.models import COURSE_WEIGHTS, course_model


def _augment(images, generator):
    """Flips, quarter turns and shuffled colour channels: none of them changes a shape's class."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    channels = torch.rand(len(images), 3, generator=generator).argsort(dim=1)
    images = images[torch.arange(len(images))[:, None], channels]
    quarter_turns = int(torch.randint(4, (1,), generator=generator))
    return torch.rot90(images, quarter_turns, dims=(2, 3))


@torch.no_grad()
def accuracy(model, images, labels, batch_size=512):
    """Share of images whose highest-scoring class is the label."""
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size].to(model.device))
        correct += (logits.argmax(1).cpu() == labels[start:start + batch_size]).sum().item()
    return correct / len(images)


def train(seed=0, epochs=10, train_size=49152, held_out_size=4096, batch_size=128, lr=3e-3):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    images, labels, _ = make_shapes(train_size, "train", seed)
    test_images, test_labels, _ = make_shapes(held_out_size, "held_out", seed)
    render_seconds = time.perf_counter() - start

    model = course_model(trained=False)
    model.mean.copy_(images.mean(dim=(0, 2, 3)).view(1, 3, 1, 1))
    model.std.copy_(images.std(dim=(0, 2, 3)).view(1, 3, 1, 1))
    model.net.requires_grad_(True)
    optimiser = torch.optim.AdamW(model.net.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * (train_size // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)

    for epoch in range(epochs):
        model.train()
        order = torch.randperm(train_size, generator=generator)
        batches = order[: steps // epochs * batch_size].view(-1, batch_size)
        for batch in config.progress(batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False):
            loss = F.cross_entropy(model(_augment(images[batch], generator)), labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
        model.eval()
        held_out = accuracy(model, test_images, test_labels)
        print(f"epoch {epoch + 1}: last loss {loss.item():.3f}, held-out accuracy {held_out:.4f}", flush=True)

    model.net.requires_grad_(False)
    train_seconds = time.perf_counter() - start
    return model, {
        "held_out_accuracy": held_out,
        "held_out_size": held_out_size,
        "held_out_backgrounds": list(HELD_OUT_BACKGROUNDS),
        "object_area_range": list(AREA_RANGE),
        "train_size": train_size,
        "epochs": epochs,
        "seed": seed,
        "render_seconds": round(render_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=49152)
    parser.add_argument("--held-out-size", type=int, default=4096)
    parser.add_argument("--out", default=str(COURSE_WEIGHTS))
    args = parser.parse_args(argv)
    model, metadata = train(
        seed=args.seed, epochs=args.epochs, train_size=args.train_size, held_out_size=args.held_out_size
    )
    out = Path(args.out)
    torch.save(model.state_dict(), out)
    out.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(json.dumps(metadata, indent=2))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
