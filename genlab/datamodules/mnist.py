"""MNIST digits from torchvision or from an array file, through the shared image pipeline.

Array files are what course handouts ship: a `.npz` (numpy.savez) or `.pkl` (a pickled
dict) with `train` and `test` uint8 arrays [N,H,W,C] of values 0..255 and, optionally,
`train_labels` and `test_labels`. Grayscale arrays (C = 1) are binarized, quantized or
coloured like torchvision's MNIST; RGB arrays (C = 3) are taken as already coloured and
each channel is quantized to K levels (they cannot be coloured again). Labels are the
digits, or -1 where the file has none.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torchvision

from genlab.datamodules.images import (
    ImageDataModule,
    InMemoryImages,
    SeedStream,
    check_num_levels,
    transform_images,
)

ARRAY_FILE_LAYOUT = (
    "a .npz or .pkl holding 'train' and 'test' uint8 arrays [N,H,W,C] (C = 1 or 3) "
    "and optionally 'train_labels' and 'test_labels'"
)
ARRAY_FILE_SUFFIXES = (".npz", ".pkl")
SPLITS = ("train", "test")
TORCHVISION_SHAPE = (28, 28, 1)


@dataclass(frozen=True)
class RawSplit:
    """Untransformed images uint8 [N,H,W,C] with values 0..255, and int64 labels [N]."""

    images: np.ndarray
    labels: np.ndarray


def load_array_file(path: str | Path) -> dict[str, RawSplit]:
    """Read and validate an array file; the errors name the file and what was expected."""
    contents = read_array_file(Path(path))
    splits = {split: validated_split(contents, split, path) for split in SPLITS}
    train_shape, test_shape = (splits[split].images.shape[1:] for split in SPLITS)
    if train_shape != test_shape:
        raise ValueError(
            f"{path}: train images have (H,W,C) = {train_shape} but test images {test_shape}; "
            f"expected the same for both"
        )
    return splits


def read_array_file(path: Path) -> dict:
    """The dict stored in a `.npz` or `.pkl` file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST array file not found: {path} (expected {ARRAY_FILE_LAYOUT})"
        )
    if path.suffix == ".npz":
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files}
    if path.suffix == ".pkl":
        with path.open("rb") as file:
            contents = pickle.load(file)
        if not isinstance(contents, dict):
            raise ValueError(f"{path} holds a {type(contents).__name__}; expected a dict")
        return contents
    raise ValueError(f"{path}: unknown file type {path.suffix!r}; expected {ARRAY_FILE_LAYOUT}")


def validated_split(contents: dict, split: str, path: str | Path) -> RawSplit:
    """The images and labels of one split, checked against the expected layout."""
    if split not in contents:
        raise ValueError(
            f"{path} has no {split!r} array (keys found: {sorted(map(str, contents))}); "
            f"expected {ARRAY_FILE_LAYOUT}"
        )
    images = np.asarray(contents[split])
    if images.ndim != 4:
        raise ValueError(
            f"{path}: {split!r} has shape {images.shape}; expected [N,H,W,C] "
            f"(add a channel axis to grayscale [N,H,W] arrays)"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"{path}: {split!r} has dtype {images.dtype}; expected uint8 (0..255)")
    if len(images) == 0 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{path}: {split!r} has shape {images.shape}; expected at least one image "
            f"and C = 1 (grayscale) or C = 3 (RGB) channels"
        )
    return RawSplit(images, validated_labels(contents, split, len(images), path))


def validated_labels(contents: dict, split: str, count: int, path: str | Path) -> np.ndarray:
    """The labels of one split as int64 [N]; -1 for every image when the file has none."""
    key = f"{split}_labels"
    if key not in contents:
        return np.full(count, -1, dtype=np.int64)
    labels = np.asarray(contents[key])
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: {key!r} has shape {labels.shape} and dtype {labels.dtype}; "
            f"expected integers of shape ({count},), one per {split!r} image"
        )
    return labels.astype(np.int64)


