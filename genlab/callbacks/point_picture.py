"""The shared part of the pictures of 2D point models: a schedule, the data behind them."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from genlab.callbacks.io import log_figure
from genlab.callbacks.periodic import EveryNValidations


def validation_points(trainer: L.Trainer, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``count`` points ``[N, D]`` of the validation split and their labels ``[N]``
    (-1 where the batches carry none): the backdrop of the pictures."""
    points, labels, total = [], [], 0
    for batch in trainer.datamodule.val_dataloader():
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        y = batch[1] if isinstance(batch, (tuple, list)) else torch.full((len(x),), -1)
        points.append(x)
        labels.append(y)
        total += len(x)
        if total >= count:
            break
    return torch.cat(points)[:count], torch.cat(labels)[:count]


class PointPicture(EveryNValidations):
    """Draws ``figure(model, points, labels)`` over validation points after every
    ``every_n_validations``-th validation (0: only at the end of ``fit``), logs it to
    TensorBoard as ``tag`` and writes ``{tag}.png`` in the run folder. Subclasses set
    ``tag`` and implement ``figure``."""

    tag = "points"

    def __init__(self, every_n_validations: int = 0, num_data_points: int = 2000) -> None:
        super().__init__(every_n_validations)
        self.num_data_points = num_data_points

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        points, labels = validation_points(trainer, self.num_data_points)
        figure = self.figure(pl_module, points, labels)
        log_figure(trainer, self.tag, figure, f"{self.tag}.png")

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        raise NotImplementedError
