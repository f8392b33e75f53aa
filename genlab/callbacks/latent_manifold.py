"""The decoded manifold of a model with a two-dimensional code."""

from __future__ import annotations

import lightning as L
import torch

from genlab.callbacks.io import images_to_grid, log_image_grid
from genlab.callbacks.periodic import EveryNEpochs


def normal_quantile_grid(num_per_side: int) -> torch.Tensor:
    """Codes ``[n * n, 2]`` on an ``n x n`` grid, in rows from top to bottom: row ``i``
    has ``z2`` at the standard normal quantile of ``1 - (i + 0.5) / n`` (high ``z2`` at
    the top), column ``j`` has ``z1`` at the quantile of ``(j + 0.5) / n``. Equal steps
    in probability, so every cell covers the same prior mass (Kingma & Welling, 2014,
    figure 4)."""
    probabilities = (torch.arange(num_per_side, dtype=torch.float64) + 0.5) / num_per_side
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf(probabilities).float()
    z2, z1 = torch.meshgrid(quantiles.flip(0), quantiles, indexing="ij")
    return torch.stack([z1.flatten(), z2.flatten()], dim=1)


class LatentManifold(EveryNEpochs):
    """Decodes an ``num_per_side x num_per_side`` grid of codes placed at normal
    quantiles (see ``normal_quantile_grid``) into one picture of how the images change
    across the prior, after every ``every_n_epochs``-th validation, before training
    when ``at_train_start``, and at the end of ``fit``. Logs ``manifold`` to TensorBoard
    and writes ``manifold/epoch_NNN.png`` and ``manifold.png`` in the run folder.

    Needs a model with ``latent_dim == 2``, ``decode(z)`` and ``num_levels``.
    """

    picture = "manifold"

    def __init__(
        self, num_per_side: int = 20, every_n_epochs: int = 1, at_train_start: bool = True
    ) -> None:
        super().__init__(every_n_epochs, at_train_start)
        if num_per_side < 1:
            raise ValueError(f"num_per_side must be at least 1, got {num_per_side}")
        self.num_per_side = num_per_side

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        latent_dim = getattr(pl_module, "latent_dim", None)
        if latent_dim != 2:
            raise ValueError(
                f"LatentManifold draws two-dimensional codes, but the model's latent_dim is "
                f"{latent_dim}; set latent_dim to 2 or drop the callback"
            )

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str) -> None:
        z = normal_quantile_grid(self.num_per_side).to(pl_module.device)
        images = pl_module.decode(z)
        grid = images_to_grid(images, pl_module.num_levels, self.num_per_side)
        log_image_grid(trainer, "manifold", grid, filename, scale=2)
