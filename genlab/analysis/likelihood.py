"""Likelihood of a whole data set, through a model's public ``log_prob``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from genlab.nn.modes import evaluating


@torch.no_grad()
def mean_nats_per_dim(model: nn.Module, batches: Iterable) -> float | None:
    """Mean negative log-likelihood per data dimension over every example in ``batches``
    (tensors or ``(data, labels)`` tuples), in eval mode; None when there is no example."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with evaluating(model):
        for batch in batches:
            x = (batch[0] if isinstance(batch, (tuple, list)) else batch).to(device)
            total += float(-model.log_prob(x).sum()) / x[0].numel()
            count += len(x)
    return total / count if count else None
