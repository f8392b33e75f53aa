"""What ``genlab predict`` writes: the samples as a PNG grid and as a tensor file."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from genlab.callbacks.io import images_to_grid, log_image_grid, run_dir


def format_texts(texts: list[str]) -> str:
    """Numbered samples, one block each."""
    return "".join(f"--- sample {i} ---\n{text}\n\n" for i, text in enumerate(texts))


def indexed_samples(predictions: list, batch_indices: list[list[int]]) -> list[tuple[int, Any]]:
    """``(dataset index, sample)`` of every sample of this process's ``predictions``
    (batches of tensors or of texts); positions stand in when indices were not tracked."""
    samples = [sample for batch in predictions for sample in batch]
    indices = [index for batch in batch_indices for index in batch]
    if len(indices) != len(samples):  # Lightning tracks indices of DataLoaders only
        indices = range(len(samples))
    return list(zip(indices, samples, strict=True))


def gathered_in_order(trainer: L.Trainer, samples: list[tuple[int, Any]]) -> list[Any]:
    """The samples of every process, in dataset order: under DDP each process predicted
    its share of the indices, and all of them come together here."""
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        shares = [None] * trainer.world_size
        dist.all_gather_object(shares, samples)
        samples = [pair for share in shares for pair in share]
    return [sample for _, sample in sorted(samples, key=lambda pair: pair[0])]


class SampleWriter(BasePredictionWriter):
    """Collects the samples of a ``predict`` run and writes ``{prefix}.pt`` (the integer
    tensor) and ``{prefix}.png`` (a grid with ``nrow`` per row) in the run folder; text
    samples (lists of strings) go to ``{prefix}.txt``, separated by blank-line rules.
    Under DDP, rank 0 gathers every process's samples and writes them in index order."""

    def __init__(self, prefix: str = "predict_samples", nrow: int = 10) -> None:
        super().__init__(write_interval="epoch")
        self.prefix = prefix
        self.nrow = nrow

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Any,
        batch_indices: Any,
    ) -> None:
        indices = batch_indices[0] if batch_indices else []
        samples = gathered_in_order(trainer, indexed_samples(predictions, indices))
        if not trainer.is_global_zero or not samples:
            return
        folder = run_dir(trainer)
        if isinstance(samples[0], str):
            texts = samples
            path = folder / f"{self.prefix}.txt"
            path.write_text(format_texts(texts), encoding="utf-8")
            rank_zero_info(f"wrote {len(texts)} samples to {path}")
            return
        samples = torch.stack([sample.cpu() for sample in samples])
        torch.save(samples, folder / f"{self.prefix}.pt")
        grid = images_to_grid(samples, pl_module.num_levels, self.nrow)
        png = log_image_grid(trainer, "predict_samples", grid, f"{self.prefix}.png")
        rank_zero_info(f"wrote {len(samples)} samples to {png} and {self.prefix}.pt")
