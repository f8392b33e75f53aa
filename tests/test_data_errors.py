"""Bad data input stops with one line that names the file (or argument) and says what
was expected: pre-quantized array files, unreadable files of every kind the data
modules read, densities that overflow or are not real, and texts too short for their
splits or their context."""

from __future__ import annotations

import io
import pickle
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main, run_cli
from genlab.datamodules import (
    CaptionedMNISTDataModule,
    MNISTDataModule,
    TextDataModule,
    Toy1DDataModule,
    Toy2DDataModule,
    quantize,
)
from genlab.datamodules.images import stretch_levels

REPO = Path(__file__).resolve().parents[1]
QUIET = [
    "--trainer.accelerator=cpu",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
    "--trainer.max_epochs=1",
]
TINY_PIXELCNN_MNIST = [
    f"--config={REPO}/configs/pixelcnn/mnist.yaml",
    "--model.init_args.hidden_channels=4",
    "--model.init_args.num_layers=1",
]
TINY_CHAR_GPT = [
    f"--config={REPO}/configs/char_gpt/tinyshakespeare.yaml",
    "--model.init_args.width=8",
    "--model.init_args.num_heads=2",
    "--model.init_args.num_layers=1",
]


def genlab_fails(monkeypatch, capsys, *args: str) -> str:
    """Run the ``genlab`` console script with ``args``, expecting it to stop with exit
    code 1 and one ``genlab: error:`` line as the last line of stderr; that line."""
    monkeypatch.setattr(sys, "argv", ["genlab", *args, *QUIET])
    with pytest.raises(SystemExit) as exit_info:
        main()
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("genlab: error: ")]
    assert "Traceback" not in stderr
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0], stderr
    assert exit_info.value.code == 1
    return errors[0]


def save_arrays(path: Path, contents: dict) -> Path:
    """Write ``contents`` as a .npz archive or a pickled dict, by the path's suffix."""
    if path.suffix == ".npz":
        np.savez(path, **contents)
    else:
        path.write_bytes(pickle.dumps(contents))
    return path


def images_with_values(high: int, count: int = 10, seed: int = 0) -> np.ndarray:
    """Random uint8 images [N,8,8,1] with values 0..high, each value present."""
    images = np.random.default_rng(seed).integers(0, high + 1, (count, 8, 8, 1), dtype=np.uint8)
    images.flat[: high + 1] = np.arange(high + 1)
    return images


# 1. Array files whose images were quantized before saving


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
@pytest.mark.parametrize("high", [1, 3])
def test_a_pre_quantized_array_file_is_refused_naming_levels_in_file(
    suffix, high, tmp_path, monkeypatch, capsys
):
    path = save_arrays(
        tmp_path / f"quantized{suffix}",
        {"train": images_with_values(high), "test": images_with_values(high, seed=1)},
    )
    monkeypatch.chdir(tmp_path)
    line = genlab_fails(
        monkeypatch, capsys, "fit", *TINY_PIXELCNN_MNIST, f"--data.init_args.path={path}"
    )
    assert f"{path}: 'train' values span 0..{high}" in line
    assert "uint8 images of 0..255" in line and f"levels_in_file: {high + 1}" in line


def test_levels_in_file_reaches_the_data_module_through_the_command(tmp_path, monkeypatch):
    binary = images_with_values(1)
    path = save_arrays(tmp_path / "binary.npz", {"train": binary, "test": binary})
    monkeypatch.chdir(tmp_path)
    arguments = [f"--data.init_args.path={path}", "--data.init_args.levels_in_file=2"]
    fit = run_cli(["fit", *TINY_PIXELCNN_MNIST, *arguments, *QUIET, "--trainer.fast_dev_run=1"])
    assert fit.datamodule.test_set.images.sum() == binary.sum()


@pytest.mark.parametrize("levels", [2, 4, 16])
def test_levels_in_file_reads_pre_quantized_values_as_those_levels(levels, tmp_path):
    train, test = images_with_values(levels - 1), images_with_values(levels - 1, seed=1)
    path = save_arrays(tmp_path / "quantized.npz", {"train": train, "test": test})
    datamodule = MNISTDataModule(path=str(path), levels_in_file=levels, num_levels=levels)
    datamodule.setup()
    assert torch.equal(datamodule.test_set.images, torch.from_numpy(test).permute(0, 3, 1, 2))


def test_levels_in_file_2_paints_the_ones_as_digits(tmp_path):
    binary = images_with_values(1)
    path = save_arrays(tmp_path / "binary.npz", {"train": binary, "test": binary})
    coloured = MNISTDataModule(path=str(path), levels_in_file=2, colored=True, val_fraction=0)
    coloured.setup()
    for image, digit in zip(coloured.test_set.images, binary[..., 0], strict=True):
        foreground = image[:, torch.from_numpy(digit == 1)]
        background = image[:, torch.from_numpy(digit == 0)]
        assert len(torch.unique(foreground, dim=1).T) <= 1
        assert len(torch.unique(background, dim=1).T) <= 1
        assert not torch.equal(foreground[:, 0], background[:, 0])


