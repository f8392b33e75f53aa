"""Seconds per decoding step with and without the key-value cache."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import torch

from genlab.analysis import decoding_step_seconds
from genlab.callbacks.io import log_figure


class SamplingSpeed(L.Callback):
    """At the end of ``fit``, draws ``num_samples`` samples with the cache and again
    without it (same seed, so the same images), and plots seconds per step against the
    step index for both, with the totals and their ratio in the legend. Logs
    ``sampling_speed`` to TensorBoard and writes ``sampling_speed.png``.

    Needs a model whose ``sample`` takes ``use_cache`` and ``on_step`` (iGPT).
    """

    def __init__(self, num_samples: int = 100, seed: int = 0) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.seed = seed

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        seconds = {
            use_cache: decoding_step_seconds(
                pl_module,
                self.num_samples,
                use_cache,
                torch.Generator().manual_seed(self.seed),
            )
            for use_cache in (True, False)
        }
        totals = {use_cache: sum(steps) for use_cache, steps in seconds.items()}
        figure, ax = plt.subplots(figsize=(6, 3.5))
        for use_cache, label in ((False, "without cache"), (True, "with KV cache")):
            ax.plot(seconds[use_cache], label=f"{label}: {totals[use_cache]:.1f} s in all")
        ax.set_xlabel("decoding step (token index)")
        ax.set_ylabel("seconds per step")
        ax.set_title(
            f"{self.num_samples} samples; cache speed-up {totals[False] / totals[True]:.1f}x"
        )
        ax.legend()
        ax.grid(alpha=0.3)
        log_figure(trainer, "sampling_speed", figure, "sampling_speed.png")
