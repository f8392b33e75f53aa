"""Noise schedules side by side: the model's own and the built-in ones."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from genlab.analysis.diffusion import plot_schedules
from genlab.callbacks.point_picture import PointPicture
from genlab.nn.diffusion import CosineSchedule, ExponentialSchedule


class ScheduleCurves(PointPicture):
    """``sigma(t)`` and ``alpha(t)`` of exponential schedules with the given ``exponents``,
    the cosine one and the model's own (marked "(model)" when it is one of them)
    (``schedules.png``). Drawn once, at
    the end of ``fit``. Needs ``model.schedule``."""

    tag = "schedules"

    def __init__(self, exponents: list[float] = (3.0, 5.0, 8.0)) -> None:
        super().__init__(every_n_validations=0, num_data_points=1)
        self.exponents = tuple(exponents)

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        schedules = {f"exp, k={k:g}": ExponentialSchedule(k) for k in self.exponents}
        schedules["cosine"] = CosineSchedule()
        names = {repr(schedule): name for name, schedule in schedules.items()}
        own = names.get(repr(model.schedule))
        if own is None:
            schedules["model"] = model.schedule
        else:
            schedules[f"{own} (model)"] = schedules.pop(own)
        return plot_schedules(schedules)