def test_the_captioned_module_takes_levels_in_file_too(tmp_path):
    binary = images_with_values(1)
    labels = np.arange(len(binary)) % 10
    path = save_arrays(
        tmp_path / "binary.npz",
        {"train": binary, "test": binary, "train_labels": labels, "test_labels": labels},
    )
    datamodule = CaptionedMNISTDataModule(path=str(path), levels_in_file=2, val_fraction=0)
    datamodule.setup()
    assert torch.equal(
        datamodule.test_set.strokes, torch.from_numpy(binary == 1).permute(0, 3, 1, 2)
    )


def test_stretched_levels_quantize_back_to_themselves_for_every_level_count():
    for levels in range(2, 257):
        values = np.arange(levels, dtype=np.uint8)
        assert np.array_equal(quantize(stretch_levels(values, levels), levels), values), levels


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(levels_in_file=4), r"'train' values reach 255, but levels_in_file=4 reads 0\.\.3"),
        (dict(levels_in_file=1), "levels_in_file must be between 2 and 256, got 1"),
        (dict(levels_in_file=2, num_levels=4), "num_levels=4 is more than levels_in_file=2"),
    ],
)
def test_levels_in_file_that_does_not_fit_the_file_is_refused(arguments, message, tmp_path):
    full_range = images_with_values(255)
    path = save_arrays(tmp_path / "bytes.npz", {"train": full_range, "test": full_range})
    with pytest.raises(ValueError, match=message):
        MNISTDataModule(path=str(path), **arguments)


def test_levels_in_file_without_an_array_file_is_refused():
    with pytest.raises(ValueError, match="levels_in_file=2 describes an array file"):
        MNISTDataModule(levels_in_file=2)


# 2. Files that cannot be read at all


def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, train=images_with_values(255), test=images_with_values(255, seed=1))
    return buffer.getvalue()


def pkl_bytes() -> bytes:
    return pickle.dumps({"train": images_with_values(255), "test": images_with_values(255)})


def npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).random((40, 40)))
    return buffer.getvalue()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


