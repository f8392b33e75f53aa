"""The learned pmf of a 1D model next to the data, and what the model samples."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import torch

from genlab.callbacks.io import log_figure


class Distribution1D(L.Callback):
    """At the end of ``fit``, two panels over the values ``0..d-1``: the model's pmf (from
    ``log_prob`` of every value) as bars over the training data's empirical histogram,
    and the empirical frequencies of ``num_samples`` model samples on the same axes.
    Writes ``distribution.png`` and TensorBoard's ``distribution``.

    Needs a model with ``num_bins``, ``log_prob`` and ``sample`` and a data module whose
    train loader yields ``[B, 1]`` integers.
    """

    def __init__(self, num_samples: int = 1000, seed: int = 0) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.seed = seed

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        num_bins = pl_module.num_bins
        values = torch.arange(num_bins, device=pl_module.device).unsqueeze(1)
        with torch.no_grad():
            pmf = pl_module.log_prob(values).exp().cpu()
        data = torch.cat(list(trainer.datamodule.train_dataloader()))[:, 0]
        generator = torch.Generator().manual_seed(self.seed)
        samples = pl_module.sample(self.num_samples, generator=generator)[:, 0].cpu()
        log_figure(
            trainer, "distribution", figure(pmf, data, samples, num_bins), "distribution.png"
        )


def frequencies(values: torch.Tensor, num_bins: int) -> torch.Tensor:
    return torch.bincount(values, minlength=num_bins).float() / len(values)


def figure(pmf: torch.Tensor, data: torch.Tensor, samples: torch.Tensor, num_bins: int):
    bins = torch.arange(num_bins)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    left.bar(bins, frequencies(data, num_bins), color="lightgray", label="training data")
    left.bar(bins, pmf, width=0.5, color="tab:blue", label="model pmf")
    left.set_title("learned distribution")
    right.bar(bins, pmf, color="lightgray", label="model pmf")
    right.bar(
        bins,
        frequencies(samples, num_bins),
        width=0.5,
        color="tab:orange",
        label=f"{len(samples)} samples",
    )
    right.set_title("samples")
    for axes in (left, right):
        axes.set_xlabel("x")
        axes.legend()
    left.set_ylabel("probability")
    return fig
