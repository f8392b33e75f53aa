"""Two-dimensional discrete data: pairs ``(x1, x2)`` on a ``d x d`` grid drawn from a
known joint distribution, which is kept for exact reference (its entropy is the floor of
any model's NLL).

The joint comes from a density array (``.npy``, any ``[d, d]`` array of finite,
real, non-negative numbers with a positive finite sum, d >= 2), from a grayscale image
file (brighter = likelier, resized to ``d x d``), or from a built-in procedural picture.
Row index is ``x1``, column index ``x2``. A file that is unreadable or breaks these rules
stops with one line naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.datamodules.files import read_grayscale_image, read_npy
from genlab.datamodules.toy import ToyDataModule, check_val_fraction

DENSITY_VALUES = "finite non-negative real values with a positive finite sum"


def procedural_density(size: int) -> np.ndarray:
    """A ring, a bar and a blob on a faint background: mass in curved and straight
    structures, so that ``p(x2 | x1)`` changes a lot with ``x1``."""
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    ring = np.exp(-(((np.hypot(rows - 0.35, cols - 0.35) - 0.22) / 0.04) ** 2))
    bar = ((np.abs(rows - 0.8) < 0.06) & (cols > 0.15) & (cols < 0.9)).astype(float)
    blob = np.exp(-((rows - 0.3) ** 2 + (cols - 0.82) ** 2) / (2 * 0.07**2))
    return ring + 0.8 * bar + blob + 0.01


def load_density(path: str | Path, size: int) -> np.ndarray:
    """A ``[size, size]`` density from a ``.npy`` array (its own size wins) or an image file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"density file not found: {path}")
    if path.suffix == ".npy":
        density = real_square_array(read_npy(path), path)
    else:
        density = read_grayscale_image(path, size)
    problem = density_problem(density)
    if problem:
        raise ValueError(f"{path}: expected {DENSITY_VALUES}, got {problem}")
    return density


def real_square_array(array: np.ndarray, path: Path) -> np.ndarray:
    """A ``[d, d]`` array of real numbers (d >= 2) as float64; anything else stops naming
    the file. Complex numbers are refused rather than cast, which would drop their
    imaginary parts."""
    if array.ndim != 2 or array.shape[0] != array.shape[1] or len(array) < 2:
        raise ValueError(
            f"{path}: expected a square [d, d] array with d >= 2, got shape {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected {DENSITY_VALUES}, got dtype {array.dtype}")
    return array.astype(np.float64)


def density_problem(density: np.ndarray) -> str | None:
    """What keeps a float64 array from being normalised into a distribution, in words,
    or None. The sum is checked too: values near the float64 limit overflow it to inf."""
    if not np.isfinite(density).all():
        return "NaN or infinite values"
    if density.min() < 0:
        return f"negative values (the smallest is {density.min():g})"
    with np.errstate(over="ignore"):
        total = density.sum()
    if not np.isfinite(total):
        return f"values up to {density.max():g}, whose sum overflows to inf"
    if total == 0:
        return "all zero values"
    return None


class Toy2DDataModule(ToyDataModule):
    """Pairs of integers as LongTensors ``[B, 2]`` with values ``0..num_bins-1``.

    Args:
        path: a ``.npy`` density array or a grayscale image file; None uses the built-in
            procedural picture.
        num_bins: grid size d for images and the built-in picture (an array sets its own).
        num_samples: points drawn in all; 80% train (of which ``val_fraction`` validates),
            20% test.
        val_fraction: share of the train part held out for validation.
        seed: seed of the points and of the split.
        batch_size: pairs per batch.
    """

    def __init__(
        self,
        path: str | None = None,
        num_bins: int = 25,
        num_samples: int = 100_000,
        val_fraction: float = 0.1,
        seed: int = 0,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        check_val_fraction(val_fraction)
        if num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {num_bins}")
        raw = procedural_density(num_bins) if path is None else load_density(path, num_bins)
        self.density = raw / raw.sum()
        num_bins = self.density.shape[0]  # an array file has its own; save the one in use
        self.save_hyperparameters()

    @property
    def num_bins(self) -> int:
        return self.density.shape[0]

    @property
    def image_shape(self) -> tuple[int]:
        """The shape of one example, ``(2,)``, for models of vectors such as MADE."""
        return (2,)

    @property
    def num_levels(self) -> int:
        """Values per coordinate; the same as ``num_bins``, named as image models name it."""
        return self.num_bins

    @property
    def name(self) -> str:
        return "procedural2d" if self.hparams.path is None else Path(self.hparams.path).stem

    def true_pmf(self) -> np.ndarray:
        """The joint ``[d, d]``, rows x1 and columns x2."""
        return self.density

    def draw(self, rng: np.random.Generator) -> torch.Tensor:
        cells = rng.choice(self.density.size, size=self.hparams.num_samples, p=self.density.ravel())
        return torch.from_numpy(np.stack(np.divmod(cells, self.num_bins), axis=1))
