"""One process against two DDP processes training the same model on the same global batch.

The course PixelCNN (5 mask-B 7x7 layers of 64 filters) trains on random binary 28x28
images held in memory for ``warmup`` + ``steps`` optimiser steps, on the CPU: once in a
single process with batches of ``global_batch`` images, once with Lightning's ``ddp``
strategy in two processes with batches of ``global_batch / 2`` each (Lightning's
``DistributedSampler`` splits the data, and DDP averages the gradients). The single
process uses every core as a thread; each DDP process gets half of them (on 2 cores: 2
threads against 1 + 1). Each run is its own ``python benchmarks/ddp.py --worker``
command, which Lightning's launcher starts again for the second process; the clock
runs on rank 0 from the end of the warm-up to the end of the last step, and rounds
alternate the two setups. Reported: images per second of each, medians over rounds,
and their ratio (two processes / one).

    python benchmarks/ddp.py                        # prints the figures as JSON
    python benchmarks/ddp.py --tiny --steps 2 --warmup 1 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (  # noqa: E402
    Clock,
    ClockCallback,
    RandomBinaryImages,
    benchmark_trainer,
    quiet_lightning,
)

from genlab.lightning_modules import PixelCNN  # noqa: E402

SEED = 0
TINY_NETWORK = dict(hidden_channels=8, num_layers=1, kernel_size=3)
COURSE_MODEL = "PixelCNN course network (plain, 64 filters, 5 mask-B 7x7 layers)"
TINY_MODEL = "PixelCNN, tiny (plain, 8 filters, one 3x3 mask-B layer)"


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def train(processes: int, steps: int, warmup: int, global_batch: int, tiny: bool) -> dict:
    """Fit the PixelCNN for ``warmup + steps`` steps in ``processes`` processes (run in
    each of them); rank 0 returns the figures, the other ranks an empty dict."""
    L.seed_everything(SEED, verbose=False)
    batch = global_batch // processes
    data = RandomBinaryImages(
        num_train=global_batch * (warmup + steps), batch_size=batch, val_fraction=0, seed=SEED
    )
    model = PixelCNN(image_shape=data.image_shape, num_levels=2, **(TINY_NETWORK if tiny else {}))
    clock = Clock(torch.device("cpu"), warmup, steps)
    with quiet_lightning():
        trainer = benchmark_trainer(
            warmup + steps,
            [ClockCallback(clock, lambda batch: len(batch[0]))],
            accelerator="cpu",
            devices=processes,
            strategy="ddp" if processes > 1 else "auto",
        )
        trainer.fit(model, datamodule=data)
    if not trainer.is_global_zero:
        return {}
    return {
        "processes": trainer.world_size,
        "batch_per_process": batch,
        "threads_per_process": torch.get_num_threads(),
        "images_per_second": clock.per_second() * trainer.world_size,
    }


def run_worker(
    processes: int, threads: int, steps: int, warmup: int, global_batch: int, tiny: bool
) -> dict:
    """``train`` in a fresh ``python benchmarks/ddp.py --worker`` command (and, for two
    processes, the copy Lightning starts), with ``threads`` threads per process."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            f"--processes={processes}",
            f"--steps={steps}",
            f"--warmup={warmup}",
            f"--global-batch={global_batch}",
            f"--out={out}",
            *(["--tiny"] if tiny else []),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def measure_ddp(
    steps: int = 10,
    warmup: int = 2,
    rounds: int = 3,
    global_batch: int = 32,
    tiny: bool = False,
) -> dict:
    """Images per second of one process (every core as a thread) and of two DDP
    processes (half the cores each) over ``steps`` timed steps of ``global_batch``
    images after ``warmup``, medians of ``rounds`` alternating rounds, and their ratio.
    ``tiny`` swaps in a tiny network for a smoke run."""
    if steps < 1 or warmup < 1 or rounds < 1:
        raise ValueError(f"steps, warmup and rounds must be >= 1, got {steps}, {warmup}, {rounds}")
    if global_batch < 2 or global_batch % 2:
        raise ValueError(f"global_batch must be even and >= 2, got {global_batch}")
    cores = available_cores()
    threads = {1: cores, 2: max(1, cores // 2)}
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for round_index in range(rounds):
        for processes in (1, 2) if round_index % 2 == 0 else (2, 1):
            figures = run_worker(processes, threads[processes], steps, warmup, global_batch, tiny)
            runs[processes].append(figures)
    single, ddp = (summary(runs[processes]) for processes in (1, 2))
    return {
        "model": TINY_MODEL if tiny else COURSE_MODEL,
        "data": "random binary 28x28 images held in memory",
        "device": "cpu",
        "strategy": "Lightning ddp (gloo) against a single process",
        "cores": cores,
        "threads": f"single process {threads[1]}, each DDP process {threads[2]}",
        "global_batch": global_batch,
        "steps": steps,
        "warmup_steps": warmup,
        "rounds": rounds,
        "single_process": single,
        "two_processes": ddp,
        "ratio": ddp["images_per_second"] / single["images_per_second"],
    }


def summary(runs: list[dict]) -> dict:
    """One setup's settings, its median images per second and every round's figure."""
    rates = [run["images_per_second"] for run in runs]
    settings = ("processes", "batch_per_process", "threads_per_process")
    return {
        **{key: runs[0][key] for key in settings},
        "images_per_second": statistics.median(rates),
        "rounds": rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--tiny", action="store_true", help="a tiny network, for a smoke run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        figures = train(args.processes, args.steps, args.warmup, args.global_batch, args.tiny)
        if figures:
            args.out.write_text(json.dumps(figures))
        return
    figures = measure_ddp(args.steps, args.warmup, args.rounds, args.global_batch, args.tiny)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
