"""Validation images next to their reconstructions through an autoencoder's tokens."""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
import torch

from genlab.callbacks.io import images_to_grid, log_image_grid
from genlab.callbacks.periodic import EveryNEpochs
from genlab.callbacks.training_curves import validation_batches
from genlab.lightning_modules.base import data_of


class Reconstructions(EveryNEpochs):
    """The first ``num_images`` validation images and their reconstructions, in pairs
    of rows (``nrow`` originals above their ``nrow`` reconstructions; whole rows only),
    after every ``every_n_epochs``-th validation and at the end of ``fit``. Logs
    ``reconstructions`` to TensorBoard and writes ``reconstructions/epoch_NNN.png`` and
    ``reconstructions.png`` in the run folder.

    Needs a model with ``reconstruct(images)`` and ``num_levels``.
    """

    picture = "reconstructions"

    def __init__(self, num_images: int = 50, nrow: int = 10, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs, at_train_start=False)
        self.num_images = num_images
        self.nrow = nrow

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str) -> None:
        originals = first_images(validation_batches(trainer), self.num_images)
        nrow = min(self.nrow, len(originals))
        originals = originals[: len(originals) // nrow * nrow]
        reconstructions = pl_module.reconstruct(originals.to(pl_module.device)).cpu()
        pairs = interleave_rows(originals, reconstructions, nrow)
        grid = images_to_grid(pairs, pl_module.num_levels, nrow)
        log_image_grid(trainer, "reconstructions", grid, filename)


def first_images(batches: Iterable, count: int) -> torch.Tensor:
    """The first ``count`` images of an iterable of batches (fewer if it runs out)."""
    images, total = [], 0
    for batch in batches:
        images.append(data_of(batch))
        total += len(images[-1])
        if total >= count:
            break
    return torch.cat(images)[:count]


def interleave_rows(
    originals: torch.Tensor, reconstructions: torch.Tensor, nrow: int
) -> torch.Tensor:
    """Rows of ``nrow`` originals, each followed by the row of their reconstructions
    (the number of images must be a multiple of ``nrow``)."""
    pairs = zip(originals.split(nrow), reconstructions.split(nrow), strict=True)
    return torch.cat([torch.cat(pair) for pair in pairs])
