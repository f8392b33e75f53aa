"""Paths of a 2D diffusion model: forward, reverse, and a reverse path steered to a target."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from genlab.analysis.diffusion import (
    plot_forward_trajectory,
    plot_reverse_trajectories,
    plot_steering,
    steer,
)
from genlab.callbacks.point_picture import PointPicture


class ForwardTrajectory(PointPicture):
    """One point noised by the model's forward process from t = 0 to 1, coloured by t
    (``forward_trajectory.png``). Needs ``model.schedule``."""

    tag = "forward_trajectory"

    def __init__(self, point: list[float] = (0.5, 0.5), steps: int = 500, seed: int = 0) -> None:
        super().__init__(every_n_validations=0)
        self.point, self.steps, self.seed = tuple(point), steps, seed

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        return plot_forward_trajectory(model.schedule, self.point, self.steps, self.seed)


class ReverseTrajectories(PointPicture):
    """``num_paths`` sampler paths from t = 1 to t = 0 over the data
    (``reverse_trajectories.png``). Needs ``model.sample_from_noise``."""

    tag = "reverse_trajectories"

    def __init__(
        self,
        num_paths: int = 4,
        steps: int = 50,
        sampler: str = "ddim",
        every_n_validations: int = 0,
        num_data_points: int = 2000,
    ) -> None:
        super().__init__(every_n_validations, num_data_points)
        self.num_paths, self.steps, self.sampler = num_paths, steps, sampler

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        return plot_reverse_trajectories(model, points, self.num_paths, self.steps, self.sampler)


class Steering(PointPicture):
    """A sample steered to ``target`` by choosing its initial DDIM noise and, separately,
    its injected DDPM noise, with both trajectories (``steering.png``). Runs once, at the
    end of ``fit``: each way optimises the noise for ``iterations`` sampler runs."""

    tag = "steering"

    def __init__(
        self,
        target: list[float] = (4.0, 5.5),
        steps: int = 20,
        iterations: int = 300,
        num_data_points: int = 2000,
    ) -> None:
        super().__init__(0, num_data_points)
        self.target, self.steps, self.iterations = tuple(target), steps, iterations

    def figure(
        self, model: L.LightningModule, points: torch.Tensor, labels: torch.Tensor
    ) -> Figure:
        results = {
            f"{noise} noise": steer(
                model, self.target, noise=noise, steps=self.steps, iterations=self.iterations
            )
            for noise in ("initial", "injected")
        }
        return plot_steering(points, results)