READERS = {
    "mnist .npz": ("digits.npz", npz_bytes, MNISTDataModule, ".npz archive"),
    "mnist .pkl": ("digits.pkl", pkl_bytes, MNISTDataModule, "pickle"),
    "density .npy": ("density.npy", npy_bytes, Toy2DDataModule, ".npy array"),
    "density .png": ("density.png", png_bytes, Toy2DDataModule, "image"),
}
DAMAGES = {
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "random bytes": lambda good: np.random.default_rng(1).bytes(300),
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("reader", READERS)
def test_an_unreadable_data_file_is_one_line_naming_it(reader, damage, tmp_path):
    name, good_bytes, datamodule_class, kind = READERS[reader]
    path = tmp_path / name
    path.write_bytes(DAMAGES[damage](good_bytes()))
    expected = f"^{re.escape(str(path))}: not a readable {kind} "
    with pytest.raises(ValueError, match=expected) as info:
        datamodule_class(path=str(path))
    assert "\n" not in str(info.value)


def test_a_truncated_array_file_is_one_line_through_the_command(tmp_path, monkeypatch, capsys):
    path = tmp_path / "digits.npz"
    path.write_bytes(npz_bytes()[:-100])
    monkeypatch.chdir(tmp_path)
    line = genlab_fails(
        monkeypatch, capsys, "fit", *TINY_PIXELCNN_MNIST, f"--data.init_args.path={path}"
    )
    assert line == f"genlab: error: {path}: not a readable .npz archive (File is not a zip file)"


def test_a_file_of_the_other_numpy_format_says_which_it_is(tmp_path):
    npz_named_npy, npy_named_npz = tmp_path / "density.npy", tmp_path / "digits.npz"
    npz_named_npy.write_bytes(npz_bytes())
    npy_named_npz.write_bytes(npy_bytes())
    with pytest.raises(ValueError, match=r"density.npy: not a readable .npy array \(it is a zip"):
        Toy2DDataModule(path=str(npz_named_npy))
    with pytest.raises(ValueError, match=r"digits.npz: not a readable .npz archive \(it holds a"):
        MNISTDataModule(path=str(npy_named_npz))


def test_arrays_of_python_objects_are_refused_naming_the_file(tmp_path):
    objects = np.array([1, "a"], dtype=object)
    np.savez(tmp_path / "digits.npz", train=objects, test=objects)
    with pytest.raises(ValueError, match=r"digits.npz: not a readable .npz archive \(Object"):
        MNISTDataModule(path=str(tmp_path / "digits.npz"))
    ragged = {"train": [np.zeros((2, 2, 1)), np.zeros((3, 3, 1))], "test": []}
    (tmp_path / "ragged.pkl").write_bytes(pickle.dumps(ragged))
    with pytest.raises(ValueError, match="ragged.pkl: 'train' is not an array of numbers"):
        MNISTDataModule(path=str(tmp_path / "ragged.pkl"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """A uint8 array in MNIST's idx format: big-endian magic, dimensions, bytes."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    path.write_bytes(struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes())


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_torchvision_files_are_one_line_naming_their_folder(damage, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 6), ("t10k", 3)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images_with_values(255, count)[..., 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count, dtype=np.uint8))
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(DAMAGES[damage](images.read_bytes()))
    datamodule = MNISTDataModule(root=str(tmp_path), download=False)
    with pytest.raises(OSError, match=f"MNIST files under {re.escape(str(tmp_path))} are "):
        datamodule.setup()


# 3. Densities that are not finite, real and non-negative


@pytest.mark.parametrize(
    "density,problem",
    [
        (np.full((3, 3), 1e308), "sum overflows to inf"),
        (np.ones((3, 3)) * (1 + 1j), "dtype complex128"),
        (np.array([["a", "b"], ["c", "d"]]), "dtype <U1"),
        (np.array([[np.nan, 1.0], [1.0, 1.0]]), "NaN or infinite values"),
        (np.array([[np.inf, 1.0], [1.0, 1.0]]), "NaN or infinite values"),
        (np.array([[-1.0, 1.0], [1.0, 1.0]]), "got negative values"),
        (np.zeros((3, 3)), "all zero"),
        (np.ones((1, 1)), r"shape \(1, 1\)"),
    ],
    ids=["overflow", "complex", "strings", "nan", "inf", "negative", "zeros", "1x1"],
)
def test_a_density_that_is_not_a_distribution_is_refused_naming_the_file(
    density, problem, tmp_path
):
    path = tmp_path / "density.npy"
    np.save(path, density)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: expected .*{problem}"):
        Toy2DDataModule(path=str(path))


@pytest.mark.parametrize("val_fraction", [-0.1, 1.0])
def test_toy_data_refuses_a_validation_share_outside_0_to_1(val_fraction):
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        Toy1DDataModule(val_fraction=val_fraction)


def test_a_validation_share_that_rounds_to_no_images_is_refused(tmp_path):
    full_range = images_with_values(255, count=12)
    path = save_arrays(tmp_path / "digits.npz", {"train": full_range, "test": full_range})
    datamodule = MNISTDataModule(path=str(path), val_fraction=0.01)
    with pytest.raises(ValueError, match="val_fraction=0.01 of 12 training images holds out none"):
        datamodule.setup("fit")


# 4. Texts too short for their splits or their context


@pytest.fixture
def text_of(tmp_path):
    """A function writing ``n`` characters of text to a file; its path."""

    def write(length: int, name: str = "text.txt") -> Path:
        path = tmp_path / name
        path.write_text(("the quick brown fox jumps over the lazy dog\n" * 100)[:length])
        return path

    return write


def test_a_text_shorter_than_the_context_is_one_line_through_the_command(
    text_of, tmp_path, monkeypatch, capsys
):
    path = text_of(50)
    monkeypatch.chdir(tmp_path)
    line = genlab_fails(monkeypatch, capsys, "fit", *TINY_CHAR_GPT, f"--data.init_args.path={path}")
    assert f"{path} (50 characters): the training split has 45 characters" in line
    assert "fewer than one window of context_length 64 needs (64 characters)" in line


@pytest.mark.parametrize(
    "arguments,message",
    [
        (
            dict(context_length=64),
            r"\(600 characters\): the validation split has 60 characters, fewer than one window "
            r"of context_length 64 needs \(63 characters and <eos>\); use a longer text, a "
            r"larger val_fraction or a smaller context_length",
        ),
        (
            dict(context_length=64, val_fraction=0.2, test_fraction=0.05),
            r"the test split has 30 characters, fewer than one window of context_length 64 "
            r"needs \(63 characters and <eos>\)",
        ),
        (
            dict(context_length=16, test_fraction=0.0001),
            "test_fraction 0.0001 of 600 characters leaves the test split empty",
        ),
    ],
    ids=["validation", "test", "empty test"],
)
def test_a_split_too_short_for_one_window_is_refused_before_training(arguments, message, text_of):
    with pytest.raises(ValueError, match=message):
        TextDataModule(str(text_of(600)), **arguments).setup("fit")


POEMS = "roses are red\n\nviolets blue\n\nsugar is sweet\n\nand so are you"
POEM_CHARACTERS = "".join(sorted(set(POEMS)))


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(val_fraction=0.1), "val_fraction 0.1 of 4 documents leaves the validation split"),
        (
            dict(val_fraction=0.25, test_fraction=0.1),
            "test_fraction 0.1 of 4 documents leaves the test split empty",
        ),
        (
            dict(val_fraction=0.5, test_fraction=0.4),
            "val_fraction 0.5 and test_fraction 0.4 leave none of 4 documents for training",
        ),
    ],
)
def test_a_document_split_with_no_documents_is_refused(arguments, message, tmp_path):
    path = tmp_path / "poems.txt"
    path.write_text(POEMS)
    with pytest.raises(ValueError, match=f"poems.txt: {message}"):
        TextDataModule(str(path), example="document", vocabulary=POEM_CHARACTERS, **arguments)
