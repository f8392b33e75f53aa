"""The shared part of the toy data modules: draw every example once from a seed, split
80/20 into train and test, hold a share of train out for validation, serve tensors."""

from __future__ import annotations

from abc import ABC, abstractmethod

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from genlab.datamodules.images import SeedStream, stream_rng
from genlab.datamodules.in_memory import InMemoryTensors, whole_batch_loader

TEST_FRACTION = 0.2


def entropy_of(pmf: np.ndarray) -> float:
    """Entropy in nats of a distribution given as an array of probabilities (any shape)."""
    p = pmf[pmf > 0]
    return float(-(p * np.log(p)).sum())


def check_val_fraction(val_fraction: float) -> None:
    """Reject a validation share outside [0, 1): a negative one would carve the
    validation split out of the test split."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


class ToyDataModule(L.LightningDataModule, ABC):
    """Subclasses implement ``draw(rng) -> LongTensor [N, ...]`` and ``true_pmf()``; ``seed``,
    ``val_fraction`` and ``batch_size`` must be among their saved hyperparameters."""

    def __init__(self) -> None:
        super().__init__()
        self.splits: dict[str, torch.Tensor] = {}

    @abstractmethod
    def draw(self, rng: np.random.Generator) -> torch.Tensor:
        """Every example of the data set, drawn from ``rng``."""

    @abstractmethod
    def true_pmf(self) -> np.ndarray:
        """The generating distribution over the support, one axis per coordinate."""

    def entropy(self) -> float:
        """Exact entropy of the generating distribution in nats: the NLL floor."""
        return entropy_of(self.true_pmf())

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data = self.draw(stream_rng(self.hparams.seed, SeedStream.TRAIN_IMAGES))
        order = stream_rng(self.hparams.seed, SeedStream.VALIDATION_SPLIT).permutation(len(data))
        num_test = round(TEST_FRACTION * len(data))
        num_val = round(self.hparams.val_fraction * (len(data) - num_test))
        self.splits = {
            "test": data[order[:num_test]],
            "val": data[order[num_test : num_test + num_val]],
            "train": data[order[num_test + num_val :]],
        }

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        """Batches of the split's tensor, each fetched with one index."""
        return whole_batch_loader(InMemoryTensors(self.splits[split]), self, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
