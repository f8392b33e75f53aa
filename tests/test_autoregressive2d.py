"""2D data and p(x1) p(x2 | x1): normalisation, the entropy floor, density files."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from genlab.datamodules import Toy2DDataModule
from genlab.lightning_modules import Autoregressive2D


@pytest.mark.parametrize("encoding", ["one_hot", "scalar"])
def test_probabilities_over_the_whole_grid_sum_to_one(encoding):
    torch.manual_seed(0)
    model = Autoregressive2D(num_bins=7, hidden_units=16, x1_encoding=encoding)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
        grid = torch.cartesian_prod(torch.arange(7), torch.arange(7))
        total = model.log_prob(grid).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_samples_follow_the_model_exactly():
    torch.manual_seed(1)
    model = Autoregressive2D(num_bins=4, hidden_units=8)
    with torch.no_grad():
        model.x1_logits.copy_(torch.randn(4))
        grid = torch.cartesian_prod(torch.arange(4), torch.arange(4))
        pmf = model.log_prob(grid).exp()
    samples = model.sample(50_000, generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(samples[:, 0] * 4 + samples[:, 1], minlength=16) / 50_000
    assert (frequencies - pmf).abs().max() < 0.01


def test_test_nll_is_never_below_the_entropy_floor_and_learns():
    datamodule = Toy2DDataModule(num_bins=12, num_samples=20_000, seed=3)
    datamodule.setup()
    model = Autoregressive2D(num_bins=12, hidden_units=32)
    trainer = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    test = datamodule.splits["test"]
    with torch.no_grad():
        nll = -model.log_prob(test).mean().item()
    density = torch.from_numpy(datamodule.density)
    true_nll = -density[test[:, 0], test[:, 1]].log()
    noise = true_nll.std().item() / math.sqrt(len(test))
    assert nll >= true_nll.mean().item() - 4 * noise
    assert nll < datamodule.entropy() + 0.3, "the model did not learn"


def test_density_from_npy_and_image_files(tmp_path):
    density = np.arange(36, dtype=np.float64).reshape(6, 6)
    np.save(tmp_path / "d.npy", density)
    from_array = Toy2DDataModule(path=str(tmp_path / "d.npy"), num_samples=100)
    assert from_array.num_bins == 6
    assert np.allclose(from_array.density, density / density.sum())
    Image.fromarray(np.full((30, 30), 200, dtype=np.uint8)).save(tmp_path / "flat.png")
    from_image = Toy2DDataModule(path=str(tmp_path / "flat.png"), num_bins=10)
    assert from_image.num_bins == 10 and np.allclose(from_image.density, 0.01)
    assert from_image.entropy() == pytest.approx(math.log(100))


def test_bad_density_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        Toy2DDataModule(path=str(tmp_path / "missing.npy"))
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(ValueError, match=r"flat.npy: expected a square \[d, d\] array"):
        Toy2DDataModule(path=str(tmp_path / "flat.npy"))
    np.save(tmp_path / "negative.npy", -np.ones((3, 3)))
    with pytest.raises(ValueError, match="negative.npy: expected finite non-negative"):
        Toy2DDataModule(path=str(tmp_path / "negative.npy"))
    with pytest.raises(ValueError, match=r"shape \[B, 2\]"):
        Autoregressive2D(num_bins=3).log_prob(torch.zeros(2, 3, dtype=torch.long))
