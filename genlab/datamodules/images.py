"""Shared pieces of the image data modules: transforms, in-memory dataset, base module.

Layout: the transforms work on numpy uint8 arrays in NHWC, the layout the array files of
course handouts ship; `transform_images` ends the pipeline by moving channels first, so
the tensors the data modules hold are uint8 NCHW and every batch is long NCHW with values
in 0..K-1 (K = `num_levels`).

Randomness: every random choice comes from `numpy.random.default_rng([seed, stream])`,
one fixed `SeedStream` per purpose, so the same seed gives the same data on every
machine and the streams are independent of each other and of torch's global RNG.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import IntEnum

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genlab.datamodules.sampler import shuffling_sampler

Seed = int | Sequence[int]


class SeedStream(IntEnum):
    """Purposes that draw random numbers; `[seed, stream]` seeds numpy's generator.

    The values are nonzero on purpose: numpy's SeedSequence treats trailing zeros as
    absent, so `[seed, 0]` would be the same stream as the bare `seed`.
    """

    TRAIN_IMAGES = 1
    TEST_IMAGES = 2
    TRAIN_COLORS = 3
    TEST_COLORS = 4
    VALIDATION_SPLIT = 5
    TRAIN_RECOLORS = 6


def stream_rng(seed: int, stream: SeedStream) -> np.random.Generator:
    """The generator of one purpose under one seed."""
    return np.random.default_rng([seed, int(stream)])


def binarize(images: np.ndarray) -> np.ndarray:
    """Pixels above 127.5 become 1, the others 0 (uint8, any layout)."""
    return (images > 127.5).astype(np.uint8)


def quantize(images: np.ndarray, num_levels: int) -> np.ndarray:
    """Map 0..255 onto 0..K-1 by floor(x * K / 256), so each level covers 256/K values.

    With K = 2 this is exactly `binarize`. Works on any layout.
    """
    check_num_levels(num_levels)
    return (images.astype(np.uint32) * num_levels // 256).astype(np.uint8)


def stretch_levels(images: np.ndarray, levels_in_file: int) -> np.ndarray:
    """Map values 0..L-1 of images quantized before saving onto 0..255 (L = levels_in_file).

    Level v becomes ceil(256 v / L), the lowest byte that `quantize` to L levels maps back
    to v: quantizing to K = L levels gives the stored values back, to fewer levels merges
    neighbours, and `binarize` reads the levels v >= L/2 as on (with L = 2, value 1
    becomes 128, a digit's stroke). Works on any layout.
    """
    check_num_levels(levels_in_file, "levels_in_file")
    levels = images.astype(np.uint32)
    return ((levels * 256 + levels_in_file - 1) // levels_in_file).astype(np.uint8)


def check_num_levels(num_levels: int, name: str = "num_levels") -> None:
    """Reject a level count (the argument `name`) that uint8 pixels cannot carry."""
    if not 2 <= num_levels <= 256:
        raise ValueError(f"{name} must be between 2 and 256, got {num_levels}")


def colorize(
    binary: np.ndarray,
    num_levels: int = 4,
    seed: Seed = 0,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """Paint binary images [N,H,W,1] into RGB images [N,H,W,3] with values in 0..K-1.

    Every image gets one background colour (pixels 0) and a different foreground colour
    (pixels 1), each channel taking K levels (K = 4 gives 2 bits per channel, 64 colours).
    The colours of the image with dataset index i are row i of a table of uniforms drawn
    in order from `default_rng(seed)`, so they depend only on (seed, i): colouring an
    image alone (pass its `indices`) or within any batch gives the same result.
    `indices` defaults to 0..N-1.
    """
    if binary.ndim != 4 or binary.shape[-1] != 1:
        raise ValueError(f"colorize expects binary images [N,H,W,1], got shape {binary.shape}")
    indices = np.arange(len(binary)) if indices is None else np.asarray(indices)
    background, foreground = draw_color_pairs(num_levels, seed, indices)
    painted = np.where(
        binary.astype(bool), foreground[:, None, None, :], background[:, None, None, :]
    )
    return painted.astype(np.uint8)


def draw_color_pairs(
    num_levels: int, seed: Seed, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Background and foreground RGB colours [N,3] of the images with these indices."""
    check_num_levels(num_levels)
    num_colors = num_levels**3
    uniforms = np.random.default_rng(seed).random((indices.max(initial=-1) + 1, 2))[indices]
    background = np.minimum((uniforms[:, 0] * num_colors).astype(np.int64), num_colors - 1)
    foreground = np.minimum((uniforms[:, 1] * (num_colors - 1)).astype(np.int64), num_colors - 2)
    foreground += foreground >= background
    return color_code_to_rgb(background, num_levels), color_code_to_rgb(foreground, num_levels)


def color_code_to_rgb(codes: np.ndarray, num_levels: int) -> np.ndarray:
    """Read colour numbers 0..K^3-1 as three base-K digits (R, G, B), giving [N,3]."""
    return np.stack(
        [codes // num_levels**2, codes // num_levels % num_levels, codes % num_levels], axis=-1
    )


def transform_images(
    raw: np.ndarray, num_levels: int, colored: bool = False, color_seed: Seed = 0
) -> np.ndarray:
    """The one pipeline every image source feeds: raw NHWC uint8 0..255 -> NCHW 0..K-1.

    Grayscale (C = 1): quantize to K levels (K = 2 is binarization), or with `colored`
    binarize and paint with K levels per channel (C becomes 3). RGB (C = 3) is taken as
    already coloured and each channel is quantized to K levels; it cannot be coloured again.
    """
    channels = raw.shape[-1]
    if channels not in (1, 3) or (colored and channels != 1):
        raise ValueError(
            f"expected images [N,H,W,C] with C = 1 (or C = 3 without colored), "
            f"got shape {raw.shape} with colored={colored}"
        )
    if colored:
        images = colorize(binarize(raw), num_levels, color_seed)
    else:
        images = quantize(raw, num_levels)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


class InMemoryImages(Dataset):
    """Labelled images held as one uint8 tensor [N,C,H,W] and one long tensor [N].

    `__getitems__` returns a whole batch with one tensor index, so the DataLoader (with
    `pass_batch_through` as collate_fn) never touches single items.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,C,H,W], got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        self.images = images
        self.labels = labels.long()

    @classmethod
    def from_numpy(cls, images: np.ndarray, labels: np.ndarray) -> "InMemoryImages":
        """Wrap numpy arrays (uint8 NCHW images, integer labels) without copying twice."""
        return cls(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].long(), self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = torch.as_tensor(indices, dtype=torch.long)
        return self.images[batch].long(), self.labels[batch]

    def select(self, indices: np.ndarray) -> "InMemoryImages":
        """The images at these indices, as a new dataset."""
        batch = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        return InMemoryImages(self.images[batch], self.labels[batch])


def pass_batch_through(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate function for datasets whose `__getitems__` already returns the batch."""
    return batch


def split_off_validation(
    dataset: InMemoryImages, val_fraction: float, seed: int
) -> tuple[InMemoryImages, InMemoryImages]:
    """Carve a random validation set of round(N * val_fraction) images out of a train set.

    The choice depends only on N, the fraction and the seed; both parts keep the
    original order. A positive fraction too small to hold out one image is refused, so
    that a fit never runs without the validation it asked for.
    """
    num_val = round(len(dataset) * val_fraction)
    if val_fraction > 0 and num_val == 0:
        raise ValueError(
            f"val_fraction={val_fraction} of {len(dataset)} training images holds out none; "
            f"use a larger val_fraction, or 0 to train without validation"
        )
    if num_val >= len(dataset):
        raise ValueError(
            f"val_fraction={val_fraction} leaves no training images out of {len(dataset)}"
        )
    order = stream_rng(seed, SeedStream.VALIDATION_SPLIT).permutation(len(dataset))
    return dataset.select(np.sort(order[num_val:])), dataset.select(np.sort(order[:num_val]))


class ImageDataModule(pl.LightningDataModule, ABC):
    """Base of the image data modules: in-memory splits, loaders and the sample requests.

    Subclasses say what the images are (`image_shape`, `num_levels`, `name`, known right
    after `__init__` so the CLI can link them to the model) and load the train and test
    splits; this class carves the validation split off the train split and serves
    batches `(images LongTensor [B,C,H,W], labels LongTensor [B])`.

    Args:
        batch_size: Images per batch, and sample indices per predict batch.
        val_fraction: Share of the train split held out for validation, in [0, 1).
        seed: Seed of everything random in the data (generation, colours, validation split).
        num_workers: DataLoader worker processes; 0 loads in the main process.
        predict_samples: How many samples `predict` asks the model for.
        pin_memory: Pin batches in page-locked memory (helps GPU transfers).
    """

    def __init__(
        self,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
        predict_samples: int = 100,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        check_base_arguments(batch_size, val_fraction, seed, num_workers, predict_samples)
        self.save_hyperparameters()
        self.train_set: InMemoryImages | None = None
        self.val_set: InMemoryImages | None = None
        self.test_set: InMemoryImages | None = None

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""

    @property
    @abstractmethod
    def num_levels(self) -> int:
        """K: each subpixel takes a value in 0..K-1."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Data set name for the run folder `runs/<model>/<name>`."""

    @abstractmethod
    def load_splits(self) -> tuple[InMemoryImages, InMemoryImages]:
        """The transformed (train, test) splits."""

    def setup(self, stage: str | None = None) -> None:
        """Load the splits once; later calls (one per stage) reuse them."""
        if self.train_set is not None:
            return
        train, self.test_set = self.load_splits()
        self.train_set, self.val_set = split_off_validation(
            train, self.hparams.val_fraction, self.hparams.seed
        )

    def train_dataloader(self) -> DataLoader:
        return self.image_loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.image_loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.image_loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Batches of sample indices 0..predict_samples-1 (1-D LongTensors)."""
        return DataLoader(
            torch.arange(self.hparams.predict_samples), batch_size=self.hparams.batch_size
        )

    def image_loader(self, dataset: InMemoryImages | None, shuffle: bool) -> DataLoader:
        """A loader that fetches whole batches through the dataset's `__getitems__`."""
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its loaders")
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            sampler=shuffling_sampler(dataset, self) if shuffle else None,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.num_workers > 0,
            collate_fn=pass_batch_through,
        )


def check_base_arguments(
    batch_size: int, val_fraction: float, seed: int, num_workers: int, predict_samples: int
) -> None:
    """Reject base arguments that would fail later with a less clear message."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (numpy seeds are non-negative), got {seed}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if predict_samples < 0:
        raise ValueError(f"predict_samples must be >= 0, got {predict_samples}")
