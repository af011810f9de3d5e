"""Run every benchmark and print one table (`make bench`).

    python -m benchmarks.run [-k occlusion] [-k saliency ...]

Each benchmarks/bench_*.py module defines `comparisons()`, yielding `Comparison`s.
"""

import argparse
import importlib
import pkgutil

import torch

import benchmarks
from benchmarks.harness import format_table, run


def discover():
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if info.name.startswith("bench_"):
            yield from importlib.import_module(f"benchmarks.{info.name}").comparisons()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", action="append", default=[],
                        help="only benchmarks whose name contains this (repeat for several)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = []
    for comparison in discover():
        if not args.k or any(k in comparison.name for k in args.k):
            results.append(run(comparison))
            print(f"done: {comparison.name}", flush=True)
    print(format_table(results))


if __name__ == "__main__":
    main()