def read_torchvision_mnist(root: str | Path, train: bool, download: bool) -> RawSplit:
    """One torchvision MNIST split as HWC images [N,28,28,1] and digit labels."""
    dataset = torchvision.datasets.MNIST(root, train=train, download=download)
    images = dataset.data.numpy()[..., None]
    if images.shape[1:] != TORCHVISION_SHAPE:
        raise ValueError(
            f"MNIST files under {root} hold images of shape {images.shape[1:3]}; expected 28x28"
        )
    return RawSplit(images, dataset.targets.numpy().astype(np.int64))


class MNISTDataModule(ImageDataModule):
    """MNIST digits, binary (default), quantized to K gray levels, or coloured.

    The images come from torchvision (`root`, downloaded when `download`) or, when `path`
    is given, from an array file, which is read and checked right away so that
    `image_shape` is known before `setup`. Both sources feed the same pipeline: K = 2
    binarizes, K > 2 quantizes, `colored` binarizes and paints a random foreground and
    background colour with K levels per channel (configs use K = 4).

    Args:
        root: Folder of torchvision's MNIST files (`<root>/MNIST/raw`).
        download: Let torchvision download MNIST into `root` when it is missing.
        path: A `.npz` or `.pkl` array file to use instead of torchvision.
        num_levels: Levels per subpixel, K, from 2 to 256.
        colored: Binarize and paint each digit with random colours (C = 3).
    """

    def __init__(
        self,
        root: str = "data",
        download: bool = True,
        path: str | None = None,
        num_levels: int = 2,
        colored: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_num_levels(num_levels)
        self.root = root
        self.download = download
        self.path = path
        self.colored = colored
        self._num_levels = num_levels
        self.array_splits = load_array_file(path) if path is not None else None
        if colored and self.source_shape[-1] != 1:
            raise ValueError(
                f"{path} holds RGB images [N,H,W,3] but colored=True paints grayscale ones; "
                f"use colored=False to quantize their channels to {num_levels} levels"
            )

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the untransformed images."""
        if self.array_splits is None:
            return TORCHVISION_SHAPE
        return self.array_splits["train"].images.shape[1:]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        height, width, channels = self.source_shape
        return (3 if self.colored else channels, height, width)

    @property
    def num_levels(self) -> int:
        return self._num_levels

    @property
    def name(self) -> str:
        """`mnist`, `colored_mnist`, with `_<K>levels` appended when K is not the usual
        one (2 for grayscale, 4 for coloured)."""
        base, usual_levels = ("colored_mnist", 4) if self.colored else ("mnist", 2)
        return base if self._num_levels == usual_levels else f"{base}_{self._num_levels}levels"

    def prepare_data(self) -> None:
        """Download torchvision's MNIST once per machine (Lightning calls this on rank 0)."""
        if self.array_splits is None and self.download:
            for train in (True, False):
                torchvision.datasets.MNIST(self.root, train=train, download=True)

    def load_splits(self) -> tuple[InMemoryImages, InMemoryImages]:
        raw = self.array_splits or self.read_torchvision()
        return (
            self.transform_split(raw["train"], SeedStream.TRAIN_COLORS),
            self.transform_split(raw["test"], SeedStream.TEST_COLORS),
        )

    def read_torchvision(self) -> dict[str, RawSplit]:
        """Both torchvision splits, keyed like an array file's."""
        return {
            split: read_torchvision_mnist(self.root, split == "train", self.download)
            for split in SPLITS
        }

    def transform_split(self, raw: RawSplit, color_stream: SeedStream) -> InMemoryImages:
        """Run the pipeline over one split; colours come from their own stream of `seed`."""
        color_seed = [self.hparams.seed, int(color_stream)]
        images = transform_images(raw.images, self._num_levels, self.colored, color_seed)
        return InMemoryImages.from_numpy(images, raw.labels)
