"""Switching a module into evaluation mode, or autocast off, for a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block (no dropout, fixed norms), the previous mode after it,
    so sampling or scoring in the middle of training leaves training as it was."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def full_precision(device: torch.device | str) -> AbstractContextManager:
    """Autocast off inside the block: under ``--trainer.precision bf16-mixed`` the
    computations whose precision is the result (an exact likelihood, a nearest-code
    search, running statistics) stay in float32 while the networks around them run in
    bfloat16. Tensors must be cast to float32 by the caller where they come in lower."""
    return torch.autocast(torch.device(device).type, enabled=False)
