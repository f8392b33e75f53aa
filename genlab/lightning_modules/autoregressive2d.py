"""The smallest autoregressive model with a conditional: ``p(x1, x2) = p(x1) p(x2 | x1)``
over a ``d x d`` grid, with a free categorical for ``x1`` and an MLP for ``x2 | x1``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.lightning_modules.base import LikelihoodModel, check_discrete_data
from genlab.nn.distributions import categorical_log_prob, sample_categorical
from genlab.nn.pixelcnn import scale_levels


class Autoregressive2D(LikelihoodModel):
    """``p(x1) p(x2 | x1)`` for integer pairs ``[B, 2]`` in ``0..num_bins-1``.

    Args:
        num_bins: grid size d; linked from the data module.
        hidden_units: width of the conditional's hidden layers.
        num_hidden_layers: hidden layers of the conditional MLP.
        x1_encoding: "one_hot" (x1 as d indicators) or "scalar" (x1 scaled to [-1, 1]).
        learning_rate: Adam's step size.
    """

    name = "autoregressive2d"

    def __init__(
        self,
        num_bins: int = 25,
        hidden_units: int = 64,
        num_hidden_layers: int = 2,
        x1_encoding: Literal["one_hot", "scalar"] = "one_hot",
        learning_rate: float = 1e-2,
    ) -> None:
        super().__init__(learning_rate)
        if x1_encoding not in ("one_hot", "scalar"):
            raise ValueError(f"x1_encoding must be 'one_hot' or 'scalar', got {x1_encoding!r}")
        self.save_hyperparameters()
        self.num_bins = num_bins
        self.x1_logits = nn.Parameter(torch.zeros(num_bins))
        layers, width = [], num_bins if x1_encoding == "one_hot" else 1
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_units), nn.ReLU()]
            width = hidden_units
        self.conditional = nn.Sequential(*layers, nn.Linear(width, num_bins))

    def encode_x1(self, x1: Tensor) -> Tensor:
        if self.hparams.x1_encoding == "one_hot":
            return F.one_hot(x1, self.num_bins).float()
        return scale_levels(x1, self.num_bins).unsqueeze(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, 2, d]``: row 0 for ``p(x1)``, row 1 for ``p(x2 | x1)``."""
        check_discrete_data(x, (2,), self.num_bins, "pairs")
        first = self.x1_logits.expand(len(x), self.num_bins)
        return torch.stack([first, self.conditional(self.encode_x1(x[:, 0]))], dim=1)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact ``log p(x1) + log p(x2 | x1)`` of each pair, in nats."""
        return categorical_log_prob(self(x), x, dim=2)

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact ancestral samples ``[num_samples, 2]``: x1, then x2 given x1."""
        with torch.no_grad():
            x1 = sample_categorical(self.x1_logits.expand(num_samples, self.num_bins), generator)
            x2 = sample_categorical(self.conditional(self.encode_x1(x1)), generator)
        return torch.stack([x1, x2], dim=1)
