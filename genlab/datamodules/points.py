"""Point clouds in the plane, drawn from a seed: float points ``[B, 2]`` with labels ``[B]``.

Data sets (``dataset=``):
* ``square``: uniform on [-1, 1]^2;
* ``square_classes``: the same square with a class per angular sector around the origin
  (``num_regions`` sectors of equal angle, sector 0 starting at the positive x axis and
  turning anticlockwise; 4 sectors are the quadrants);
* ``moons``: two interleaved half circles;
* ``swiss_roll``: a spiral;
* ``eight_gaussians``: eight small Gaussians on a circle of radius 1;
* ``gaussian``: one Gaussian with a known ``mean`` and ``covariance``, for exact checks.

Only ``square_classes`` has labels; every other set labels each point -1 ("no label"),
as the image data modules do for files without labels. The moons, the roll and the
eight Gaussians add isotropic Gaussian ``noise`` of the given standard deviation.
Train, validation and test points come from three independent random streams of
``seed``, so the test set does not change with ``num_train``.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from genlab.datamodules.images import SeedStream, stream_rng
from genlab.datamodules.in_memory import InMemoryTensors, whole_batch_loader

DATASETS = ("square", "square_classes", "moons", "swiss_roll", "eight_gaussians", "gaussian")
DEFAULT_MEAN = (0.5, -0.25)
DEFAULT_COVARIANCE = ((0.3, 0.12), (0.12, 0.15))
SPLIT_STREAMS = {
    "train": SeedStream.TRAIN_IMAGES,
    "val": SeedStream.VALIDATION_SPLIT,
    "test": SeedStream.TEST_IMAGES,
}


def sector_of(points: torch.Tensor, num_regions: int) -> torch.Tensor:
    """The angular sector (0..num_regions-1) of each point ``[N, 2]``, anticlockwise from
    the positive x axis: the class of ``square_classes``."""
    angle = torch.atan2(points[:, 1], points[:, 0]) % (2 * math.pi)
    return (angle // (2 * math.pi / num_regions)).long().clamp(0, num_regions - 1)


def two_moons(count: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved half circles of radius 1, centred on the origin and scaled by 0.8."""
    angle = rng.uniform(0, math.pi, count)
    upper = rng.random(count) < 0.5
    x = np.where(upper, np.cos(angle), 1 - np.cos(angle)) - 0.5
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle)) - 0.25
    return 0.8 * np.stack([x, y], axis=1)


def swiss_roll(count: int, rng: np.random.Generator) -> np.ndarray:
    """The spiral ``r (cos r, sin r)`` for r from 1.5 pi to 4.5 pi, scaled into [-1, 1]^2."""
    radius = rng.uniform(1.5 * math.pi, 4.5 * math.pi, count)
    return np.stack([radius * np.cos(radius), radius * np.sin(radius)], axis=1) / (4.5 * math.pi)


def eight_gaussians(count: int, rng: np.random.Generator) -> np.ndarray:
    """Centres of eight equal Gaussians, evenly spaced on the unit circle."""
    angle = rng.integers(0, 8, count) * (math.pi / 4)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


class PointsDataModule(L.LightningDataModule):
    """Batches ``(points FloatTensor [B, 2], labels LongTensor [B])`` of a 2D data set.

    Args:
        dataset: one of ``DATASETS`` (see the module docstring).
        num_train: training points.
        num_val: validation points.
        num_test: test points.
        noise: standard deviation of the noise added to moons, swiss roll and eight
            Gaussians.
        num_regions: classes of ``square_classes`` (angular sectors), at least 2.
        mean: mean of ``gaussian``; None for (0.5, -0.25).
        covariance: 2x2 covariance of ``gaussian`` (symmetric, positive definite); None
            for ((0.3, 0.12), (0.12, 0.15)).
        seed: seed of every point.
        batch_size: points per batch.
    """

    def __init__(
        self,
        dataset: str = "square",
        num_train: int = 10_000,
        num_val: int = 1_000,
        num_test: int = 1_000,
        noise: float = 0.05,
        num_regions: int = 4,
        mean: list[float] | None = None,
        covariance: list[list[float]] | None = None,
        seed: int = 0,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
        sizes = dict(num_train=num_train, num_val=num_val, num_test=num_test, batch_size=batch_size)
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if num_regions < 2:
            raise ValueError(f"num_regions must be >= 2, got {num_regions}")
        self.mean = torch.tensor(DEFAULT_MEAN if mean is None else mean, dtype=torch.float64)
        self.covariance = torch.tensor(
            DEFAULT_COVARIANCE if covariance is None else covariance, dtype=torch.float64
        )
        check_gaussian(self.mean, self.covariance)
        self.save_hyperparameters()
        self.splits: dict[str, InMemoryTensors] = {}

    @property
    def name(self) -> str:
        return self.hparams.dataset

    @property
    def num_classes(self) -> int:
        """Classes a conditional model needs: ``num_regions`` for ``square_classes``, else 0."""
        return self.hparams.num_regions if self.hparams.dataset == "square_classes" else 0

    def draw(self, count: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` points of the data set and their labels (-1 where there are none)."""
        dataset, noise = self.hparams.dataset, self.hparams.noise
        if dataset in ("square", "square_classes"):
            points = rng.uniform(-1, 1, (count, 2))
        elif dataset == "gaussian":
            points = rng.multivariate_normal(self.mean.numpy(), self.covariance.numpy(), count)
        else:
            shape = {"moons": two_moons, "swiss_roll": swiss_roll}.get(dataset, eight_gaussians)
            points = shape(count, rng) + noise * rng.standard_normal((count, 2))
        points = torch.from_numpy(points).float()
        if dataset == "square_classes":
            return points, sector_of(points, self.hparams.num_regions)
        return points, torch.full((count,), -1, dtype=torch.long)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for split, stream in SPLIT_STREAMS.items():
            count = self.hparams[f"num_{split}"]
            self.splits[split] = InMemoryTensors(
                *self.draw(count, stream_rng(self.hparams.seed, stream))
            )

    def points(self, split: str) -> torch.Tensor:
        """Every point of a split (``"train"``, ``"val"``, ``"test"``), ``[N, 2]``."""
        self.setup()
        return self.splits[split].tensors[0]

    def labels(self, split: str) -> torch.Tensor:
        """Every label of a split, ``[N]`` (-1 for unlabelled data sets)."""
        self.setup()
        return self.splits[split].tensors[1]

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        self.setup()
        return whole_batch_loader(self.splits[split], self, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")


def check_gaussian(mean: torch.Tensor, covariance: torch.Tensor) -> None:
    """Stop unless ``mean`` has 2 entries and ``covariance`` is a symmetric positive definite
    2x2 matrix."""
    if mean.shape != (2,) or covariance.shape != (2, 2):
        raise ValueError(
            f"expected mean of shape [2] and covariance of shape [2, 2], got "
            f"{list(mean.shape)} and {list(covariance.shape)}"
        )
    symmetric = torch.allclose(covariance, covariance.T)
    if not symmetric or torch.linalg.eigvalsh(covariance).min() <= 0:
        raise ValueError(
            f"covariance must be symmetric positive definite, got {covariance.tolist()}"
        )
