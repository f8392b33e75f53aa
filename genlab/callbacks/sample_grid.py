"""A grid of model samples every few epochs and at the end of training."""

from __future__ import annotations

import lightning as L
import torch

from genlab.callbacks.io import images_to_grid, log_image_grid
from genlab.callbacks.periodic import EveryNEpochs


class SampleGrid(EveryNEpochs):
    """Draws ``num_samples`` images with ``model.sample`` (``nrow`` per row) after every
    ``every_n_epochs``-th validation and at the end of ``fit``, and also before training
    (``samples/epoch_000.png``, the untrained model) when ``at_train_start``; levels are
    scaled to 0..255 for display. Logs ``samples`` to TensorBoard and writes
    ``samples/epoch_NNN.png`` and ``samples.png`` in the run folder. A fixed ``seed``
    makes grids of different epochs comparable.

    Needs a model with ``sample(num_samples, generator=...)`` and ``num_levels``.
    """

    picture = "samples"

    def __init__(
        self,
        num_samples: int = 100,
        nrow: int = 10,
        every_n_epochs: int = 1,
        seed: int = 0,
        at_train_start: bool = False,
    ) -> None:
        super().__init__(every_n_epochs, at_train_start)
        self.num_samples = num_samples
        self.nrow = nrow
        self.seed = seed

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        images = pl_module.sample(self.num_samples, generator=generator)
        grid = images_to_grid(images, pl_module.num_levels, self.nrow)
        log_image_grid(trainer, "samples", grid, filename)
