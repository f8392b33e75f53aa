"""PixelCNN (course architecture) on binarized MNIST and binary shapes: test nats/dim
after every epoch, training wall time and training images per second.

MNIST here is ``../shared/datasets/mnist_10k.npz`` (9,000 train / 1,000 test digits of
the official test split), so the figures are not comparable with the course reference
trained on the full 60,000 images (0.0756 nats/dim after 10 epochs).

    python benchmarks/pixelcnn_quality.py --dataset mnist --epochs 10
    python benchmarks/pixelcnn_quality.py --dataset shapes --epochs 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED_DATASETS, EpochRecorder, median, write_result  # noqa: E402

from genlab.datamodules import MNISTDataModule, ShapesDataModule  # noqa: E402
from genlab.lightning_modules import PixelCNN  # noqa: E402

COURSE_REFERENCE = {"mnist": 0.0756}


def data_module(dataset: str) -> L.LightningDataModule:
    if dataset == "mnist":
        path = SHARED_DATASETS / "mnist_10k.npz"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: this benchmark reads MNIST from there")
        return MNISTDataModule(path=str(path), num_levels=2, val_fraction=0.0, batch_size=128)
    return ShapesDataModule(colored=False, val_fraction=0.0, batch_size=128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist", "shapes"], required=True)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    L.seed_everything(0)
    data = data_module(args.dataset)
    data.setup("fit")
    data.setup("test")
    model = PixelCNN(data.image_shape, data.num_levels)
    recorder = EpochRecorder(data.test_dataloader())
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        callbacks=[recorder],
    )
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    total = time.perf_counter() - started

    write_result(
        f"pixelcnn_quality_{args.dataset}",
        {
            "model": "PixelCNN course architecture (7x7 A, 5x 7x7 B, 2x 1x1 B, 64 filters)",
            "dataset": args.dataset,
            "train_images": len(data.train_dataloader().dataset),
            "test_images": len(data.test_dataloader().dataset),
            "epochs": recorder.epochs,
            "final_test_nats_per_dim": recorder.epochs[-1]["test_nats_per_dim"],
            "wall_seconds": total,
            "median_train_images_per_second": median(
                [e["train_images_per_second"] for e in recorder.epochs]
            ),
            "course_reference_nats_per_dim": COURSE_REFERENCE.get(args.dataset),
        },
    )


if __name__ == "__main__":
    main()
