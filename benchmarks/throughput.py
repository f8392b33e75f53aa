"""Training throughput: Lightning's training step against a plain PyTorch loop over the
same model class, optimiser and in-memory batches, measured side by side in one run.

The Lightning side is ``Trainer.fit`` with the model's own ``training_step`` (its
logging included) and data module, the callbacks ``genlab fit`` always adds (the
non-finite loss check, a host-device wait per step, and per-epoch seeding), and the
logger, checkpoints, progress bar and validation off, as a benchmark runs it. The plain
side is the loop a person would write over the same data loader::

    loss = model.batch_nats(batch).mean(); loss.backward(); opt.step(); opt.zero_grad()

(plus the learning-rate schedule's step where the model has one). The two take turns
step by step inside one fit (``PlainStepsBetween``), ``warmup`` steps each, then
``steps`` timed ones; ``rounds`` such fits. The figures are median step times over all
timed steps, in images (PixelCNN, binary 28x28 MNIST, or random images when
``../shared/datasets/mnist_10k.npz`` is absent) or tokens (character GPT on Tiny
Shakespeare, or generated text) per second, and the ratio lightning / plain.

    python benchmarks/throughput.py                   # both families, GPU when there is one
    python benchmarks/throughput.py --families char_gpt --steps 20 --rounds 3
    python benchmarks/throughput.py --tiny            # a smoke run of tiny models in seconds
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import move_data_to_device

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED_DATASETS  # noqa: E402

from genlab.callbacks.epoch_seeds import EpochSeeds  # noqa: E402
from genlab.callbacks.finite_loss import FiniteLoss  # noqa: E402
from genlab.datamodules import ImageDataModule, InMemoryImages, MNISTDataModule  # noqa: E402
from genlab.datamodules.text import TextDataModule  # noqa: E402
from genlab.lightning_modules import CharGPT, PixelCNN  # noqa: E402

FAMILIES = ("pixelcnn", "char_gpt")
PRECISIONS = ("32-true", "bf16-mixed")
SEED = 0
DEFAULT_STEPS = {"pixelcnn": 10, "char_gpt": 100}


class RandomBinaryImages(ImageDataModule):
    """Uniformly random binary 28x28 images held in memory: MNIST's shape and data path
    (``InMemoryImages``) without the file."""

    image_shape = (1, 28, 28)
    num_levels = 2
    name = "random_binary"

    def __init__(self, num_train: int = 10_000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_train = num_train

    def load_splits(self) -> tuple[InMemoryImages, InMemoryImages]:
        rng = np.random.default_rng(self.hparams.seed)
        images = rng.integers(0, 2, (self.num_train, *self.image_shape), dtype=np.uint8)
        labels = np.full(self.num_train, -1)
        train = InMemoryImages.from_numpy(images, labels)
        return train, train.select(np.arange(min(100, self.num_train)))


@dataclass
class Workload:
    """A model family to time: how to build its model (seeded by the caller), its data
    module, and how many items (images, tokens) a batch holds."""

    unit: str
    batch_size: int
    build_model: Callable[[], L.LightningModule]
    datamodule: L.LightningDataModule
    items_of: Callable[[tuple], int]


def pixelcnn_workload(batch_size: int, tiny: bool) -> Workload:
    """The course PixelCNN (5 mask-B layers of 64 filters, 7x7) on binary 28x28 MNIST."""
    mnist = SHARED_DATASETS / "mnist_10k.npz"
    if tiny:
        data = RandomBinaryImages(num_train=4 * batch_size, batch_size=batch_size)
    elif mnist.is_file():
        data = MNISTDataModule(path=str(mnist), num_levels=2, batch_size=batch_size, seed=SEED)
    else:
        data = RandomBinaryImages(batch_size=batch_size, seed=SEED)
    size = dict(hidden_channels=8, num_layers=1, kernel_size=3) if tiny else {}
    return Workload(
        unit="images",
        batch_size=batch_size,
        build_model=lambda: PixelCNN(image_shape=data.image_shape, num_levels=2, **size),
        datamodule=data,
        items_of=lambda batch: len(batch[0]),
    )


def char_gpt_workload(batch_size: int, tiny: bool, folder: Path) -> Workload:
    """nanoGPT's small character model (4 layers, 4 heads, width 128, 64 positions) on
    Tiny Shakespeare, or on generated text when the file is absent."""
    text = SHARED_DATASETS / "tinyshakespeare.txt"
    if tiny or not text.is_file():
        rng = np.random.default_rng(SEED)
        text = folder / "generated.txt"
        letters = rng.choice(list("abcdefghijklmnopqrstuvwxyz \n"), 20_000 if tiny else 400_000)
        text.write_text("".join(letters))
    data = TextDataModule(path=str(text), context_length=64, batch_size=batch_size)
    size = dict(width=16, num_heads=2, num_layers=1) if tiny else {}
    return Workload(
        unit="tokens",
        batch_size=batch_size,
        build_model=lambda: CharGPT(vocabulary=data.vocabulary, context_length=64, **size),
        datamodule=data,
        items_of=lambda batch: batch[1].numel(),
    )


class Clock:
    """Items and wall time from the end of the warm-up to the end of the last timed step,
    waiting for the GPU at those two moments only."""

    def __init__(self, device: torch.device, warmup: int, steps: int) -> None:
        self.device, self.warmup, self.last = device, warmup, warmup + steps
        self.steps = self.items = 0
        self.started = self.stopped = 0.0

    def tick(self, items: int) -> None:
        """Called after each optimiser step with the batch's item count."""
        self.steps += 1
        if self.steps > self.warmup:
            self.items += items
        if self.steps == self.warmup:
            self.started = self.now()
        elif self.steps == self.last:
            self.stopped = self.now()

    def now(self) -> float:
        return wait_for(self.device)

    def per_second(self) -> float:
        return self.items / (self.stopped - self.started)


