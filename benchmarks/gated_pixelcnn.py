"""Gated PixelCNN and its plain two-stack variant on 8-bit MNIST: test bits/dim after
every epoch and training images per second; then, on one model of the course size, the
time of each probability query a-g and of both samplers, with the standard errors and
effective sample sizes of the Monte Carlo queries, and pictures of its samples and of
the queries for a few test digits.

MNIST here is ``../shared/datasets/mnist_10k.npz`` (9,000 train / 1,000 test digits of
the official test split, 256 levels). The UvA tutorial's gated model reaches 0.808
bits/dim on the full 60,000 images after 150 epochs; a few epochs on 9,000 images are
far from that and are meant for comparing the variants side by side.

    python benchmarks/gated_pixelcnn.py --epochs 1          # queries on the pretrained weights
    python benchmarks/gated_pixelcnn.py --epochs 3 --queries trained      # GPU

Training speed before a change to the package: check the old code out elsewhere and put
it first on the path, for example

    git worktree add ../before <commit>
    PYTHONPATH=../before python benchmarks/gated_pixelcnn.py --epochs 1 --variants gated \\
        --queries none --name gated_pixelcnn_mnist_before

Every result file records which commit of ``genlab`` it measured.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, SHARED_DATASETS, EpochRecorder, median, write_result  # noqa: E402

import genlab  # noqa: E402
from genlab import analysis  # noqa: E402
from genlab.datamodules import MNISTDataModule  # noqa: E402
from genlab.lightning_modules import GatedPixelCNN  # noqa: E402

TUTORIAL_REFERENCE_BITS_PER_DIM = 0.808
PRETRAINED = "gated_pixelcnn/mnist"


def mnist_8bit(batch_size: int) -> MNISTDataModule:
    path = SHARED_DATASETS / "mnist_10k.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: this benchmark reads MNIST from there")
    data = MNISTDataModule(path=str(path), num_levels=256, val_fraction=0.0, batch_size=batch_size)
    data.setup("fit")
    data.setup("test")
    return data


def genlab_code() -> dict:
    """Where the measured ``genlab`` came from: its folder, commit and whether it had
    uncommitted changes."""
    folder = Path(genlab.__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True
        ).stdout.strip()

    return {
        "path": str(folder),
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--", ".")),
    }


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


def timed(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The median seconds of ``repeats`` calls of ``run`` and the last call's result."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return median(times), result


def estimate_summary(estimate: analysis.Estimate) -> dict:
    """The likeliest value of a Monte Carlo estimate, its probability and standard error."""
    likeliest = int(estimate.probs.argmax())
    return {
        "likeliest_value": likeliest,
        "probability": estimate.probs[likeliest].item(),
        "standard_error": estimate.standard_error[likeliest].item(),
        "largest_standard_error": estimate.standard_error.max().item(),
        "effective_sample_size": estimate.effective_sample_size,
    }


def query_times(
    model: GatedPixelCNN, image: torch.Tensor, args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, dict]]:
    """Median seconds of each query on one conditioning image, with ``mc_samples`` Monte
    Carlo samples for b and d and ``completions`` images for f and g, and the summaries
    of estimates b and d.

    g is timed as one Metropolis sweep over the H*W/2 top pixels of chains started from
    noise (one forward pass per pixel). A Gibbs sweep redraws each top pixel from K
    scored completions of every chain, far too long to time whole on a CPU at K = 256;
    it is timed as one pixel update (``pixel_given_all_others`` on the chains) times the
    number of top pixels."""
    generator = torch.Generator().manual_seed(0)
    samples, completions = args.mc_samples, args.completions
    chains = image.expand(completions, *image.shape).clone()
    _, height, width = model.image_shape
    queries = {
        "a_first_pixel_marginal": lambda: analysis.first_pixel_marginal(model),
        "b_middle_pixel_marginal": lambda: analysis.middle_pixel_marginal(
            model, samples, generator=generator
        ),
        "c_middle_given_above_left": lambda: analysis.middle_given_above_left(model, image),
        "d_middle_given_below_right": lambda: analysis.middle_given_below_right(
            model, image, samples, generator=generator
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
    times, estimates = {}, {}
    for name, query in queries.items():
        times[name], result = timed(query, args.query_repeats)
        if isinstance(result, analysis.Estimate):
            estimates[name] = estimate_summary(result)
        print(name, f"{times[name]:.3f} s", estimates.get(name, ""), flush=True)
    times["g_gibbs_one_sweep_derived"] = times["g_gibbs_one_pixel_update"] * (height // 2) * width
    return times, estimates


def precise_estimates(
    model: GatedPixelCNN, image: torch.Tensor, samples_b: int, samples_d: int
) -> dict[str, dict]:
    """Queries b and d once each with enough samples to bring the standard error of the
    likeliest value below 0.01 (on this model and digit): the seconds that takes."""
    generator = torch.Generator().manual_seed(5)
    runs = {
        "b_middle_pixel_marginal": (
            samples_b,
            lambda: analysis.middle_pixel_marginal(model, samples_b, generator=generator),
        ),
        "d_middle_given_below_right": (
            samples_d,
            lambda: analysis.middle_given_below_right(model, image, samples_d, generator=generator),
        ),
    }
    results = {}
    for name, (samples, run) in runs.items():
        seconds, estimate = timed(run, 1)
        results[name] = {"samples": samples, "seconds": seconds, **estimate_summary(estimate)}
        print(name, results[name], flush=True)
    return results


def sampler_times(model: GatedPixelCNN, batch: int) -> dict:
    """Seconds to draw ``batch`` images with the cached and the naive sampler (one run
    each), and whether they drew the same images."""
    drawn = {}
    seconds = {}
    for cached in (True, False):
        generator = torch.Generator().manual_seed(1)
        started = time.perf_counter()
        drawn[cached] = model.sample(batch, generator=generator, cached=cached)
        seconds["cached" if cached else "naive"] = time.perf_counter() - started
        print("sample", batch, "cached" if cached else "naive", seconds, flush=True)
    return {"batch": batch, **seconds, "same_images": torch.equal(drawn[True], drawn[False])}


def query_model(source: str, trained: dict[str, GatedPixelCNN]) -> GatedPixelCNN:
    if source == "trained":
        return trained["gated"]
    from genlab import pretrained

    return pretrained.load(PRETRAINED)


def pictures(model: GatedPixelCNN, data: MNISTDataModule, name: str, samples: int) -> list[str]:
    """The model's samples and the query panel for three test digits, as PNGs."""
    from torchvision.utils import save_image

    from genlab.callbacks.queries import query_figure

    images = model.sample(64, generator=torch.Generator().manual_seed(2))
    sample_path = RESULTS / f"{name}_samples.png"
    save_image(images.float() / (model.num_levels - 1), sample_path, nrow=8, padding=1)
    digits = torch.stack([data.test_dataloader().dataset[i][0] for i in range(3)])
    figure = query_figure(model, digits, samples, 9, 5, generator=torch.Generator().manual_seed(3))
    query_path = RESULTS / f"{name}_queries.png"
    figure.savefig(query_path, dpi=110)
    return [sample_path.name, query_path.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="0 skips training")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--variants", nargs="+", default=["gated", "plain"])
    parser.add_argument(
        "--queries",
        choices=["pretrained", "trained", "none"],
        default="pretrained",
        help=f"time the queries on pretrained:{PRETRAINED}, the trained gated model, or skip",
    )
    parser.add_argument("--query-repeats", type=int, default=3)
    parser.add_argument("--mc-samples", type=int, default=1024, help="samples of queries b, d")
    parser.add_argument("--completions", type=int, default=4, help="images of queries f, g")
    parser.add_argument(
        "--precise-samples",
        type=int,
        nargs=2,
        default=[2304, 16384],
        metavar=("B", "D"),
        help="samples of one more run of b and d each, for standard errors below 0.01",
    )
    parser.add_argument("--sampler-batch", type=int, default=16)
    parser.add_argument("--name", default="gated_pixelcnn_mnist")
    args = parser.parse_args()

    data = mnist_8bit(args.batch_size)
    variants, trained = {}, {}
    for variant in args.variants if args.epochs > 0 else []:
        trained[variant], variants[variant] = train(variant, data, args.epochs)
        print(variants[variant], flush=True)
    results = {
        "dataset": "mnist_10k.npz, 8-bit (256 levels)",
        "genlab_code": genlab_code(),
        "train_images": len(data.train_dataloader().dataset),
        "test_images": len(data.test_dataloader().dataset),
        "batch_size": args.batch_size,
        "variants": variants,
        "tutorial_reference_bits_per_dim": TUTORIAL_REFERENCE_BITS_PER_DIM,
    }
    if args.queries != "none":
        model = query_model(args.queries, trained)
        image = data.test_dataloader().dataset[0][0]
        times, estimates = query_times(model, image, args)
        results["queries"] = {
            "model": f"pretrained:{PRETRAINED}" if args.queries == "pretrained" else "trained",
            "parameters": sum(p.numel() for p in model.parameters()),
            "image": "test digit 0",
            "mc_samples": args.mc_samples,
            "completions": args.completions,
            "repeats": args.query_repeats,
            "seconds": times,
            "estimates": estimates,
            "precise": precise_estimates(model, image, *args.precise_samples),
            "samplers": sampler_times(model, args.sampler_batch),
            "pictures": pictures(model, data, args.name, args.mc_samples),
        }
    write_result(args.name, results)


if __name__ == "__main__":
    main()
