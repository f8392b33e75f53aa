"""Samples of a 2D diffusion model: nine seeds, and several numbers of steps."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from genlab.analysis.diffusion import plot_sample_seeds, plot_samples_by_steps
from genlab.callbacks.point_picture import PointPicture


class SampleSeeds(PointPicture):
    """A 3x3 grid of ``num_samples`` samples for seeds 0..8 over the data
    (``sample_seeds.png``). Needs ``model.sample``."""

    tag = "sample_seeds"

    def __init__(
        self, num_samples: int = 1000, every_n_validations: int = 0, num_data_points: int = 2000
    ) -> None:
        super().__init__(every_n_validations, num_data_points)
        self.num_samples = num_samples

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        return plot_sample_seeds(model, points, self.num_samples)


class SamplesBySteps(PointPicture):
    """Samples from one seed for each number of steps T in ``steps`` (columns) and each
    sampler (rows: DDIM, DDPM) over the data (``samples_by_steps.png``)."""

    tag = "samples_by_steps"

    def __init__(
        self,
        steps: list[int] = (1, 2, 5, 10, 20, 50),
        num_samples: int = 1000,
        every_n_validations: int = 0,
        num_data_points: int = 2000,
    ) -> None:
        super().__init__(every_n_validations, num_data_points)
        self.steps = tuple(steps)
        self.num_samples = num_samples

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        return plot_samples_by_steps(model, points, self.steps, num_samples=self.num_samples)
