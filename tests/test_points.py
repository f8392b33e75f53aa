"""2D point clouds: reproducible from a seed, the right shapes and ranges, clear errors."""

from __future__ import annotations

import pytest
import torch

from genlab.datamodules import DATASETS, PointsDataModule
from genlab.datamodules.points import sector_of

SMALL = dict(num_train=300, num_val=50, num_test=80)


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_data_set_yields_float_points_and_labels_from_its_seed(dataset):
    data = PointsDataModule(dataset, **SMALL, batch_size=64)
    points, labels = next(iter(data.train_dataloader()))
    assert points.shape == (64, 2) and points.dtype == torch.float32
    assert labels.shape == (64,) and labels.dtype == torch.long
    assert [len(data.points(split)) for split in ("train", "val", "test")] == [300, 50, 80]
    again = PointsDataModule(dataset, **SMALL)
    assert torch.equal(data.points("test"), again.points("test"))
    other_seed = PointsDataModule(dataset, **SMALL, seed=1)
    assert not torch.equal(data.points("test"), other_seed.points("test"))
    assert not torch.equal(data.points("train")[:50], data.points("val"))
    assert data.points("train").abs().max() < 4


def test_the_test_split_does_not_depend_on_the_number_of_training_points():
    small = PointsDataModule("moons", num_train=100, num_test=40)
    large = PointsDataModule("moons", num_train=5000, num_test=40)
    assert torch.equal(small.points("test"), large.points("test"))


def test_the_square_is_uniform_and_only_its_class_split_has_labels():
    square = PointsDataModule("square", num_train=20_000)
    points = square.points("train")
    assert points.min() >= -1 and points.max() <= 1
    assert points.mean(0).abs().max() < 0.02 and (points.var(0) - 1 / 3).abs().max() < 0.01
    assert (square.labels("train") == -1).all() and square.num_classes == 0
    classes = PointsDataModule("square_classes", num_train=20_000, num_regions=4)
    labels = classes.labels("train")
    assert classes.num_classes == 4
    assert torch.equal(labels, sector_of(classes.points("train"), 4))
    quadrant_0 = (classes.points("train") > 0).all(dim=1)
    assert torch.equal(labels == 0, quadrant_0)
    assert (torch.bincount(labels, minlength=4) / 20_000 - 0.25).abs().max() < 0.015


def test_sectors_turn_anticlockwise_from_the_x_axis():
    points = torch.tensor([[1.0, 0.1], [-0.1, 1.0], [-1.0, -0.1], [0.1, -1.0]])
    assert sector_of(points, 4).tolist() == [0, 1, 2, 3]
    assert sector_of(points, 2).tolist() == [0, 0, 1, 1]


def test_the_gaussian_set_has_its_stated_mean_and_covariance():
    mean, covariance = [1.0, -2.0], [[0.5, -0.2], [-0.2, 0.3]]
    data = PointsDataModule("gaussian", num_train=40_000, mean=mean, covariance=covariance)
    points = data.points("train").double()
    assert torch.equal(data.mean, torch.tensor(mean, dtype=torch.float64))
    assert torch.allclose(points.mean(0), data.mean, atol=0.015)
    assert torch.allclose(torch.cov(points.T), data.covariance, atol=0.015)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown dataset 'spiral'.*square, square_classes"):
        PointsDataModule("spiral")
    for name in ("num_train", "num_val", "num_test", "batch_size"):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer, got 0"):
            PointsDataModule("square", **{name: 0})
    with pytest.raises(ValueError, match="noise must be >= 0"):
        PointsDataModule("moons", noise=-0.1)
    with pytest.raises(ValueError, match="num_regions must be >= 2"):
        PointsDataModule("square_classes", num_regions=1)
    with pytest.raises(ValueError, match="symmetric positive definite"):
        PointsDataModule("gaussian", covariance=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match=r"mean of shape \[2\]"):
        PointsDataModule("gaussian", mean=[0.0, 0.0, 0.0])
