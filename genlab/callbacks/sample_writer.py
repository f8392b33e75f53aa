"""What ``genlab predict`` writes: the samples as a PNG grid and as a tensor file."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from genlab.callbacks.io import images_to_grid, log_image_grid, run_dir


def format_texts(texts: list[str]) -> str:
    """Numbered samples, one block each."""
    return "".join(f"--- sample {i} ---\n{text}\n\n" for i, text in enumerate(texts))


class SampleWriter(BasePredictionWriter):
    """Collects the samples of a ``predict`` run and writes ``{prefix}.pt`` (the integer
    tensor) and ``{prefix}.png`` (a grid with ``nrow`` per row) in the run folder; text
    samples (lists of strings) go to ``{prefix}.txt``, separated by blank-line rules."""

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
        if not trainer.is_global_zero:
            return
        folder = run_dir(trainer)
        if isinstance(predictions[0], list):
            texts = [text for batch in predictions for text in batch]
            path = folder / f"{self.prefix}.txt"
            path.write_text(format_texts(texts), encoding="utf-8")
            rank_zero_info(f"wrote {len(texts)} samples to {path}")
            return
        samples = torch.cat([batch.cpu() for batch in predictions])
        torch.save(samples, folder / f"{self.prefix}.pt")
        grid = images_to_grid(samples, pl_module.num_levels, self.nrow)
        png = log_image_grid(trainer, "predict_samples", grid, f"{self.prefix}.png")
        rank_zero_info(f"wrote {len(samples)} samples to {png} and {self.prefix}.pt")
