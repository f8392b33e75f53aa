"""A 2D model's view of its grid: the true density, its samples, and its own pmf."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import torch

from genlab.callbacks.io import log_figure


class Distribution2D(L.Callback):
    """At the end of ``fit``, three heatmaps over the ``d x d`` grid (row = x1, column =
    x2), on one colour scale: the data module's true density (or, without one, the
    training histogram), a 2D histogram of ``num_samples`` model samples, and the
    model's full probability grid from ``log_prob`` of every pair. Writes
    ``distribution.png`` and TensorBoard's ``distribution``.

    Needs a model with ``log_prob`` and ``sample`` on ``[B, 2]`` integers and a data
    module with ``num_bins``.
    """

    def __init__(self, num_samples: int = 100_000, seed: int = 0) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.seed = seed

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        d = trainer.datamodule.num_bins
        generator = torch.Generator().manual_seed(self.seed)
        samples = pl_module.sample(self.num_samples, generator=generator).cpu()
        grid = torch.cartesian_prod(torch.arange(d), torch.arange(d)).to(pl_module.device)
        with torch.no_grad():
            model_pmf = pl_module.log_prob(grid).exp().view(d, d).cpu()
        truth = getattr(trainer.datamodule, "density", None)
        if truth is None:
            truth = histogram(torch.cat(list(trainer.datamodule.train_dataloader())), d)
        panels = [
            ("true density", torch.as_tensor(truth)),
            (f"{self.num_samples} samples", histogram(samples, d)),
            ("model probabilities", model_pmf),
        ]
        top = max(float(values.max()) for _, values in panels)
        figure, axes = plt.subplots(1, 3, figsize=(12, 4))
        for ax, (title, values) in zip(axes, panels, strict=True):
            ax.imshow(values.numpy(), cmap="viridis", vmin=0, vmax=top)
            ax.set_title(title)
            ax.set_xlabel("x2")
            ax.set_ylabel("x1")
        log_figure(trainer, "distribution", figure, "distribution.png")


def histogram(pairs: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Frequencies of integer pairs ``[N, 2]`` on the ``d x d`` grid."""
    counts = torch.bincount(pairs[:, 0] * num_bins + pairs[:, 1], minlength=num_bins**2)
    return (counts.float() / len(pairs)).view(num_bins, num_bins)
