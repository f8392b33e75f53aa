"""MNIST digits from torchvision or from an array file, through the shared image pipeline.

Array files are what course handouts ship: a `.npz` (numpy.savez) or `.pkl` (a pickled
dict) with `train` and `test` uint8 arrays [N,H,W,C] of values 0..255 and, optionally,
`train_labels` and `test_labels`. Grayscale arrays (C = 1) are binarized, quantized or
coloured like torchvision's MNIST; RGB arrays (C = 3) are taken as already coloured and
each channel is quantized to K levels (they cannot be coloured again). Labels are the
digits, or -1 where the file has none.

Files whose images were quantized before saving (values 0..L-1, such as binarized 0/1
digits) are read with `levels_in_file = L`. Without it, a split whose brightest value is
below `PRE_QUANTIZED_BELOW` is refused: read as 0..255 it would be all black.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torchvision

from genlab.datamodules.files import error_summary, read_npz, read_pickle
from genlab.datamodules.images import (
    ImageDataModule,
    InMemoryImages,
    SeedStream,
    check_num_levels,
    stretch_levels,
    transform_images,
)
from genlab.errors import first_line

ARRAY_FILE_LAYOUT = (
    "a .npz or .pkl holding 'train' and 'test' uint8 arrays [N,H,W,C] (C = 1 or 3) "
    "and optionally 'train_labels' and 'test_labels'"
)
ARRAY_FILE_SUFFIXES = (".npz", ".pkl")
SPLITS = ("train", "test")
TORCHVISION_SHAPE = (28, 28, 1)
# A split of 0..255 images whose brightest value is 1..15 is not a set of real images but
# one quantized before saving (all black once read as 0..255). All-black splits (0) pass.
PRE_QUANTIZED_BELOW = 16
# What torchvision raises on missing or damaged MNIST files (it checks magic numbers with
# assert and reshapes with torch).
TORCHVISION_READ_ERRORS = (RuntimeError, AssertionError, ValueError, KeyError, OSError, EOFError)


@dataclass(frozen=True)
class RawSplit:
    """Untransformed images uint8 [N,H,W,C] with values 0..255, and int64 labels [N]."""

    images: np.ndarray
    labels: np.ndarray


def load_array_file(path: str | Path, levels_in_file: int | None = None) -> dict[str, RawSplit]:
    """Read and validate an array file; the errors name the file and what was expected.

    The images come back as 0..255: as stored, or stretched from 0..levels_in_file-1.
    """
    contents = read_array_file(Path(path))
    splits = {split: validated_split(contents, split, path) for split in SPLITS}
    train_shape, test_shape = (splits[split].images.shape[1:] for split in SPLITS)
    if train_shape != test_shape:
        raise ValueError(
            f"{path}: train images have (H,W,C) = {train_shape} but test images {test_shape}; "
            f"expected the same for both"
        )
    return {split: in_byte_range(raw, split, path, levels_in_file) for split, raw in splits.items()}


def read_array_file(path: Path) -> dict:
    """The dict stored in a `.npz` or `.pkl` file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST array file not found: {path} (expected {ARRAY_FILE_LAYOUT})"
        )
    if path.suffix == ".npz":
        return read_npz(path)
    if path.suffix == ".pkl":
        contents = read_pickle(path)
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
    images = numeric_array(contents[split], split, path)
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
    labels = numeric_array(contents[key], key, path)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: {key!r} has shape {labels.shape} and dtype {labels.dtype}; "
            f"expected integers of shape ({count},), one per {split!r} image"
        )
    return labels.astype(np.int64)


def numeric_array(value: object, key: str, path: str | Path) -> np.ndarray:
    """A stored value as a numpy array; a ragged list or other non-array stops naming it."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{path}: {key!r} is not an array of numbers ({first_line(error)}); "
            f"expected {ARRAY_FILE_LAYOUT}"
        ) from None


def in_byte_range(
    raw: RawSplit, split: str, path: str | Path, levels_in_file: int | None
) -> RawSplit:
    """One split with values 0..255: stretched from 0..levels_in_file-1 when given, else
    as stored, unless the values say the images were quantized before saving."""
    lowest, brightest = int(raw.images.min()), int(raw.images.max())
    if levels_in_file is None:
        if 0 < brightest < PRE_QUANTIZED_BELOW:
            raise ValueError(
                f"{path}: {split!r} values span {lowest}..{brightest}, which looks like "
                f"images quantized before saving (as 0..255 they would be black); expected "
                f"uint8 images of 0..255 in [N,H,W,C], or set levels_in_file: {brightest + 1} "
                f"to read values 0..{brightest} as {brightest + 1} levels"
            )
        return raw
    if brightest >= levels_in_file:
        raise ValueError(
            f"{path}: {split!r} values reach {brightest}, but levels_in_file={levels_in_file} "
            f"reads 0..{levels_in_file - 1}; leave levels_in_file out for 0..255 images"
        )
    return RawSplit(stretch_levels(raw.images, levels_in_file), raw.labels)


def read_torchvision_mnist(root: str | Path, train: bool, download: bool) -> RawSplit:
    """One torchvision MNIST split as HWC images [N,28,28,1] and digit labels."""
    try:
        dataset = torchvision.datasets.MNIST(root, train=train, download=download)
    except TORCHVISION_READ_ERRORS as error:
        raise OSError(
            f"MNIST files under {root} are missing or unreadable ({error_summary(error)}); "
            f"delete {Path(root) / 'MNIST'} and set download: true to fetch them again, or "
            f"give an array file as path"
        ) from None
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
        levels_in_file: For an array file whose images were quantized before saving:
            its values are 0..L-1 (L = levels_in_file, e.g. 2 for 0/1 digits) instead of
            0..255. Quantizing to K = L gives the stored values back; K may not exceed L.
            None (the default) reads 0..255 and refuses a file whose values stay below
            16, which would otherwise read as black images.
    """

    def __init__(
        self,
        root: str = "data",
        download: bool = True,
        path: str | None = None,
        num_levels: int = 2,
        colored: bool = False,
        levels_in_file: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_num_levels(num_levels)
        if levels_in_file is not None:
            check_levels_in_file(levels_in_file, path, num_levels, colored)
        self.root = root
        self.download = download
        self.path = path
        self.colored = colored
        self._num_levels = num_levels
        self.array_splits = None if path is None else load_array_file(path, levels_in_file)
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


def check_levels_in_file(
    levels_in_file: int, path: str | None, num_levels: int, colored: bool
) -> None:
    """Reject a `levels_in_file` with no array file to describe, or one that asks for more
    levels than the file holds (colouring binarizes, so it takes any)."""
    check_num_levels(levels_in_file, "levels_in_file")
    if path is None:
        raise ValueError(
            f"levels_in_file={levels_in_file} describes an array file, but path is not given "
            f"(torchvision's MNIST holds 0..255)"
        )
    if num_levels > levels_in_file and not colored:
        raise ValueError(
            f"num_levels={num_levels} is more than levels_in_file={levels_in_file}: {path} "
            f"holds {levels_in_file} levels; use num_levels <= {levels_in_file}"
        )
