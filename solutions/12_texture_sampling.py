"""Reference solutions to the exercises of notebook 12 (instructor only; the student release leaves this folder out)."""
import time

import torch

import vizlib
from vizlib.texture_sampling import efros_leung, load_texture, nearest_window_distance, scanline_synthesis

SEED = 0
SAMPLE = vizlib.fast_or(full=64, fast=48)
OUT = vizlib.fast_or(full=96, fast=48)


def distinct_sources(source):
    """Share of the output's pixels that come from distinct sample positions."""
    return len(set(map(tuple, source.reshape(-1, 2).tolist()))) / source[..., 0].numel()


def exercise_1():
    """Window 5 against 11: brick needs the larger window far more than grass does."""
    distance, seconds = {}, {}
    for name in ("brick", "grass"):
        sample = load_texture(name, SAMPLE)
        for window in (5, 11):
            start = time.perf_counter()
            result = efros_leung(sample, OUT, window, seed=SEED, show_progress=False)
            seconds[name, window] = time.perf_counter() - start
            distance[name, window] = nearest_window_distance(result.images, sample, 5).item()
            print(f"{name:6s} window {window:2d}: 5x5 nearest-window distance {distance[name, window]:.4f}, "
                  f"{seconds[name, window]:.1f} s")
    gain = {name: distance[name, 5] / distance[name, 11] for name in ("brick", "grass")}
    print("gain from window 5 to 11:", {k: round(v, 2) for k, v in gain.items()})
    assert gain["brick"] > 2 and gain["grass"] < 1.5, gain
    return distance, seconds


def exercise_2():
    """tolerance=0 against the default random pick among near-best windows."""
    rows = {}
    for name in ("brick", "gravel"):
        sample = load_texture(name, SAMPLE)
        for label, options in (("tolerance 0", {"tolerance": 0.0}), ("default", {})):
            result = efros_leung(sample, OUT, 11, seed=SEED, show_progress=False, **options)
            rows[name, label] = distinct_sources(result.source)
            print(f"{name:6s} {label:11s}: share of distinct source positions {rows[name, label]:.3f}")
    for name in ("brick", "gravel"):
        assert abs(rows[name, "tolerance 0"] - rows[name, "default"]) < 0.1, rows
    return rows


def exercise_3():
    """Spacing 1 (whole front at once), 2 and 3: distance to the sample and run time."""
    sample = load_texture("gravel", SAMPLE)
    rows = {}
    for spacing, batch_size in ((1, 1024), (2, 64), (3, 64)):
        start = time.perf_counter()
        result = efros_leung(sample, OUT, 11, seed=SEED, show_progress=False, spacing=spacing, batch_size=batch_size)
        rows[spacing] = (nearest_window_distance(result.images, sample, 5).item(), time.perf_counter() - start)
        print(f"spacing {spacing}: 5x5 nearest-window distance {rows[spacing][0]:.4f}, {rows[spacing][1]:.1f} s")
    assert rows[1][0] > 1.3 * rows[3][0], rows
    return rows


def exercise_4():
    """A second scanline pass: the top rows improve; the seam of a 2 x 2 tiling stays."""
    sample = load_texture("brick", SAMPLE)
    first = scanline_synthesis(sample, OUT, 11, seed=SEED, show_progress=False)
    second = scanline_synthesis(sample, OUT, 11, seed=SEED, init=first.images, show_progress=False)
    rows = {}
    for label, result in (("first", first), ("second", second)):
        image = result.images
        tiled = torch.cat([torch.cat([image, image], 3)] * 2, 2)
        band = slice(OUT - 8, OUT + 8)                          # rows across the seam where bottom meets top
        rows[label] = {"top rows": nearest_window_distance(image[..., :8, :], sample, 5).item(),
                       "below row 16": nearest_window_distance(image[..., 16:, :], sample, 5).item(),
                       "tiling seam": nearest_window_distance(tiled[..., band, :], sample, 5).item()}
        print(f"{label:6s} pass: " + ", ".join(f"{k} {v:.4f}" for k, v in rows[label].items()))
    assert rows["second"]["top rows"] < 0.8 * rows["first"]["top rows"], rows
    for label in rows:
        assert rows[label]["tiling seam"] > 1.5 * rows[label]["below row 16"], rows
    return rows
