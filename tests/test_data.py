"""Image data modules: transforms, procedural shapes, MNIST sources, splits and loaders."""

import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser

from genlab.datamodules import (
    SHAPE_KINDS,
    InMemoryImages,
    MNISTDataModule,
    ShapesDataModule,
    binarize,
    colorize,
    generate_shapes,
    quantize,
    split_off_validation,
    transform_images,
)
from genlab.datamodules.images import SeedStream

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist_10k.npz"


def small_shapes(**kwargs) -> ShapesDataModule:
    """A set-up shapes module small enough for a fast test."""
    datamodule = ShapesDataModule(**{"num_train": 300, "num_test": 100, **kwargs})
    datamodule.setup()
    return datamodule


def digits(count: int, seed: int = 0) -> np.ndarray:
    """Random grayscale 'digits' [N,28,28] uint8 covering the whole 0..255 range."""
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in MNIST's idx format: big-endian magic, dimensions, bytes."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    path.write_bytes(struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes())


def write_array_file(path: Path, contents: dict) -> Path:
    """Write `contents` as a .npz or a pickled dict, by the path's suffix."""
    if path.suffix == ".npz":
        np.savez(path, **contents)
    else:
        path.write_bytes(pickle.dumps(contents))
    return path


def all_batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Every batch of a loader, concatenated."""
    images, labels = zip(*loader, strict=True)
    return torch.cat(images), torch.cat(labels)


# Transforms


def test_binarize_splits_at_half_intensity():
    pixels = np.array([0, 1, 127, 128, 200, 255], dtype=np.uint8)
    assert binarize(pixels).tolist() == [0, 0, 0, 1, 1, 1]
    assert binarize(pixels).dtype == np.uint8


def test_quantize_floors_onto_equal_bins():
    pixels = np.array([0, 63, 64, 127, 128, 191, 192, 255], dtype=np.uint8)
    assert quantize(pixels, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert quantize(pixels, 3).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    every_value = np.arange(256, dtype=np.uint8)
    assert np.array_equal(quantize(every_value, 2), binarize(every_value))
    assert np.array_equal(quantize(every_value, 256), every_value)


@pytest.mark.parametrize("num_levels", [1, 257])
def test_quantize_rejects_level_counts_uint8_cannot_hold(num_levels):
    with pytest.raises(ValueError, match="num_levels"):
        quantize(np.zeros(3, dtype=np.uint8), num_levels)


def test_colorize_paints_one_foreground_and_one_other_background_colour():
    binary = np.zeros((3, 4, 4, 1), dtype=np.uint8)
    binary[0, 1:3, 1:3] = 1
    binary[1, 0] = 1
    binary[2, :, 2] = 1
    colored = colorize(binary, num_levels=4, seed=7)
    assert colored.shape == (3, 4, 4, 3) and colored.dtype == np.uint8
    assert colored.max() <= 3
    for mask, image in zip(binary[..., 0].astype(bool), colored, strict=True):
        foreground = np.unique(image[mask], axis=0)
        background = np.unique(image[~mask], axis=0)
        assert len(foreground) == 1 and len(background) == 1
        assert not np.array_equal(foreground, background)


def test_colorize_gives_an_image_the_same_colours_alone_or_in_any_batch():
    binary = (np.random.default_rng(0).random((50, 5, 5, 1)) > 0.5).astype(np.uint8)
    batch = colorize(binary, seed=3)
    assert np.array_equal(colorize(binary[:10], seed=3), batch[:10])
    assert np.array_equal(colorize(binary[17:18], seed=3, indices=[17]), batch[17:18])
    assert not np.array_equal(colorize(binary, seed=4), batch)


def test_colorize_draws_from_every_colour_with_foreground_never_background():
    binary = np.zeros((3000, 2, 1, 1), dtype=np.uint8)
    binary[:, 0] = 1
    colored = colorize(binary, num_levels=4, seed=1)
    foreground, background = colored[:, 0, 0], colored[:, 1, 0]
    assert len(np.unique(foreground, axis=0)) == 64
    assert len(np.unique(background, axis=0)) == 64
    assert (foreground != background).any(axis=1).all()


def test_transform_images_quantizes_or_colours_and_moves_channels_first():
    raw = np.array([[0, 100], [130, 255]], dtype=np.uint8)[None, :, :, None]
    assert transform_images(raw, 2).tolist() == [[[[0, 0], [1, 1]]]]
    assert transform_images(raw, 4).tolist() == [[[[0, 1], [2, 3]]]]
    colored = transform_images(raw, 4, colored=True, color_seed=5)
    assert colored.shape == (1, 3, 2, 2)
    assert np.array_equal(colored, colorize(binarize(raw), 4, seed=5).transpose(0, 3, 1, 2))


def test_transform_images_quantizes_rgb_per_channel_and_refuses_to_recolour_it():
    rgb = np.array([[[[10, 100, 250]]]], dtype=np.uint8)
    assert transform_images(rgb, 4).ravel().tolist() == [0, 1, 3]
    with pytest.raises(ValueError, match="C = 1"):
        transform_images(rgb, 4, colored=True)


# Shapes


def test_shapes_properties_are_known_before_setup():
    binary, colored = ShapesDataModule(), ShapesDataModule(colored=True, image_size=16)
    assert (binary.image_shape, binary.num_levels, binary.name) == ((1, 20, 20), 2, "shapes")
    assert (colored.image_shape, colored.num_levels) == ((3, 16, 16), 4)
    assert colored.name == "colored_shapes"


@pytest.mark.parametrize("colored", [False, True])
def test_shapes_batches_have_the_declared_shape_dtype_and_range(colored):
    datamodule = small_shapes(colored=colored, batch_size=32)
    for loader in (datamodule.train_dataloader(), datamodule.test_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (32, *datamodule.image_shape) and images.dtype == torch.long
        assert labels.shape == (32,) and labels.dtype == torch.long
        assert images.min() >= 0 and images.max() == datamodule.num_levels - 1
        assert set(labels.tolist()) <= set(range(len(SHAPE_KINDS)))


def test_shapes_depend_only_on_the_seed_and_split():
    first, again, other = small_shapes(seed=1), small_shapes(seed=1), small_shapes(seed=2)
    assert torch.equal(first.train_set.images, again.train_set.images)
    assert torch.equal(first.test_set.labels, again.test_set.labels)
    assert not torch.equal(first.train_set.images, other.train_set.images)
    assert not torch.equal(first.train_set.images[:100], first.test_set.images)


def test_coloured_shapes_have_reproducible_colours_and_two_colours_per_image():
    first, again = small_shapes(colored=True, seed=1), small_shapes(colored=True, seed=1)
    assert torch.equal(first.test_set.images, again.test_set.images)
    for image in first.train_set.images:
        assert torch.unique(image.flatten(1), dim=1).shape[1] == 2


@pytest.mark.parametrize("size", [12, 20, 32])
def test_every_kind_occurs_and_every_shape_lies_inside_a_one_pixel_margin(size):
    raw, labels = generate_shapes(500, size, np.random.default_rng(0))
    masks = raw[..., 0] > 0
    assert set(labels.tolist()) == set(range(len(SHAPE_KINDS)))
    assert masks.sum(axis=(1, 2)).min() >= 9
    assert not (masks[:, 0].any() or masks[:, -1].any())
    assert not (masks[:, :, 0].any() or masks[:, :, -1].any())


def bounding_box(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def looks_like(kind: str, box: np.ndarray) -> bool:
    """Cheap geometric signatures of each kind, read off the shape's bounding box."""
    centre = box[box.shape[0] // 2, box.shape[1] // 2]
    corners = box[[0, 0, -1, -1], [0, -1, 0, -1]]
    signatures = {
        "rectangle": box.all(),
        "disc": centre and not corners.any() and 0.7 < box.mean() < 0.9,
        "triangle": 0.45 < box.mean() < 0.65 and corners.sum() in (1, 2),
        "cross": centre and not corners.any() and box.mean() < 0.7,
        "ring": not centre and not corners.any(),
    }
    return bool(signatures[kind])


def test_each_shape_kind_has_its_geometric_signature():
    raw, labels = generate_shapes(500, 20, np.random.default_rng(0))
    for mask, label in zip(raw[..., 0] > 0, labels, strict=True):
        assert looks_like(SHAPE_KINDS[label], bounding_box(mask)), SHAPE_KINDS[label]


# Splits and loaders


def test_validation_split_is_disjoint_complete_and_reproducible():
    dataset = InMemoryImages(torch.zeros(50, 1, 2, 2, dtype=torch.uint8), torch.arange(50))
    train, val = split_off_validation(dataset, 0.2, seed=3)
    assert (len(train), len(val)) == (40, 10)
    assert sorted(train.labels.tolist() + val.labels.tolist()) == list(range(50))
    assert torch.equal(split_off_validation(dataset, 0.2, seed=3)[1].labels, val.labels)
    assert not torch.equal(split_off_validation(dataset, 0.2, seed=4)[1].labels, val.labels)


def test_datamodule_carves_validation_from_train_and_leaves_test_whole():
    datamodule = small_shapes(val_fraction=0.25)
    assert (len(datamodule.train_set), len(datamodule.val_set)) == (225, 75)
    assert len(datamodule.test_set) == 100


def test_loaders_fetch_whole_batches_without_touching_single_items(monkeypatch):
    datamodule = small_shapes(batch_size=64)

    def fail_on_single_item(self, index):
        raise AssertionError("the loader fetched a single item")

    monkeypatch.setattr(InMemoryImages, "__getitem__", fail_on_single_item)
    images, labels = all_batches(datamodule.val_dataloader())
    assert torch.equal(images, datamodule.val_set.images.long())
    assert torch.equal(labels, datamodule.val_set.labels)
    shuffled, _ = all_batches(datamodule.train_dataloader())
    assert shuffled.shape == (270, 1, 20, 20)


def test_predict_dataloader_yields_the_requested_sample_indices():
    datamodule = ShapesDataModule(predict_samples=10, batch_size=4)
    batches = list(datamodule.predict_dataloader())
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert torch.equal(torch.cat(batches), torch.arange(10))
    assert batches[0].dtype == torch.long


def test_hyperparameters_and_cli_arguments_cover_base_and_subclass():
    datamodule = ShapesDataModule(colored=True, batch_size=7)
    assert datamodule.hparams.colored and datamodule.hparams.batch_size == 7
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(MNISTDataModule, "data")
    config = parser.parse_args(["--data.seed", "3", "--data.num_levels", "4"])
    assert (config.data.seed, config.data.num_levels, config.data.download) == (3, 4, True)


@pytest.mark.parametrize(
    "arguments", [{"batch_size": 0}, {"val_fraction": 1.0}, {"seed": -1}, {"image_size": 8}]
)
def test_bad_shapes_arguments_are_rejected_by_name(arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        ShapesDataModule(**arguments)


# MNIST


@pytest.fixture
def torchvision_root(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """A fake torchvision MNIST folder with 10 train and 4 test images, and what it holds."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    written = {
        "train": digits(10, seed=1),
        "train_labels": np.arange(10, dtype=np.uint8),
        "test": digits(4, seed=2),
        "test_labels": np.array([7, 2, 1, 0], dtype=np.uint8),
    }
    write_idx(raw / "train-images-idx3-ubyte", written["train"])
    write_idx(raw / "train-labels-idx1-ubyte", written["train_labels"])
    write_idx(raw / "t10k-images-idx3-ubyte", written["test"])
    write_idx(raw / "t10k-labels-idx1-ubyte", written["test_labels"])
    return tmp_path, written


@pytest.mark.parametrize(("num_levels", "colored"), [(2, False), (16, False), (4, True)])
def test_torchvision_mnist_feeds_the_pipeline(torchvision_root, num_levels, colored):
    root, written = torchvision_root
    datamodule = MNISTDataModule(
        root=str(root), download=False, num_levels=num_levels, colored=colored, val_fraction=0.2
    )
    datamodule.setup()
    expected_test = transform_images(
        written["test"][..., None], num_levels, colored, color_seed=[0, SeedStream.TEST_COLORS]
    )
    images, labels = all_batches(datamodule.test_dataloader())
    assert images.shape == (4, *datamodule.image_shape) and images.dtype == torch.long
    assert torch.equal(images, torch.from_numpy(expected_test).long())
    assert labels.tolist() == [7, 2, 1, 0]
    train_labels = datamodule.train_set.labels.tolist() + datamodule.val_set.labels.tolist()
    assert sorted(train_labels) == list(range(10))


def test_torchvision_mnist_present_on_disk_is_not_downloaded(torchvision_root, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", no_network)
    datamodule = MNISTDataModule(root=str(torchvision_root[0]), download=True)
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.train_set) + len(datamodule.val_set) == 10


def test_mnist_properties_are_known_before_setup():
    assert MNISTDataModule(download=False).image_shape == (1, 28, 28)
    gray16 = MNISTDataModule(num_levels=16)
    assert (gray16.num_levels, gray16.name) == (16, "mnist_16levels")
    colored = MNISTDataModule(colored=True, num_levels=4)
    assert (colored.image_shape, colored.name) == ((3, 28, 28), "colored_mnist")


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_array_file_feeds_the_pipeline_with_its_labels(tmp_path, suffix):
    train, test = digits(20, seed=3)[..., None], digits(5, seed=4)[..., None]
    path = write_array_file(
        tmp_path / f"mnist{suffix}",
        {"train": train, "test": test, "train_labels": np.arange(20) % 10},
    )
    datamodule = MNISTDataModule(path=str(path), num_levels=4, seed=2)
    assert datamodule.image_shape == (1, 28, 28)
    datamodule.setup()
    images, labels = all_batches(datamodule.test_dataloader())
    assert torch.equal(images, torch.from_numpy(transform_images(test, 4)).long())
    assert labels.tolist() == [-1] * 5
    expected = InMemoryImages.from_numpy(transform_images(train, 4), np.arange(20) % 10)
    expected_train, expected_val = split_off_validation(expected, 0.1, seed=2)
    assert torch.equal(datamodule.train_set.images, expected_train.images)
    assert torch.equal(datamodule.val_set.labels, expected_val.labels)


def test_rgb_array_file_is_quantized_per_channel(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 9, 3), dtype=np.uint8)
    path = write_array_file(tmp_path / "rgb.npz", {"train": rgb, "test": rgb[:2]})
    datamodule = MNISTDataModule(path=str(path), num_levels=4)
    assert datamodule.image_shape == (3, 8, 9)
    datamodule.setup()
    assert torch.equal(
        datamodule.test_set.images, torch.from_numpy(quantize(rgb[:2], 4)).permute(0, 3, 1, 2)
    )


def good_contents() -> dict[str, np.ndarray]:
    return {"train": np.zeros((4, 6, 6, 1), np.uint8), "test": np.zeros((2, 6, 6, 1), np.uint8)}


BAD_ARRAY_FILES = {
    "missing": ("absent.npz", None, FileNotFoundError, "expected a .npz or .pkl"),
    "extension": ("mnist.txt", "not arrays", ValueError, "expected a .npz or .pkl"),
    "not a dict": ("mnist.pkl", [1, 2], ValueError, "expected a dict"),
    "no test": (
        "mnist.npz",
        {"train": good_contents()["train"]},
        ValueError,
        "no 'test' array (keys found: ['train'])",
    ),
    "ndim": (
        "mnist.npz",
        {**good_contents(), "train": np.zeros((4, 6, 6), np.uint8)},
        ValueError,
        "expected [N,H,W,C]",
    ),
    "dtype": (
        "mnist.pkl",
        {**good_contents(), "test": np.zeros((2, 6, 6, 1), np.float32)},
        ValueError,
        "expected uint8",
    ),
    "channels": (
        "mnist.npz",
        {**good_contents(), "test": np.zeros((2, 6, 6, 2), np.uint8)},
        ValueError,
        "C = 1 (grayscale) or C = 3 (RGB)",
    ),
    "sizes differ": (
        "mnist.npz",
        {**good_contents(), "test": np.zeros((2, 7, 6, 1), np.uint8)},
        ValueError,
        "expected the same",
    ),
    "labels": (
        "mnist.npz",
        {**good_contents(), "train_labels": np.arange(3)},
        ValueError,
        "expected integers of shape (4,)",
    ),
}


@pytest.mark.parametrize("case", BAD_ARRAY_FILES)
def test_bad_array_file_names_itself_and_what_was_expected(tmp_path, case):
    name, contents, error, expected = BAD_ARRAY_FILES[case]
    path = tmp_path / name
    if isinstance(contents, str):
        path.write_text(contents)
    elif contents is not None:
        write_array_file(path, contents)
    with pytest.raises(error, match=f"{re.escape(str(path))}.*{re.escape(expected)}"):
        MNISTDataModule(path=str(path))


def test_rgb_array_file_cannot_be_coloured_again(tmp_path):
    contents = {"train": np.zeros((4, 6, 6, 3), np.uint8), "test": np.zeros((2, 6, 6, 3), np.uint8)}
    path = write_array_file(tmp_path / "rgb.npz", contents)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}.*colored=False"):
        MNISTDataModule(path=str(path), colored=True, num_levels=4)


@pytest.mark.parametrize("num_levels", [1, 257])
def test_mnist_rejects_level_counts_outside_2_to_256(num_levels):
    with pytest.raises(ValueError, match="num_levels"):
        MNISTDataModule(num_levels=num_levels)


@pytest.mark.skipif(not REAL_MNIST.is_file(), reason=f"{REAL_MNIST} not present")
def test_real_mnist_array_file_gives_coloured_digits():
    datamodule = MNISTDataModule(path=str(REAL_MNIST), colored=True, num_levels=4)
    datamodule.setup()
    assert (len(datamodule.train_set), len(datamodule.val_set)) == (8100, 900)
    images, labels = next(iter(datamodule.test_dataloader()))
    assert images.shape == (128, 3, 28, 28) and images.max() <= 3
    assert set(labels.tolist()) == set(range(10))
