"""iGPT sampling of full 28x28 binary images (784 tokens) with and without the key-value
cache, at the course size (width 128, 4 heads, 2 layers), for several batch sizes.

Both paths draw the same images from the same seed; the speed-up is the ratio of their
total times, measured side by side in one run after a warm-up sample (cached runs: the
median of 3; uncached: of 3 at batch 1, a single run above). Writes the JSON and a
per-step plot.

    python benchmarks/kv_cache.py                    # batches 1, 16, 100
    python benchmarks/kv_cache.py --batches 1 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, write_result  # noqa: E402

from genlab.analysis import decoding_step_seconds  # noqa: E402
from genlab.lightning_modules import IGPT  # noqa: E402


def step_seconds(model: IGPT, batch: int, use_cache: bool, runs: int) -> list[float]:
    """Per-step seconds of the run whose total is the median of ``runs`` runs."""
    measured = [
        decoding_step_seconds(model, batch, use_cache, torch.Generator().manual_seed(0))
        for _ in range(runs)
    ]
    return sorted(measured, key=sum)[len(measured) // 2]


def measure(model: IGPT, batch: int, uncached_runs: int) -> dict:
    """Cached sampling: the median of 3 runs; uncached: of ``uncached_runs`` runs (one
    uncached run at batch 100 takes minutes on 2 cores)."""
    steps = {True: step_seconds(model, batch, True, 3)}
    steps[False] = step_seconds(model, batch, False, uncached_runs)
    totals = {use_cache: sum(seconds) for use_cache, seconds in steps.items()}
    record = {
        "batch": batch,
        "cached_seconds": totals[True],
        "uncached_seconds": totals[False],
        "speedup": totals[False] / totals[True],
        "cached_runs": 3,
        "uncached_runs": uncached_runs,
        "cached_median_step_seconds": statistics.median(steps[True]),
        "uncached_first_100_median_step_seconds": statistics.median(steps[False][:100]),
        "uncached_last_100_median_step_seconds": statistics.median(steps[False][-100:]),
        "steps": {"cached": steps[True], "uncached": steps[False]},
    }
    print({k: v for k, v in record.items() if k != "steps"}, flush=True)
    return record


def plot(records: list[dict], path: Path) -> None:
    figure, ax = plt.subplots(figsize=(7, 4))
    for record in records:
        for key, style in (("uncached", "-"), ("cached", "--")):
            ax.plot(record["steps"][key], style, label=f"batch {record['batch']}, {key}")
    ax.set_yscale("log")
    ax.set_xlabel("decoding step (token index)")
    ax.set_ylabel("seconds per step")
    ax.set_title("iGPT sampling, 784 tokens, with and without the KV cache")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 100])
    args = parser.parse_args()
    torch.manual_seed(0)
    model = IGPT((1, 28, 28), 2, width=128, num_heads=4, num_layers=2).eval()
    decoding_step_seconds(model, 1, True)
    records = [measure(model, batch, 3 if batch == 1 else 1) for batch in args.batches]
    plot(records, RESULTS / "kv_cache_steps.png")
    summary = [{k: v for k, v in r.items() if k != "steps"} for r in records]
    write_result(
        "kv_cache_igpt",
        {
            "model": "iGPT width 128, 4 heads, 2 layers, untrained (speed ignores the weights)",
            "tokens": 784,
            "results": summary,
            "targets": {"batch_1_speedup": 30, "batch_16_speedup": 80},
            "per_step_plot": "benchmarks/results/kv_cache_steps.png",
        },
    )


if __name__ == "__main__":
    main()
