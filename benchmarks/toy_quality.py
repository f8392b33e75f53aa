"""Test NLL of the 1D and 2D models and of MADE on binary shapes, each trained from its
config, next to the floor no model can beat: the exact entropy of the generating
distribution (and that distribution's own NLL on the same test points, which differs
from the entropy by sampling noise only).

The course references (histogram 2.562 and DMoL 2.555 nats/dim on course dataset 1,
MADE 0.0623 on binary shapes) were measured on the course's own samples; ours are drawn
from the distributions the issue describes, so they are guides, not targets.

    python benchmarks/toy_quality.py                 # every model
    python benchmarks/toy_quality.py --only histogram/course1 made/shapes   # prints only

Pictures (pmfs, densities, MADE samples) land in ``--workdir`` (a temporary folder
unless given), one run folder per model, as ``genlab fit`` would write them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result  # noqa: E402

from genlab.analysis import mean_nats_per_dim  # noqa: E402
from genlab.cli import run_cli  # noqa: E402
from genlab.datamodules.toy import ToyDataModule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    "histogram/course1",
    "logistic_mixture/course1",
    "histogram/course2",
    "logistic_mixture/course2",
    "histogram/warmup",
    "logistic_mixture/warmup",
    "autoregressive2d/procedural",
    "made/procedural2d",
    "made/shapes",
]
COURSE_REFERENCE = {
    "histogram/course1": 2.562,
    "logistic_mixture/course1": 2.555,
    "made/shapes": 0.0623,
}


def floor(datamodule: ToyDataModule, test: torch.Tensor) -> dict:
    """The exact entropy per dim, and the true distribution's NLL per dim on ``test`` with
    its standard error."""
    dims = test.shape[1]
    with np.errstate(divide="ignore"):
        log_pmf = np.log(datamodule.true_pmf())
    per_example = -log_pmf[tuple(test.T.numpy())] / dims
    return {
        "entropy_nats_per_dim": datamodule.entropy() / dims,
        "true_distribution_test_nats_per_dim": float(per_example.mean()),
        "true_distribution_test_standard_error": float(per_example.std() / math.sqrt(len(test))),
    }


def run(config: str) -> dict:
    started = time.perf_counter()
    cli = run_cli(["fit", f"--config={ROOT}/configs/{config}.yaml", "--trainer.accelerator=cpu"])
    seconds = time.perf_counter() - started
    datamodule = cli.datamodule
    datamodule.setup("test")
    test_loader = datamodule.test_dataloader()
    nats = mean_nats_per_dim(cli.model, test_loader)
    record = {
        "config": config,
        "epochs": cli.trainer.current_epoch,
        "fit_seconds": seconds,
        "test_nats_per_dim": nats,
        "test_bits_per_dim": nats / math.log(2),
        "course_reference_nats_per_dim": COURSE_REFERENCE.get(config),
        "run_folder": str(Path(cli.trainer.log_dir).resolve()),
    }
    if isinstance(datamodule, ToyDataModule):
        record.update(floor(datamodule, datamodule.splits["test"]))
    print(record, flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=CONFIGS, default=CONFIGS)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="genlab-toy-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    records = [run(config) for config in args.only]
    if args.only != CONFIGS:
        print("a partial run: nothing written to benchmarks/results")
        return
    path = write_result("toy_quality", {"workdir": str(workdir), "models": records})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
