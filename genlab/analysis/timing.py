"""Wall time of each decoding step of an autoregressive sampler."""

from __future__ import annotations

import time

import torch
from torch import nn


def decoding_step_seconds(
    model: nn.Module,
    num_samples: int,
    use_cache: bool,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Seconds taken by each step of ``model.sample(num_samples, use_cache=...)``, one
    entry per generated token. Needs a model whose ``sample`` takes ``use_cache`` and an
    ``on_step`` callback (iGPT). Without a cache a step recomputes the whole prefix, so
    its time grows with the step index; with one it stays flat."""
    on_gpu = next(model.parameters()).is_cuda
    stamps = [time.perf_counter()]

    def record(step: int) -> None:
        if on_gpu:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    model.sample(num_samples, generator=generator, use_cache=use_cache, on_step=record)
    return [after - before for before, after in zip(stamps[:-1], stamps[1:], strict=True)]
