"""Where a model puts the test images in a two-dimensional code space, over its prior."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import torch

from genlab.callbacks.io import log_figure
from genlab.callbacks.periodic import EveryNEpochs
from genlab.lightning_modules.base import data_of


class CodeScatter(EveryNEpochs):
    """A scatter plot of the codes of the first ``num_points`` test images, one colour
    per label, over as many grey prior draws ``N(0, I)``, after every
    ``every_n_epochs``-th validation, before training when ``at_train_start``, and at
    the end of ``fit``; a code space that matches its prior covers the grey cloud
    evenly. Logs ``codes`` to TensorBoard and writes ``codes/epoch_NNN.png`` and
    ``codes.png`` in the run folder.

    Needs a model with ``latent_dim == 2`` and ``encode(images, generator=...)``, and a
    data module whose ``test_dataloader`` yields ``(images, labels)`` (label -1: none).
    """

    picture = "codes"

    def __init__(
        self,
        num_points: int = 2000,
        every_n_epochs: int = 1,
        at_train_start: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs, at_train_start)
        self.num_points = num_points
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        latent_dim = getattr(pl_module, "latent_dim", None)
        if latent_dim != 2:
            raise ValueError(
                f"CodeScatter plots two-dimensional codes, but the model's latent_dim is "
                f"{latent_dim}; set latent_dim to 2 or drop the callback"
            )

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        codes, labels = self.test_codes(trainer, pl_module, generator)
        prior = torch.randn(len(codes), 2, generator=generator)
        log_figure(trainer, "codes", scatter_figure(codes, labels, prior), filename)

    def test_codes(
        self, trainer: L.Trainer, pl_module: L.LightningModule, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[N, 2]`` and labels ``[N]`` of the first ``num_points`` test images."""
        codes, labels, total = [], [], 0
        for batch in trainer.datamodule.test_dataloader():
            images = data_of(batch).to(pl_module.device)
            codes.append(pl_module.encode(images, generator=generator).cpu())
            labels.append(labels_of(batch))
            total += len(images)
            if total >= self.num_points:
                break
        return torch.cat(codes)[: self.num_points], torch.cat(labels)[: self.num_points]


def labels_of(batch: torch.Tensor | tuple | list) -> torch.Tensor:
    """The labels of a ``(data, labels)`` batch; -1 for each example of a bare batch."""
    if isinstance(batch, (tuple, list)):
        return batch[1].cpu()
    return torch.full((len(batch),), -1)


def scatter_figure(codes: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor) -> plt.Figure:
    """Prior draws in grey under codes coloured by label (tab10; unlabelled in black)."""
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.scatter(prior[:, 0], prior[:, 1], s=4, c="0.8", label="prior N(0, I)")
    for label in labels.unique().tolist():
        chosen = labels == label
        color = "black" if label < 0 else plt.cm.tab10(label % 10)
        name = "no label" if label < 0 else str(label)
        axes.scatter(codes[chosen, 0], codes[chosen, 1], s=4, color=color, label=name)
    axes.set_xlabel("z1")
    axes.set_ylabel("z2")
    axes.set_aspect("equal")
    axes.grid(alpha=0.3)
    axes.legend(markerscale=3, fontsize="small", loc="center left", bbox_to_anchor=(1, 0.5))
    return figure
