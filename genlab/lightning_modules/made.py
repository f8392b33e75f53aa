"""MADE (Germain et al., 2015) for discrete vectors and binary or K-level images: every
conditional of an autoregressive factorisation from one masked MLP pass."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.lightning_modules.base import LikelihoodModel, check_discrete_data
from genlab.nn.distributions import categorical_log_prob, sample_categorical
from genlab.nn.made import MADENet


class MADE(LikelihoodModel):
    """MADE over examples of shape ``image_shape``: ``(C, H, W)`` for images (flattened in
    raster order) or ``(D,)`` for plain vectors, with ``num_levels`` values per dimension.

    Args:
        image_shape: shape of one example; linked from image data modules.
        num_levels: values per dimension K; linked from the data module.
        hidden_units: widths of the hidden layers.
        ordering: "natural" (raster order) or "random" (a permutation drawn from
            ``ordering_seed``).
        ordering_seed: seed of the random ordering.
        learning_rate: Adam's step size.
    """

    name = "made"

    def __init__(
        self,
        image_shape: tuple[int, ...] = (1, 20, 20),
        num_levels: int = 2,
        hidden_units: tuple[int, ...] = (512, 512),
        ordering: str = "natural",
        ordering_seed: int = 0,
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__(learning_rate)
        if ordering not in ("natural", "random"):
            raise ValueError(f"ordering must be 'natural' or 'random', got {ordering!r}")
        self.save_hyperparameters()
        self.data_shape = tuple(image_shape)
        self.num_levels = num_levels
        num_dims = math.prod(self.data_shape)
        order = None
        if ordering == "random":
            order = torch.randperm(num_dims, generator=torch.Generator().manual_seed(ordering_seed))
        self.net = MADENet(num_dims, num_levels, tuple(hidden_units), order)

    def forward(self, x: Tensor) -> Tensor:
        """Logits with K inserted after the first data axis: ``[B, D, K]`` for vectors,
        ``[B, C, K, H, W]`` for images."""
        check_discrete_data(x, self.data_shape, self.num_levels)
        logits = self.net(x.flatten(1)).view(len(x), *self.data_shape, self.num_levels)
        return logits.movedim(-1, 2) if x.dim() > 2 else logits

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact log-likelihood of each example, in nats."""
        return categorical_log_prob(self(x), x, dim=2)

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact ancestral samples, one dimension per pass in the model's ordering."""
        flat = torch.zeros(num_samples, self.net.num_dims, dtype=torch.long, device=self.device)
        with torch.no_grad():
            for dim in self.net.ordering.tolist():
                flat[:, dim] = sample_categorical(self.net(flat)[:, dim], generator)
        return flat.view(num_samples, *self.data_shape)
