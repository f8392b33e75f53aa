"""Categorical likelihoods and exact, generator-driven categorical sampling."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def categorical_log_prob(logits: Tensor, x: Tensor, dim: int = 1) -> Tensor:
    """Log-probability, summed over every position, of integer data ``x`` under
    independent categoricals whose K logits lie along ``dim`` of ``logits``.

    ``logits`` has the shape of ``x`` with an extra axis of size K inserted at ``dim``
    (for images: logits ``[B, C, K, H, W]``, data ``[B, C, H, W]``, ``dim=2``).
    Returns one value per example, in nats.
    """
    log_probs = F.log_softmax(logits.float(), dim=dim)
    picked = log_probs.gather(dim, x.unsqueeze(dim)).squeeze(dim)
    return picked.flatten(1).sum(dim=1)


def sample_categorical(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one index per row of ``logits[..., K]`` by inverting the cumulative
    distribution at a uniform number scaled to its total: the index is the number of
    cumulative probabilities at or below it. Scaled so, the number stays below the last
    cumulative probability whatever its rounding, and an index of probability zero
    (a ``-inf`` logit, masked out) is never drawn.

    The uniforms come from ``generator`` on its own device, so a seeded CPU generator
    gives the same samples whichever device the model runs on.
    """
    noise_device = generator.device if generator is not None else logits.device
    uniform = torch.rand((*logits.shape[:-1], 1), generator=generator, device=noise_device)
    cdf = F.softmax(logits.float(), dim=-1).cumsum(dim=-1)
    target = uniform.to(logits.device) * cdf[..., -1:]
    index = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return index.clamp_(max=logits.shape[-1] - 1)


def discretized_logistic_mixture_log_pmf(
    logit_weights: Tensor, means: Tensor, log_scales: Tensor, num_bins: int
) -> Tensor:
    """Log-probabilities of the values ``0..num_bins-1`` under a mixture of logistics
    discretized to unit bins (Salimans et al., 2017, "PixelCNN++").

    Bin ``k`` covers ``[k - 0.5, k + 0.5)``; the first and last bins also take the tails
    below and above, so the probabilities telescope to exactly one. Parameters have a
    trailing component axis ``[..., M]`` (means and scales in bin units); the result is
    ``[..., num_bins]``.
    """
    edges = torch.arange(num_bins - 1, device=means.device, dtype=means.dtype) + 0.5
    standardized = (edges[:, None] - means[..., None, :]) * torch.exp(-log_scales[..., None, :])
    inner_cdf = torch.sigmoid(standardized)
    zeros = torch.zeros_like(inner_cdf[..., :1, :])
    cdf = torch.cat([zeros, inner_cdf, zeros + 1], dim=-2)
    component_pmf = (cdf[..., 1:, :] - cdf[..., :-1, :]).clamp_min(1e-12)
    log_weights = F.log_softmax(logit_weights, dim=-1)[..., None, :]
    return torch.logsumexp(log_weights + component_pmf.log(), dim=-1)
