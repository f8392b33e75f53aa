"""A grid of model samples every few epochs and at the end of training."""

from __future__ import annotations

import lightning as L
import torch

from genlab.callbacks.io import images_to_grid, log_image_grid


class SampleGrid(L.Callback):
    """Draws ``num_samples`` images with ``model.sample`` (``nrow`` per row) after every
    ``every_n_epochs``-th validation and at the end of ``fit``; levels are scaled to
    0..255 for display. Logs ``samples`` to TensorBoard and writes
    ``samples/epoch_NNN.png`` and ``samples.png`` in the run folder. A fixed ``seed``
    makes grids of different epochs comparable.

    Needs a model with ``sample(num_samples, generator=...)`` and ``num_levels``.
    """

    def __init__(
        self, num_samples: int = 100, nrow: int = 10, every_n_epochs: int = 1, seed: int = 0
    ) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.nrow = nrow
        self.every_n_epochs = every_n_epochs
        self.seed = seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.every_n_epochs <= 0:
            return
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs == 0 and epoch < trainer.max_epochs:
            self.draw(trainer, pl_module, f"samples/epoch_{epoch:03d}.png")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer, pl_module, "samples.png")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        generator = torch.Generator().manual_seed(self.seed)
        images = pl_module.sample(self.num_samples, generator=generator)
        grid = images_to_grid(images, pl_module.num_levels, self.nrow)
        log_image_grid(trainer, "samples", grid, filename)
