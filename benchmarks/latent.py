"""Latent-variable models on 4-bit MNIST: how tight the VAE's bound is, and how well an
adversarial autoencoder reconstructs and matches its prior.

Data: ``../shared/datasets/mnist_10k.npz`` (9,000 training digits, a tenth of them for
validation, and 1,000 test digits), quantized to 16 gray levels.

1. VAE with a 20- and a 2-dimensional code: test negative ELBO in bits/dim (split into
   reconstruction and KL) and the importance-weighted estimate (Burda et al., 2016)
   with ``--iw-samples`` draws, both over the whole test split.
2. Adversarial autoencoder (8-dimensional code, lambda 0.9), with a deterministic and a
   stochastic encoder: test reconstruction nats/dim, and the unbiased squared MMD
   between the 1,000 encoded test codes and 1,000 prior draws, with an RBF kernel of
   bandwidth sqrt(latent_dim); next to it, the MMD between two sets of 1,000 prior
   draws, the floor that sampling noise alone gives.

Every model reports its training wall time and the seconds of its test figures.

    python benchmarks/latent.py
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

from common import SHARED_DATASETS, write_result  # noqa: E402

from genlab.datamodules import MNISTDataModule  # noqa: E402
from genlab.lightning_modules import AAE, VAE  # noqa: E402
from genlab.nn.latent import rbf_mmd2  # noqa: E402
from genlab.nn.modes import evaluating  # noqa: E402

NUM_LEVELS = 16
NAME = "latent_mnist_16levels"
AAE_CONFIG = dict(latent_dim=8, hidden_channels=32, reconstruction_weight=0.9)


def mnist(batch_size: int) -> MNISTDataModule:
    path = SHARED_DATASETS / "mnist_10k.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: this benchmark reads MNIST from there")
    data = MNISTDataModule(
        path=str(path), num_levels=NUM_LEVELS, val_fraction=0.1, batch_size=batch_size, seed=0
    )
    data.setup()
    return data


def trainer(epochs: int, limit_batches: int | None) -> L.Trainer:
    limits = {} if limit_batches is None else {"limit_train_batches": limit_batches}
    return L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        **limits,
    )


def fit(model: L.LightningModule, data: MNISTDataModule, args: argparse.Namespace, epochs: int):
    """Train ``model`` (no validation); the trainer and the training seconds."""
    run = trainer(epochs, args.limit_batches)
    started = time.perf_counter()
    run.fit(model, datamodule=data)
    return run, time.perf_counter() - started


def vae_figures(data: MNISTDataModule, args: argparse.Namespace, latent_dim: int) -> dict:
    L.seed_everything(args.seed)
    model = VAE(
        data.image_shape, NUM_LEVELS, latent_dim=latent_dim, test_iw_samples=args.iw_samples
    )
    run, train_seconds = fit(model, data, args, args.vae_epochs)
    started = time.perf_counter()
    metrics = run.test(model, datamodule=data, verbose=False)[0]
    figures = {
        "latent_dim": latent_dim,
        "epochs": args.vae_epochs,
        "iw_samples": args.iw_samples,
        "train_seconds": train_seconds,
        "test_seconds": time.perf_counter() - started,
        **{name.replace("/", "_"): value for name, value in sorted(metrics.items())},
    }
    print("vae", figures, flush=True)
    return figures


def aae_figures(data: MNISTDataModule, args: argparse.Namespace, stochastic: bool) -> dict:
    L.seed_everything(args.seed)
    model = AAE(data.image_shape, NUM_LEVELS, stochastic_encoder=stochastic, **AAE_CONFIG)
    run, train_seconds = fit(model, data, args, args.aae_epochs)
    started = time.perf_counter()
    metrics = run.test(model, datamodule=data, verbose=False)[0]
    images = data.test_set.images.long()
    generator = torch.Generator().manual_seed(args.seed)
    with evaluating(model):
        codes = torch.cat([model.encode(chunk, generator=generator) for chunk in images.split(250)])
    prior = torch.randn(2, len(codes), model.latent_dim, generator=generator)
    bandwidth = math.sqrt(model.latent_dim)
    figures = {
        "encoder": "stochastic" if stochastic else "deterministic",
        **AAE_CONFIG,
        "epochs": args.aae_epochs,
        "train_seconds": train_seconds,
        "test_recon_nats_per_dim": metrics["test/recon_nats_per_dim"],
        "test_recon_bits_per_dim": metrics["test/recon_nats_per_dim"] / math.log(2),
        "mmd_bandwidth": bandwidth,
        "test_codes_vs_prior_mmd2": float(rbf_mmd2(codes, prior[0], bandwidth)),
        "prior_vs_prior_mmd2": float(rbf_mmd2(prior[0], prior[1], bandwidth)),
        "test_code_mean": codes.mean(0).tolist(),
        "test_code_std": codes.std(0).tolist(),
        "test_seconds": time.perf_counter() - started,
    }
    print("aae", figures, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae-epochs", type=int, default=15)
    parser.add_argument("--aae-epochs", type=int, default=10)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--limit-batches", type=int, help="training batches per epoch (default: all; smoke runs)"
    )
    parser.add_argument("--name", default=NAME, help="results/<name>.json")
    args = parser.parse_args()
    started = time.perf_counter()
    data = mnist(batch_size=128)
    vae = [vae_figures(data, args, latent_dim) for latent_dim in (20, 2)]
    aae = [aae_figures(data, args, stochastic) for stochastic in (False, True)]
    path = write_result(
        args.name,
        {
            "data": "mnist_10k.npz, 16 levels; 8,100 train, 900 val (unused), 1,000 test",
            "seed": args.seed,
            "batch_size": 128,
            "limit_batches": args.limit_batches,
            "vae": vae,
            "aae": aae,
            "total_seconds": time.perf_counter() - started,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
