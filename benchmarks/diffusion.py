"""Diffusion on 2D points: sample quality for each data set, sampler and number of steps
T, against held-out data and next to the data-vs-data floor; the likelihood error on the
Gaussian set, where the exact density is known; wall time per 1,000 samples.

For each data set one model (the config's architecture and schedule) is trained for
``--train-steps`` Adam steps, then:

* quality: ``--num-samples`` samples (DDIM, and DDPM-style with lambda = 1) against as
  many test points, by
  - MMD^2 (unbiased) with a sum of three RBF kernels ``exp(-|x - y|^2 / (2 h^2))``,
    bandwidths h = 0.05, 0.2 and 0.8 (the finest detail of the sets to their full size);
  - sliced Wasserstein-2 over 256 random directions (fixed seed): the root mean square
    distance between the sorted projections;
  the floor is the same two figures between the validation and the test points (two
  independent draws of the data, of the same size): a sampler cannot be told from the
  data below it.
* likelihood (Gaussian set): the model's exact ODE log-density of the test points against
  the true log-density, mean absolute error and mean difference, in nats per point, and
  the ELBO's mean next to them; every data set's test nats per dimension.
* speed: median wall time of ``--timing-repeats`` runs of 1,000 samples, per sampler and T.

    python benchmarks/diffusion.py                         # every data set (~10 min, 2 cores)
    python benchmarks/diffusion.py --datasets moons --train-steps 500   # prints only

Only a run over every data set with the default settings writes
``benchmarks/results/diffusion.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, write_result  # noqa: E402

from genlab.datamodules import PointsDataModule  # noqa: E402
from genlab.lightning_modules import Diffusion  # noqa: E402
from genlab.nn.diffusion import gaussian_log_prob  # noqa: E402
from genlab.nn.latent import rbf_mmd2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["square", "moons", "swiss_roll", "eight_gaussians", "gaussian"]
STEPS = [1, 2, 5, 10, 20, 50, 100, 500]
SAMPLERS = ["ddim", "ddpm"]
BANDWIDTHS = (0.05, 0.2, 0.8)
PROJECTIONS = 256
DEFAULTS = dict(train_steps=10_000, num_samples=1000, timing_repeats=3, steps=STEPS)


def mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 between samples ``x`` and ``y`` under the sum of the RBF kernels of
    ``BANDWIDTHS`` (the MMD^2 of a sum of kernels is the sum of their MMD^2s)."""
    return float(sum(rbf_mmd2(x, y, bandwidth) for bandwidth in BANDWIDTHS))


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int = PROJECTIONS) -> float:
    """Sliced Wasserstein-2 between equal-size samples over fixed random directions."""
    angles = torch.rand(projections, generator=torch.Generator().manual_seed(0)) * math.pi
    directions = torch.stack([angles.cos(), angles.sin()], dim=1).to(x)
    x_sorted = (x @ directions.T).sort(dim=0).values
    y_sorted = (y @ directions.T).sort(dim=0).values
    return float((x_sorted - y_sorted).pow(2).mean().sqrt())


def quality(points: torch.Tensor, reference: torch.Tensor) -> dict:
    return {"mmd2": mmd2(points, reference), "sliced_w2": sliced_wasserstein(points, reference)}


def train(
    dataset: str, train_steps: int, seed: int = 0
) -> tuple[Diffusion, PointsDataModule, float]:
    """A model of the config's shape trained for ``train_steps`` steps; and the seconds."""
    L.seed_everything(seed, verbose=False)
    schedule = {"eight_gaussians": ("cosine", {}), "swiss_roll": ("exponential", {"exponent": 7.0})}
    name, options = schedule.get(dataset, ("exponential", {"exponent": 5.0}))
    noise = 0.02 if dataset == "swiss_roll" else 0.05
    data = PointsDataModule(dataset, noise=noise, seed=seed)
    model = Diffusion(schedule=name, schedule_options=options)
    trainer = L.Trainer(
        max_steps=train_steps,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    started = time.perf_counter()
    trainer.fit(model, datamodule=data)
    return model.eval(), data, time.perf_counter() - started


def seconds_per_1000(model: Diffusion, sampler: str, steps: int, repeats: int) -> float:
    times = []
    for seed in range(repeats):
        generator = torch.Generator().manual_seed(seed)
        started = time.perf_counter()
        model.sample(1000, generator=generator, steps=steps, sampler=sampler)
        times.append(time.perf_counter() - started)
    return median(times)


def likelihood(model: Diffusion, data: PointsDataModule, test: torch.Tensor) -> dict:
    """Test nats per dim; on the Gaussian set also the error against the exact density."""
    model_log_prob = model.log_prob(test).double()
    record = {"test_nats_per_dim": float(-model_log_prob.mean() / 2)}
    if data.hparams.dataset == "gaussian":
        exact = gaussian_log_prob(test.double(), data.mean, data.covariance)
        elbo = torch.stack([model.elbo(test) for _ in range(4)]).mean(0).double()
        record.update(
            exact_mean_log_prob=float(exact.mean()),
            model_mean_log_prob=float(model_log_prob.mean()),
            log_prob_mean_abs_error=float((model_log_prob - exact).abs().mean()),
            log_prob_mean_error=float((model_log_prob - exact).mean()),
            elbo_mean=float(elbo.mean()),
        )
    return record


def run(dataset: str, args: argparse.Namespace) -> dict:
    model, data, fit_seconds = train(dataset, args.train_steps)
    test, floor_points = data.points("test")[: args.num_samples], data.points("val")
    floor_points = floor_points[: len(test)]
    record = {
        "dataset": dataset,
        "schedule": repr(model.schedule),
        "train_steps": args.train_steps,
        "fit_seconds": fit_seconds,
        "floor": quality(floor_points, test),
        **likelihood(model, data, test),
        "samplers": [],
    }
    for sampler in SAMPLERS:
        for steps in args.steps:
            generator = torch.Generator().manual_seed(1)
            points = model.sample(len(test), generator=generator, steps=steps, sampler=sampler)
            entry = {"sampler": sampler, "steps": steps, **quality(points, test)}
            entry["seconds_per_1000"] = seconds_per_1000(model, sampler, steps, args.timing_repeats)
            record["samplers"].append(entry)
            print(dataset, entry, flush=True)
    print({k: v for k, v in record.items() if k != "samplers"}, flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=DATASETS)
    parser.add_argument("--train-steps", type=int, default=DEFAULTS["train_steps"])
    parser.add_argument("--num-samples", type=int, default=DEFAULTS["num_samples"])
    parser.add_argument("--timing-repeats", type=int, default=DEFAULTS["timing_repeats"])
    parser.add_argument("--steps", type=int, nargs="+", default=DEFAULTS["steps"])
    args = parser.parse_args()
    started = time.perf_counter()
    records = [run(dataset, args) for dataset in args.datasets]
    settings = {key: getattr(args, key) for key in DEFAULTS}
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.datasets != DATASETS or settings != DEFAULTS:
        print("not the default run: nothing written to benchmarks/results")
        return
    results = {
        "settings": {**settings, "bandwidths": BANDWIDTHS, "projections": PROJECTIONS},
        "datasets": records,
    }
    print(f"wrote {write_result('diffusion', results)}")


if __name__ == "__main__":
    main()
