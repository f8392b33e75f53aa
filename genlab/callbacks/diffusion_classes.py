"""A class-conditional 2D model: the data, trajectories and samples, coloured by class."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from genlab.analysis.diffusion import plot_classes
from genlab.callbacks.point_picture import PointPicture


class ClassPanels(PointPicture):
    """Three panels (``classes.png``): the data coloured by class, one trajectory per
    class, and ``samples_per_class`` samples of each class with the model's guidance
    weight (or ``guidance``). Needs a conditional model (``num_classes > 0``)."""

    tag = "classes"

    def __init__(
        self,
        samples_per_class: int = 300,
        steps: int = 50,
        guidance: float | None = None,
        every_n_validations: int = 0,
        num_data_points: int = 2000,
    ) -> None:
        super().__init__(every_n_validations, num_data_points)
        self.samples_per_class, self.steps, self.guidance = samples_per_class, steps, guidance

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        if not model.num_classes:
            raise ValueError("ClassPanels needs a conditional model (num_classes > 0)")
        return plot_classes(
            model, points, labels, self.samples_per_class, self.steps, self.guidance
        )
