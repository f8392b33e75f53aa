"""Tensors held in memory, served a whole batch at a time.

A DataLoader over a plain tensor or a ``TensorDataset`` indexes one example at a time and
stacks the examples again in ``default_collate``: Python work per example, on every
batch. ``InMemoryTensors`` answers the DataLoader's ``__getitems__`` with one index per
tensor, so with ``pass_batch_through`` as collate function a batch costs the same
whatever its size.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from genlab.datamodules.images import pass_batch_through
from genlab.datamodules.sampler import shuffling_sampler


class InMemoryTensors(TensorDataset):
    """Tensors sharing their first axis. An item, or a batch, is the tensors indexed at
    once: the tensor itself when there is one (what a DataLoader over a bare tensor
    gives), else a tuple."""

    def __getitem__(self, index: int) -> Tensor | tuple[Tensor, ...]:
        return self._take(index)

    def __getitems__(self, indices: list[int]) -> Tensor | tuple[Tensor, ...]:
        return self._take(torch.as_tensor(indices, dtype=torch.long))

    def _take(self, index: int | Tensor) -> Tensor | tuple[Tensor, ...]:
        items = tuple(tensor[index] for tensor in self.tensors)
        return items[0] if len(items) == 1 else items


def whole_batch_loader(
    dataset: Dataset, datamodule: L.LightningDataModule, shuffle: bool = False
) -> DataLoader:
    """Batches of ``datamodule``'s ``batch_size`` from a dataset whose ``__getitems__``
    builds the whole batch, shuffled for training in the run's epoch-seeded order."""
    return DataLoader(
        dataset,
        batch_size=datamodule.hparams.batch_size,
        sampler=shuffling_sampler(dataset, datamodule) if shuffle else None,
        collate_fn=pass_batch_through,
    )
