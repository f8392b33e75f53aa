"""Readers of data files that stop with one line naming the file and why it is unreadable.

numpy, pickle and PIL report a damaged file in their own words and without its name
(``BadZipFile: File is not a zip file``, advice to load with ``allow_pickle``,
``EOFError: Ran out of input``). The ``genlab`` command shows one line per error, so
these readers turn every such failure into a ValueError
``<path>: not a readable <kind> (<reason>)``.
"""

from __future__ import annotations

import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from genlab.errors import first_line

ZIP_MAGIC = b"PK\x03\x04"  # the start of a .npz (numpy.savez writes a zip archive)
NPY_MAGIC = b"\x93NUMPY"  # the start of a .npy (numpy.save)
# What numpy raises on a damaged archive or array: its own checks, zipfile's and zlib's.
NUMPY_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)
IMAGE_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def error_summary(error: BaseException) -> str:
    """An exception's type and the first line of its message (just the type when the
    message is empty, as for a bare ``assert``)."""
    message = first_line(error)
    name = type(error).__name__
    return name if message == name else f"{name}: {message}"


def unreadable(path: Path, kind: str, reason: str) -> ValueError:
    """The error of a file that cannot be read as a ``kind``."""
    return ValueError(f"{path}: not a readable {kind} ({reason})")


def first_bytes(path: Path) -> bytes:
    """The bytes a numpy file starts with, enough to tell its format."""
    with path.open("rb") as file:
        return file.read(max(len(ZIP_MAGIC), len(NPY_MAGIC)))


def described(start: bytes) -> str:
    """What a file that starts with these bytes holds, in words."""
    if not start:
        return "the file is empty"
    if start.startswith(ZIP_MAGIC):
        return "it is a zip archive such as numpy.savez writes"
    if start.startswith(NPY_MAGIC):
        return "it holds a single array such as numpy.save writes"
    return "it starts like neither numpy format"


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a ``numpy.savez`` archive, by name."""
    start = first_bytes(path)
    if not start.startswith(ZIP_MAGIC):
        raise unreadable(path, ".npz archive", described(start))
    try:
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files}
    except NUMPY_READ_ERRORS as error:
        raise unreadable(path, ".npz archive", first_line(error)) from None


def read_npy(path: Path) -> np.ndarray:
    """The one array of a ``numpy.save`` file."""
    start = first_bytes(path)
    if not start.startswith(NPY_MAGIC):
        raise unreadable(path, ".npy array", described(start))
    try:
        return np.load(path)
    except NUMPY_READ_ERRORS as error:
        raise unreadable(path, ".npy array", first_line(error)) from None


def read_pickle(path: Path) -> object:
    """The object pickled in a file. Unpickling damaged bytes can raise almost any
    exception type (UnpicklingError, EOFError, ValueError, IndexError, ...), so every
    exception is reported as an unreadable file, with its type."""
    if path.stat().st_size == 0:
        raise unreadable(path, "pickle", "the file is empty")
    try:
        with path.open("rb") as file:
            return pickle.load(file)
    except Exception as error:
        raise unreadable(path, "pickle", error_summary(error)) from None


def read_grayscale_image(path: Path, size: int) -> np.ndarray:
    """An image file as float64 brightness 0..255, resized to ``[size, size]``."""
    if path.stat().st_size == 0:
        raise unreadable(path, "image", "the file is empty")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L").resize((size, size)), dtype=np.float64)
    except UnidentifiedImageError:
        raise unreadable(path, "image", "not in an image format PIL knows") from None
    except IMAGE_READ_ERRORS as error:
        raise unreadable(path, "image", first_line(error)) from None
