"""Speed and scale: cached against naive PixelCNN and Gated PixelCNN sampling, the
Lightning training step against a plain PyTorch loop, and one process against two DDP
processes.

Each comparison is measured side by side in one run; run the script alone, since on a
machine with few cores any other load distorts the figures. Writes
``benchmarks/results/speed.json``.

Sampling uses the course networks, untrained (the cost of a sample does not depend on
the weights): the PixelCNN (7x7 mask A, five 7x7 mask-B layers of 64 filters, two 1x1
layers) on binary 28x28 images, and the Gated PixelCNN (8 layers of 64 channels, 3x3
windows, dilations 1, 2, 1, 4) on 8-bit 28x28 images. Both samplers draw from the same
seed and must return the same images.

    python benchmarks/speed.py                                # everything
    python benchmarks/speed.py --parts sampling --batches 1 16
    python benchmarks/speed.py --parts gated_sampling
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, median, write_result  # noqa: E402

from genlab.lightning_modules import GatedPixelCNN, PixelCNN  # noqa: E402

PARTS = ("sampling", "gated_sampling", "throughput", "ddp")
NAIVE_RUNS = {1: 3, 16: 3, 100: 1}
TARGET_SPEEDUPS = {1: 40, 16: 200, 100: 250}
GATED_NAIVE_RUNS = {1: 3, 16: 1}
GATED_TARGET_SPEEDUPS = {1: 20, 16: 100}


def timed_sample(model, batch: int, cached: bool) -> tuple[float, torch.Tensor]:
    """Seconds to draw ``batch`` images from a fixed seed, and the images."""
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    images = model.sample(batch, generator=generator, cached=cached)
    return time.perf_counter() - start, images


def sampling_at(
    model, batch: int, cached_runs: int, naive_runs: int, targets: dict[int, int]
) -> dict:
    """Cached and naive sampling at one batch size, alternating the two."""
    seconds: dict[bool, list[float]] = {True: [], False: []}
    images: dict[bool, torch.Tensor] = {}
    for run in range(max(cached_runs, naive_runs)):
        for cached, runs in ((True, cached_runs), (False, naive_runs)):
            if run < runs:
                elapsed, images[cached] = timed_sample(model, batch, cached)
                seconds[cached].append(elapsed)
    if not torch.equal(images[True], images[False]):
        raise RuntimeError(f"cached and naive samplers drew different images at batch {batch}")
    cached_median, naive_median = median(seconds[True]), median(seconds[False])
    record = {
        "batch": batch,
        "cached_seconds": cached_median,
        "naive_seconds": naive_median,
        "speedup": naive_median / cached_median,
        "target_speedup": targets.get(batch),
        "cached_runs": seconds[True],
        "naive_runs": seconds[False],
        "same_images": True,
    }
    print(json.dumps({k: v for k, v in record.items() if "runs" not in k}), flush=True)
    return record


def measure_sampling(batches: list[int], cached_runs: int) -> dict:
    """Cached against naive sampling of the course PixelCNN at each batch size."""
    torch.manual_seed(0)
    model = PixelCNN((1, 28, 28), 2).eval()
    timed_sample(model, 1, cached=True)
    timed_sample(model, 1, cached=False)
    return {
        "model": "PixelCNN course network (plain, 64 filters, 5 mask-B 7x7 layers), untrained",
        "image_shape": [1, 28, 28],
        "num_levels": 2,
        "naive": "the network on the rows drawn so far, once per subpixel (cached=False)",
        "cached": "each layer once per position (cached=True, genlab.nn.cached_pixelcnn)",
        "threads": torch.get_num_threads(),
        "results": [
            sampling_at(model, batch, cached_runs, NAIVE_RUNS.get(batch, 1), TARGET_SPEEDUPS)
            for batch in batches
        ],
    }


def measure_gated_sampling(batches: list[int], cached_runs: int) -> dict:
    """Cached against naive sampling of the course Gated PixelCNN at each batch size."""
    torch.manual_seed(0)
    model = GatedPixelCNN((1, 28, 28), 256).eval()
    timed_sample(model, 1, cached=True)
    return {
        "model": "Gated PixelCNN course network (8 gated layers of 64 channels, 3x3 windows, "
        "dilations 1, 2, 1, 4), untrained",
        "image_shape": [1, 28, 28],
        "num_levels": 256,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "naive": "the network on the rows drawn so far, once per pixel (cached=False)",
        "cached": "vertical stack once per row, horizontal stack once per position "
        "(cached=True, genlab.nn.cached_gated_pixelcnn)",
        "threads": torch.get_num_threads(),
        "results": [
            sampling_at(
                model, batch, cached_runs, GATED_NAIVE_RUNS.get(batch, 1), GATED_TARGET_SPEEDUPS
            )
            for batch in batches
        ],
    }


def previous_parts() -> dict:
    """The parts of an earlier ``speed.json``, kept when only some parts are re-run."""
    path = RESULTS / "speed.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    return {part: record[part] for part in PARTS if part in record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--batches", type=int, nargs="+", default=None, help="default: 1 16 100 (gated: 1 16)"
    )
    parser.add_argument("--cached-runs", type=int, default=5)
    args = parser.parse_args()
    measures = {
        "sampling": lambda: measure_sampling(args.batches or [1, 16, 100], args.cached_runs),
        "gated_sampling": lambda: measure_gated_sampling(args.batches or [1, 16], args.cached_runs),
        "throughput": lambda: import_module("throughput").measure_throughput(),
        "ddp": lambda: import_module("ddp").measure_ddp(),
    }
    results = previous_parts()
    for part in args.parts:
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        command = " ".join(["python", *sys.argv])
        results[part] = {**measures[part](), "measured_at": started, "command": command}
    print(write_result("speed", results))


if __name__ == "__main__":
    main()
