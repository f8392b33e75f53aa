"""Exact log-densities of chosen points, written on the data."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from genlab.analysis.diffusion import plot_log_probs
from genlab.callbacks.point_picture import PointPicture

DEFAULT_POINTS = ((0.5, 0.5), (0.0, 0.0), (1.5, -1.5), (4.0, 5.5))


class LogProbPoints(PointPicture):
    """The data with ``points`` marked and their exact ODE log-density in nats
    (``log_probs.png``); for a conditional model each point is scored given each class
    in ``classes``, so one point shows two conditionals. Needs ``model.log_prob``."""

    tag = "log_probs"

    def __init__(
        self,
        points: list[list[float]] = DEFAULT_POINTS,
        classes: list[int] = (0, 1),
        every_n_validations: int = 0,
        num_data_points: int = 2000,
    ) -> None:
        super().__init__(every_n_validations, num_data_points)
        self.points = [tuple(point) for point in points]
        self.classes = tuple(classes)

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        return plot_log_probs(model, points, self.points, self.classes)
