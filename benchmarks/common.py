"""What every benchmark records beside its figures: the machine, the date, the command."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch

from genlab.analysis import mean_nats_per_dim

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """A description of where the figures were measured."""
    info = {
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
    return info


def write_result(name: str, results: dict) -> Path:
    """Write ``results`` with the machine, the date and the command to ``results/name.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **results,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)


class EpochRecorder(L.Callback):
    """Times each training epoch (without evaluation) and scores the test split after it."""

    def __init__(self, test_loader) -> None:
        self.test_loader = test_loader
        self.epochs: list[dict] = []
        self.images = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.images = 0
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch[0])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self.started
        nats = mean_nats_per_dim(pl_module, self.test_loader)
        self.epochs.append(
            {
                "epoch": trainer.current_epoch + 1,
                "test_nats_per_dim": nats,
                "test_bits_per_dim": nats / math.log(2),
                "train_seconds": seconds,
                "train_images_per_second": self.images / seconds,
            }
        )
        print(self.epochs[-1], flush=True)