class ClockCallback(L.Callback):
    """Ticks a ``Clock`` at the end of every training batch of a fit."""

    def __init__(self, clock: Clock, items_of: Callable[[tuple], int]) -> None:
        self.clock, self.items_of = clock, items_of

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.clock.tick(self.items_of(batch))


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's information lines (devices, tips, why a fit stopped) off for a while."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def benchmark_trainer(max_steps: int, callbacks: list, **options: Any) -> L.Trainer:
    """A Trainer for ``max_steps`` training steps and nothing else a benchmark would
    time by mistake: no validation, logger, checkpoints, progress bar or summary."""
    return L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **options,
    )


def wait_for(device: torch.device) -> float:
    """The time, once the device has finished what it was given."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def endless(loader: torch.utils.data.DataLoader) -> Iterator:
    """The loader's batches, epoch after epoch, each epoch's order the one Lightning's
    loop gets (it tells an epoch-seeded sampler the epoch)."""
    for epoch in itertools.count():
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader


class PlainLoop:
    """The loop a person would write, one step per call: the same model class,
    optimiser, schedule and data loader as the Lightning side."""

    def __init__(self, workload: Workload, device: torch.device, precision: str) -> None:
        torch.manual_seed(SEED)
        self.model = workload.build_model().to(device).train()
        configured = self.model.configure_optimizers()
        self.optimizer, self.schedule = configured, None
        if isinstance(configured, dict):
            self.optimizer = configured["optimizer"]
            self.schedule = configured["lr_scheduler"]["scheduler"]
        workload.datamodule.setup("fit")
        self.batches = endless(workload.datamodule.train_dataloader())
        self.device, self.items_of = device, workload.items_of
        self.bf16 = precision == "bf16-mixed"

    def step(self) -> int:
        """One optimiser step; the number of items it trained on."""
        batch = move_data_to_device(next(self.batches), self.device)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            loss = self.model.batch_nats(batch).mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        if self.schedule is not None:
            self.schedule.step()
        return self.items_of(batch)


class PlainStepsBetween(L.Callback):
    """After every step of a Lightning fit, one step of a ``PlainLoop``, timed apart:
    the two loops take turns step by step, so each pair of steps meets the machine in
    the same state. A Lightning step's time runs from the end of the plain step before
    it to the end of its own batch (Lightning's hooks, logging and data fetching
    included); a plain step's, from there to the end of the plain step."""

    def __init__(self, workload: Workload, device: torch.device, precision: str) -> None:
        self.workload, self.device, self.precision = workload, device, precision
        self.seconds: dict[str, list[float]] = {"lightning": [], "plain": []}
        self.items: list[int] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.loop = PlainLoop(self.workload, self.device, self.precision)
        self.mark = wait_for(self.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        lightning_done = wait_for(self.device)
        self.items.append(self.loop.step())
        plain_done = wait_for(self.device)
        self.seconds["lightning"].append(lightning_done - self.mark)
        self.seconds["plain"].append(plain_done - lightning_done)
        self.mark = plain_done


def interleaved_fit(
    workload: Workload, steps: int, warmup: int, device: torch.device, precision: str
) -> PlainStepsBetween:
    """A Lightning fit of ``warmup + steps`` steps with a plain step after each; the
    callback holding the step times, warm-up included."""
    L.seed_everything(SEED, verbose=False)
    model = workload.build_model()
    turns = PlainStepsBetween(workload, device, precision)
    with quiet_lightning():
        trainer = benchmark_trainer(
            warmup + steps,
            [turns, FiniteLoss(), EpochSeeds()],
            accelerator=device.type if device.type != "cuda" else "gpu",
            devices=1,
            precision=precision,
        )
        trainer.fit(model, datamodule=workload.datamodule)
    return turns


def compare(
    workload: Workload, steps: int, warmup: int, rounds: int, device: torch.device, precision: str
) -> dict:
    """``rounds`` interleaved fits (``PlainStepsBetween``): the median step time of each
    loop over all rounds' timed steps, their ratio, the median of the ratios of each
    step pair, and each round's ratio. A shared machine's speed drifts by more than
    the loops differ, within a minute too; steps taken in turns meet the same drift."""
    seconds: dict[str, list[float]] = {"lightning": [], "plain": []}
    round_ratios = []
    items = 0
    for _ in range(rounds):
        turns = interleaved_fit(workload, steps, warmup, device, precision)
        timed = {side: times[warmup:] for side, times in turns.seconds.items()}
        for side in seconds:
            seconds[side].extend(timed[side])
        round_ratios.append(
            statistics.median(timed["plain"]) / statistics.median(timed["lightning"])
        )
        items = statistics.median(turns.items)
    lightning, plain = (statistics.median(seconds[side]) for side in ("lightning", "plain"))
    pairs = zip(seconds["plain"], seconds["lightning"], strict=True)
    return {
        "unit": workload.unit,
        "batch_size": workload.batch_size,
        "steps": steps,
        "lightning_per_second": items / lightning,
        "plain_per_second": items / plain,
        "median_step_seconds": {"lightning": lightning, "plain": plain},
        "ratio": plain / lightning,
        "paired_step_ratio": statistics.median(p / q for p, q in pairs),
        "round_ratios": round_ratios,
    }


def measure_throughput(
    families: tuple[str, ...] = FAMILIES,
    steps: int | None = None,
    warmup: int = 3,
    rounds: int = 5,
    device: str | None = None,
    precision: str = "32-true",
    batch_sizes: dict[str, int] | None = None,
    tiny: bool = False,
) -> dict:
    """Lightning against plain-loop training throughput of each family on ``device``
    (default: the GPU when there is one): ``rounds`` rounds per side of ``steps`` timed
    steps after ``warmup`` (by default 10 for PixelCNN and 100 for the far shorter steps
    of the character GPT). Batches unless ``batch_sizes`` says otherwise: ``pixelcnn``
    128 images on a GPU and 32 on a CPU (where one step of the course network on 128
    images takes seconds), ``char_gpt`` 12 windows of 64 tokens. ``tiny`` swaps in tiny
    models and data for a smoke run. On 2 CPU cores the defaults take some 5 minutes,
    nearly all of them PixelCNN's."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"families: unknown {unknown}, expected some of {list(FAMILIES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    steps_of = {f: DEFAULT_STEPS[f] if steps is None else steps for f in families}
    if min(steps_of.values()) < 1 or warmup < 1 or rounds < 1:
        raise ValueError(f"steps, warmup and rounds must be >= 1, got {steps}, {warmup}, {rounds}")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = {"pixelcnn": 128 if target.type == "cuda" else 32, "char_gpt": 12}
    sizes.update(batch_sizes or {})
    results: dict = {
        "device": str(target),
        "precision": precision,
        "warmup_steps": warmup,
        "rounds": rounds,
        "tiny": tiny,
    }
    with tempfile.TemporaryDirectory() as folder:
        for family in families:
            if family == "pixelcnn":
                workload = pixelcnn_workload(sizes[family], tiny)
            else:
                workload = char_gpt_workload(sizes[family], tiny, Path(folder))
            results[family] = compare(workload, steps_of[family], warmup, rounds, target, precision)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="32-true", choices=PRECISIONS)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    results = measure_throughput(
        tuple(args.families),
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        device=args.device,
        precision=args.precision,
        tiny=args.tiny,
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
