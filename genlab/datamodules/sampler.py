"""Shuffling that a resumed fit repeats exactly.

`torch.utils.data.RandomSampler` draws each epoch's order from torch's global random
state, which a fit resumed from a checkpoint does not share with the fit that wrote it,
so the resumed epochs would see other orders. `EpochRandomSampler` draws the order of
epoch e from (the run's seed, e) alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized

import lightning as L
import numpy as np
import torch
from torch.utils.data import RandomSampler


def run_seed() -> int:
    """The seed of the run: `seed_everything`'s (Lightning keeps it in PL_GLOBAL_SEED, and
    its distributed sampler reads it too), 0 when no seed was set."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class EpochRandomSampler(RandomSampler):
    """A random order of the dataset's indices that depends only on the seed and the
    epoch: Lightning calls `set_epoch` before every training epoch. Still a
    `RandomSampler`, so Lightning's distributed training replaces it by its own
    (equally epoch-seeded) `DistributedSampler` as before."""

    def __init__(self, data_source: Sized, seed: int, epoch: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Iterations from now on give the order of `epoch`."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        seed = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0]
        self.generator = torch.Generator().manual_seed(int(seed))
        return super().__iter__()


def shuffling_sampler(data_source: Sized, datamodule: L.LightningDataModule) -> EpochRandomSampler:
    """The training sampler of a data module: seeded by the run, starting at the
    trainer's current epoch (a resumed fit requests its loader before Lightning sets
    the epoch, and loader workers may already have drawn indices by then)."""
    trainer = datamodule.trainer
    return EpochRandomSampler(data_source, run_seed(), trainer.current_epoch if trainer else 0)
