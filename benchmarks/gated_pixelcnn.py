"""Gated PixelCNN and its plain two-stack variant on 8-bit MNIST: test bits/dim after
every epoch, training images per second, and the time of each probability query.

MNIST here is ``../shared/datasets/mnist_10k.npz`` (9,000 train / 1,000 test digits of
the official test split, 256 levels). The UvA tutorial's gated model reaches 0.808
bits/dim on the full 60,000 images after 150 epochs; a few epochs on 9,000 images are
far from that and are meant for comparing the variants side by side.

    python benchmarks/gated_pixelcnn.py --epochs 3                      # GPU
    python benchmarks/gated_pixelcnn.py --epochs 1 --mc-samples 8 --completions 2   # CPU
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED_DATASETS, EpochRecorder, median, write_result  # noqa: E402

from genlab import analysis  # noqa: E402
from genlab.datamodules import MNISTDataModule  # noqa: E402
from genlab.lightning_modules import GatedPixelCNN  # noqa: E402

TUTORIAL_REFERENCE_BITS_PER_DIM = 0.808


def mnist_8bit(batch_size: int) -> MNISTDataModule:
    path = SHARED_DATASETS / "mnist_10k.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: this benchmark reads MNIST from there")
    data = MNISTDataModule(path=str(path), num_levels=256, val_fraction=0.0, batch_size=batch_size)
    data.setup("fit")
    data.setup("test")
    return data


def train(variant: str, data: MNISTDataModule, epochs: int) -> tuple[GatedPixelCNN, dict]:
    L.seed_everything(0)
    model = GatedPixelCNN(data.image_shape, data.num_levels, variant=variant)
    recorder = EpochRecorder(data.test_dataloader())
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        callbacks=[recorder],
    )
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    return model, {
        "variant": variant,
        "hyperparameters": dict(model.hparams),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": recorder.epochs,
        "final_test_bits_per_dim": recorder.epochs[-1]["test_bits_per_dim"],
        "median_train_images_per_second": median(
            [e["train_images_per_second"] for e in recorder.epochs]
        ),
    }


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return median(times)


def query_times(
    model: GatedPixelCNN, image: torch.Tensor, mc_samples: int, completions: int, repeats: int
) -> dict[str, float]:
    """Median seconds of each query on one conditioning image, with ``mc_samples``
    Monte Carlo samples for b and d and ``completions`` images for f and g.

    g is timed as one Metropolis sweep over the H*W/2 top pixels of chains started from
    noise (one forward pass per pixel). A Gibbs sweep redraws each top pixel from K
    scored completions of every chain, far too long to time whole on a CPU at K = 256;
    it is timed as one pixel update (``pixel_given_all_others`` on the chains) times the
    number of top pixels."""
    generator = torch.Generator().manual_seed(0)
    chains = image.expand(completions, *image.shape).clone()
    _, height, width = model.image_shape
    queries = {
        "a_first_pixel_marginal": lambda: analysis.first_pixel_marginal(model),
        "b_middle_pixel_marginal": lambda: analysis.middle_pixel_marginal(
            model, mc_samples, generator=generator
        ),
        "c_middle_given_above_left": lambda: analysis.middle_given_above_left(model, image),
        "d_middle_given_below_right": lambda: analysis.middle_given_below_right(
            model, image, mc_samples, generator=generator
        ),
        "e_middle_given_all_others": lambda: analysis.middle_given_all_others(model, image),
        "f_bottom_given_top": lambda: analysis.sample_bottom_given_top(
            model, image, completions, generator=generator
        ),
        "g_top_given_bottom_one_sweep": lambda: analysis.sample_top_given_bottom(
            model, image, completions, 1, init="random", generator=generator
        ),
        "g_gibbs_one_pixel_update": lambda: analysis.pixel_given_all_others(model, chains, 0, 0),
    }
    times = {name: median_seconds(query, repeats) for name, query in queries.items()}
    times["g_gibbs_one_sweep_derived"] = times["g_gibbs_one_pixel_update"] * (height // 2) * width
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--query-repeats", type=int, default=3)
    parser.add_argument("--mc-samples", type=int, default=128, help="samples of queries b, d")
    parser.add_argument("--completions", type=int, default=4, help="images of queries f, g")
    args = parser.parse_args()

    data = mnist_8bit(args.batch_size)
    variants = {}
    for variant in ("gated", "plain"):
        model, record = train(variant, data, args.epochs)
        image = data.test_dataloader().dataset[0][0]
        record["query_seconds"] = query_times(
            model, image, args.mc_samples, args.completions, args.query_repeats
        )
        variants[variant] = record
        print(record, flush=True)
    write_result(
        "gated_pixelcnn_mnist",
        {
            "dataset": "mnist_10k.npz, 8-bit (256 levels)",
            "train_images": len(data.train_dataloader().dataset),
            "test_images": len(data.test_dataloader().dataset),
            "batch_size": args.batch_size,
            "query_settings": {"mc_samples": args.mc_samples, "completions": args.completions},
            "variants": variants,
            "tutorial_reference_bits_per_dim": TUTORIAL_REFERENCE_BITS_PER_DIM,
        },
    )


if __name__ == "__main__":
    main()
