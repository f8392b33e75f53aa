"""Random draws of the training steps (noise, dropout, time steps) that a resumed fit
repeats exactly."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch

from genlab.datamodules.sampler import run_seed

STEP_STREAM = 1  # keeps these seeds apart from the shuffling seeds of (run seed, epoch)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of the training steps of ``epoch`` in a run seeded with ``seed``, in the
    process of global ``rank``: under DDP each process draws its own noise for its share
    of the batch, and rank 0 draws what a single process would."""
    entropy = [seed, epoch, STEP_STREAM, rank] if rank else [seed, epoch, STEP_STREAM]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class EpochSeeds(L.Callback):
    """Reseeds torch, numpy and Python's ``random`` before the first training step of
    every epoch from (the run's seed, the epoch, and under DDP the process's rank).

    A fit resumed from ``last.ckpt`` starts with other random states than the fit that
    wrote it had at that point (it ran no earlier epochs, and sanity checks or loader
    set-up may draw numbers), so without this its steps would draw other noise. With it,
    fitting 2 epochs and fitting 1 then resuming for 1 more draw the same numbers.
    """

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if batch_idx != 0:
            return
        seed = epoch_seed(run_seed(), trainer.current_epoch, trainer.global_rank)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
