"""Training throughput: in-memory data is served a whole batch at a time (the same
batches as item by item), the step loss waits for the device only when a progress bar
shows it, and the benchmark that sets Lightning's training step against a plain loop runs
and reports both."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from genlab.datamodules import (
    PointsDataModule,
    ShapesDataModule,
    TextDataModule,
    Toy1DDataModule,
    WordVocabulary,
)
from genlab.datamodules.images import color_code_to_rgb, pass_batch_through
from genlab.datamodules.in_memory import InMemoryTensors
from genlab.datamodules.multimodal import caption, caption_ids
from genlab.datamodules.text import Windows, pad_batch
from genlab.lightning_modules import PixelCNN, base

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import throughput  # noqa: E402
from throughput import interleaved_fit, measure_throughput, pixelcnn_workload  # noqa: E402

POEMS = "roses are red\n\nviolets are blue\n\nsugar is sweet\n\nand so are you\n\nthe end"


def no_single_items(monkeypatch, *datasets: type) -> None:
    """Make fetching one example at a time fail for these dataset classes."""

    def fail(self, index):
        raise AssertionError(f"{type(self).__name__} fetched a single item")

    for dataset in datasets:
        monkeypatch.setattr(dataset, "__getitem__", fail)


def same_batches(batches: list, expected: list) -> bool:
    """Equal batches, tensor by tensor (dtypes included), whatever the container."""
    if len(batches) != len(expected):
        return False
    for batch, reference in zip(batches, expected, strict=True):
        parts = list(batch) if isinstance(batch, (tuple, list)) else [batch]
        references = list(reference) if isinstance(reference, (tuple, list)) else [reference]
        if len(parts) != len(references) or not all(
            part.dtype == ref.dtype and torch.equal(part, ref)
            for part, ref in zip(parts, references, strict=True)
        ):
            return False
    return True


def test_toy_and_point_batches_come_whole_and_equal_item_by_item_ones(monkeypatch):
    toy = Toy1DDataModule("course1", batch_size=64)
    points = PointsDataModule("square_classes", num_train=200, num_val=70, batch_size=32)
    toy.setup()
    points.setup()
    expected_toy = list(DataLoader(toy.splits["val"], batch_size=64))
    point_tensors = TensorDataset(*points.splits["val"].tensors)
    expected_points = list(DataLoader(point_tensors, batch_size=32))
    no_single_items(monkeypatch, InMemoryTensors)
    assert same_batches(list(toy.val_dataloader()), expected_toy)
    assert same_batches(list(points.val_dataloader()), expected_points)
    shuffled = torch.cat(list(toy.train_dataloader()))
    assert torch.equal(shuffled.sort(dim=0).values, toy.splits["train"].sort(dim=0).values)


def item_by_item(dataset, batch_size: int, pad: int) -> list[tuple[Tensor, Tensor]]:
    """The batches the text loaders used to build: single examples, padded together."""
    examples = [dataset[index] for index in range(len(dataset))]
    return [
        pad_batch(examples[start : start + batch_size], pad)
        for start in range(0, len(examples), batch_size)
    ]


def test_text_batches_come_whole_and_equal_item_by_item_ones(tmp_path, monkeypatch):
    path = tmp_path / "poems.txt"
    path.write_text(POEMS * 20)
    windows = TextDataModule(str(path), context_length=16, val_fraction=0.2, batch_size=7)
    documents = TextDataModule(
        str(path), example="document", context_length=32, val_fraction=0.2, batch_size=3
    )
    windows.setup()
    documents.setup()
    splits = {
        "train windows": (windows, windows.datasets["train"]),
        "validation windows": (windows, windows.datasets["val"]),
        "documents": (documents, documents.datasets["train"]),
    }
    expected = {
        name: item_by_item(dataset, data.hparams.batch_size, data.vocab.eos)
        for name, (data, dataset) in splits.items()
    }
    no_single_items(monkeypatch, Windows)
    for name, (data, dataset) in splits.items():
        loader = DataLoader(dataset, data.hparams.batch_size, collate_fn=pass_batch_through)
        assert same_batches(list(loader), expected[name]), name
    assert same_batches(list(windows.val_dataloader()), expected["validation windows"])


class RecordingLogger(Logger):
    """Keeps every ``(step, metrics)`` Lightning writes."""

    name, version = "recording", 0

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[int, dict]] = []

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.written.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


def fit_tiny_pixelcnn(bar: bool, logger: Logger | bool = False) -> L.Trainer:
    L.seed_everything(0, verbose=False)
    model = PixelCNN(image_shape=(1, 12, 12), hidden_channels=4, num_layers=1, kernel_size=3)
    data = ShapesDataModule(image_size=12, num_train=40, num_test=16, batch_size=8)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=7,
        log_every_n_steps=3,
        limit_val_batches=0,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=bar,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    return trainer


@pytest.mark.parametrize("bar", [False, True])
def test_the_step_loss_goes_to_the_progress_bar_only_when_there_is_one(bar):
    """Lightning turns bar figures into numbers after every step, a wait for the device."""
    trainer = fit_tiny_pixelcnn(bar)
    assert ("train/loss" in trainer.progress_bar_metrics) == bar


def step_losses(logger: RecordingLogger) -> list[tuple[int, float]]:
    return [(step, m["train/loss"]) for step, m in logger.written if "train/loss" in m]


def test_the_logger_gets_the_same_step_losses_as_when_every_step_logs(monkeypatch):
    """``train/loss`` is logged only on the steps the logger writes; what it writes is
    what logging every step would have given."""
    gated = RecordingLogger()
    fit_tiny_pixelcnn(bar=False, logger=gated)
    monkeypatch.setattr(base, "shows_step_figures", lambda module: True)
    every_step = RecordingLogger()
    fit_tiny_pixelcnn(bar=False, logger=every_step)
    assert [step for step, _ in step_losses(gated)] == [2, 5]
    assert step_losses(gated) == step_losses(every_step)


@pytest.mark.parametrize("num_levels", [2, 3, 4])
def test_captions_by_table_lookup_are_the_captions_as_text(num_levels):
    rng = np.random.default_rng(num_levels)
    count = 300
    foreground = color_code_to_rgb(rng.integers(0, num_levels**3, count), num_levels)
    background = color_code_to_rgb(rng.integers(0, num_levels**3, count), num_levels)
    labels = torch.from_numpy(rng.integers(0, 10, count))
    vocabulary = WordVocabulary()
    texts = [
        caption(label, fore, back, num_levels)
        for label, fore, back in zip(labels.tolist(), foreground, background, strict=True)
    ]
    expected = vocabulary.encode_padded(texts)
    assert torch.equal(
        caption_ids(labels, foreground, background, num_levels, vocabulary), expected
    )
    with pytest.raises(ValueError, match="digit labels 0..9"):
        caption_ids(labels - 1, foreground, background, num_levels, vocabulary)


def scripted_clock(seconds: list[float]):
    """A stand-in for ``wait_for`` whose readings advance by ``seconds`` in turn, over
    and over."""
    steps = itertools.cycle(seconds)
    now = 0.0

    def wait_for(device: torch.device) -> float:
        nonlocal now
        now += next(steps)
        return now

    return wait_for


@pytest.mark.slow
def test_the_benchmark_reports_median_step_times_of_both_loops_and_their_ratios(monkeypatch):
    """A clock that gives every Lightning and plain step a set length: one warm-up step
    of 50 s each (not counted), then Lightning 2, 4, 6 s against plain 1, 1, 6 s in the
    first round and 8 s against 4 s thrice in the second. Medians over both rounds:
    Lightning 7 s, plain 4 s; medians of the step-pair ratios 1/2, and of each round's
    medians 1/4 and 1/2."""
    round_one = [0, 50, 50, 2, 1, 4, 1, 6, 6]  # the start, then (Lightning, plain) pairs
    round_two = [0, 50, 50, 8, 4, 8, 4, 8, 4]
    monkeypatch.setattr(throughput, "wait_for", scripted_clock(round_one + round_two))
    results = measure_throughput(steps=3, warmup=1, rounds=2, tiny=True)
    assert results["device"] == "cpu" and results["rounds"] == 2
    for family, unit, items in (("pixelcnn", "images", 32), ("char_gpt", "tokens", 12 * 64)):
        figures = results[family]
        assert figures["unit"] == unit and figures["steps"] == 3
        assert figures["median_step_seconds"] == {"lightning": 7.0, "plain": 4.0}
        assert figures["ratio"] == pytest.approx(4 / 7)
        assert figures["paired_step_ratio"] == pytest.approx(1 / 2)
        assert figures["round_ratios"] == pytest.approx([1 / 4, 1 / 2])
        assert figures["lightning_per_second"] == pytest.approx(items / 7)
        assert figures["plain_per_second"] == pytest.approx(items / 4)
    with pytest.raises(ValueError, match="families: unknown"):
        measure_throughput(families=("nope",))


def test_the_plain_steps_come_between_the_lightning_steps():
    """Each Lightning step is followed by one plain step, timed apart, both training."""
    workload = pixelcnn_workload(4, tiny=True)
    cpu = torch.device("cpu")
    turns = interleaved_fit(workload, steps=3, warmup=2, device=cpu, precision="32-true")
    assert len(turns.seconds["lightning"]) == len(turns.seconds["plain"]) == 5
    assert len(turns.items) == 5 and max(turns.items) == 4
    assert all(len(state) for state in turns.loop.optimizer.state.values())
    assert len(turns.loop.optimizer.state) == len(list(turns.loop.model.parameters()))
