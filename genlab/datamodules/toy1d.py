"""One-dimensional discrete data: samples of a Gaussian mixture on [0, 1], digitized
into ``num_bins`` equal bins, with the exact distribution kept for reference.

Presets:
* ``course1``: N(0.2, 0.2), 20 bins, 1,000 samples;
* ``course2``: three Gaussians, N(0.25, 0.05), N(0.5, 0.1), N(0.75, 0.05), equal weights,
  100 bins, 10,000 samples;
* ``warmup``: N(0.3, 0.1) and N(0.8, 0.05), equal weights, 100 bins, 10,000 samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from genlab.datamodules.toy import ToyDataModule, check_val_fraction, entropy_of


@dataclass(frozen=True)
class Mixture1D:
    """A Gaussian mixture on the real line, digitized into ``num_bins`` bins of [0, 1];
    mass below 0 falls into the first bin and mass above 1 into the last."""

    means: tuple[float, ...]
    stds: tuple[float, ...]
    weights: tuple[float, ...]
    num_bins: int

    def __post_init__(self) -> None:
        if not len(self.means) == len(self.stds) == len(self.weights) > 0:
            raise ValueError(
                f"means, stds and weights need one entry per component, got "
                f"{len(self.means)}, {len(self.stds)} and {len(self.weights)}"
            )
        if min(self.stds) <= 0 or min(self.weights) < 0 or self.num_bins < 2:
            raise ValueError("stds must be > 0, weights >= 0 and num_bins >= 2")

    def cdf(self, value: float) -> float:
        total = sum(self.weights)
        return sum(
            w / total * 0.5 * (1 + math.erf((value - m) / (s * math.sqrt(2))))
            for m, s, w in zip(self.means, self.stds, self.weights, strict=True)
        )

    def pmf(self) -> np.ndarray:
        """Exact probability of each bin."""
        inner_edges = [self.cdf(k / self.num_bins) for k in range(1, self.num_bins)]
        return np.diff([0.0, *inner_edges, 1.0])

    def entropy(self) -> float:
        """Exact entropy of the digitized distribution in nats: the NLL floor."""
        return entropy_of(self.pmf())

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` bin indices drawn from the mixture."""
        weights = np.asarray(self.weights) / sum(self.weights)
        component = rng.choice(len(weights), size=count, p=weights)
        values = rng.normal(np.asarray(self.means)[component], np.asarray(self.stds)[component])
        return np.clip(np.floor(values * self.num_bins), 0, self.num_bins - 1).astype(np.int64)


PRESETS = {
    "course1": (Mixture1D((0.2,), (0.2,), (1.0,), 20), 1_000),
    "course2": (Mixture1D((0.25, 0.5, 0.75), (0.05, 0.1, 0.05), (1.0, 1.0, 1.0), 100), 10_000),
    "warmup": (Mixture1D((0.3, 0.8), (0.1, 0.05), (1.0, 1.0), 100), 10_000),
}


class Toy1DDataModule(ToyDataModule):
    """Digitized 1D mixture samples as LongTensors ``[B, 1]`` with values ``0..num_bins-1``.

    The train/test split is 80/20; a ``val_fraction`` of the train part is held out for
    validation. Everything is drawn from ``seed``.

    Args:
        preset: "course1", "course2", "warmup", or None for the mixture given below.
        means: component means (with preset None).
        stds: component standard deviations (with preset None).
        weights: component weights, normalised (with preset None).
        num_bins: number of bins d (with preset None).
        num_samples: samples drawn in all; None takes the preset's.
        val_fraction: share of the train part held out for validation.
        seed: seed of the samples and of the split.
        batch_size: examples per batch.
    """

    def __init__(
        self,
        preset: str | None = "course1",
        means: tuple[float, ...] = (0.5,),
        stds: tuple[float, ...] = (0.1,),
        weights: tuple[float, ...] = (1.0,),
        num_bins: int = 20,
        num_samples: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        batch_size: int = 128,
    ) -> None:
        super().__init__()
        check_val_fraction(val_fraction)
        if preset is None:
            self.distribution = Mixture1D(tuple(means), tuple(stds), tuple(weights), num_bins)
            self.count = num_samples or 10_000
        elif preset in PRESETS:
            self.distribution, preset_count = PRESETS[preset]
            self.count = num_samples or preset_count
        else:
            raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
        num_bins = self.distribution.num_bins  # a preset has its own; save the one in use
        self.save_hyperparameters()

    @property
    def num_bins(self) -> int:
        return self.distribution.num_bins

    @property
    def name(self) -> str:
        return self.hparams.preset or "mixture1d"

    def draw(self, rng: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(self.distribution.sample(self.count, rng)).unsqueeze(1)

    def true_pmf(self) -> np.ndarray:
        return self.distribution.pmf()
