"""Fetch what the course uses online, once, with progress bars (`make download`).

    python -m vizlib.course.download [--models squeezenet1_1 alexnet vgg19] [--no-imagenette]

ImageNet weights go to torchvision's own cache (torch.hub.get_dir()), Imagenette
(160 px, about 100 MB) to VIZLIB_CACHE. Everything works offline afterwards.
"""

import argparse

from vizlib.datasets import Imagenette
from vizlib.models import TORCHVISION_MODELS, cached_weights_path, imagenet_model

DEFAULT_MODELS = ("squeezenet1_1", "alexnet", "vgg19")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS), choices=TORCHVISION_MODELS)
    parser.add_argument("--no-imagenette", action="store_true", help="skip the Imagenette download")
    args = parser.parse_args(argv)
    for name in args.models:
        print(f"{name}: {cached_weights_path(name)}")
        imagenet_model(name, download=True)
    if not args.no_imagenette:
        dataset = Imagenette("val", download=True)  # one archive holds both splits
        print(f"Imagenette: {len(dataset)} validation images")


if __name__ == "__main__":
    main()
