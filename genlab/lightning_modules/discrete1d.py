"""Models of one discrete variable with values ``0..d-1``: the starting point of the
autoregressive family, where the likelihood is a single categorical.

* ``Histogram``: ``p(x) = softmax(theta)_x`` with theta initialised to zero (uniform);
  maximum likelihood recovers the empirical frequencies.
* ``LogisticMixture``: a mixture of logistics discretized to the d bins, the edge bins
  taking the tails (Salimans et al., 2017, "PixelCNN++"); far fewer parameters, and a
  smooth pmf.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.lightning_modules.base import LikelihoodModel, check_discrete_data
from genlab.nn.distributions import discretized_logistic_mixture_log_pmf, sample_categorical


class Discrete1DModel(LikelihoodModel):
    """Shared API: data ``[B, 1]`` of integers ``0..num_bins-1``; subclasses give ``forward()``,
    the log-pmf over every value."""

    def __init__(self, num_bins: int, learning_rate: float) -> None:
        super().__init__(learning_rate)
        self.num_bins = num_bins

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact log-probability of each example ``x[b, 0]``, in nats."""
        check_discrete_data(x, (1,), self.num_bins)
        return self()[x[:, 0]]

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``num_samples`` exact draws, shaped ``[num_samples, 1]``."""
        with torch.no_grad():
            logits = self().expand(num_samples, self.num_bins)
        return sample_categorical(logits, generator).unsqueeze(1)


class Histogram(Discrete1DModel):
    """One free logit per value.

    Args:
        num_bins: number of values d; linked from the data module.
        learning_rate: Adam's step size.
    """

    name = "histogram"

    def __init__(self, num_bins: int = 20, learning_rate: float = 0.01) -> None:
        super().__init__(num_bins, learning_rate)
        self.save_hyperparameters()
        self.logits = nn.Parameter(torch.zeros(num_bins))

    def forward(self) -> Tensor:
        """Log-probabilities of the values ``0..d-1``."""
        return torch.log_softmax(self.logits, dim=0)


class LogisticMixture(Discrete1DModel):
    """A mixture of ``num_components`` discretized logistics.

    Args:
        num_bins: number of values d; linked from the data module.
        num_components: logistic components M.
        learning_rate: Adam's step size.
    """

    name = "logistic_mixture"

    def __init__(
        self, num_bins: int = 20, num_components: int = 4, learning_rate: float = 0.01
    ) -> None:
        super().__init__(num_bins, learning_rate)
        self.save_hyperparameters()
        spread = (torch.arange(num_components) + 0.5) / num_components * num_bins
        self.logit_weights = nn.Parameter(torch.zeros(num_components))
        self.means = nn.Parameter(spread - 0.5)
        self.log_scales = nn.Parameter(torch.full((num_components,), math.log(num_bins / 8)))

    def forward(self) -> Tensor:
        """Log-probabilities of the values ``0..d-1``."""
        return discretized_logistic_mixture_log_pmf(
            self.logit_weights, self.means, self.log_scales, self.num_bins
        )
