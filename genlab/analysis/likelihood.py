"""Likelihood of a whole data set, through a model's public ``batch_nats``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn

from genlab.nn.modes import evaluating


@torch.no_grad()
def mean_nats_per_dim(model: nn.Module, batches: Iterable) -> float | None:
    """Mean negative log-likelihood per data dimension over every batch in ``batches``
    (in the layout the model's data module yields), in eval mode; None when empty.
    Every dimension weighs the same, whatever the examples' lengths."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with evaluating(model):
        for batch in batches:
            nats = model.batch_nats(move_data_to_device(batch, device))
            total += float(nats.double().sum())
            count += nats.numel()
    return total / count if count else None
