"""1D data and models: exact reference distribution, normalisation, maximum likelihood,
and test NLL never below the entropy floor."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch

from genlab.analysis import mean_nats_per_dim
from genlab.datamodules import PRESETS, Toy1DDataModule
from genlab.lightning_modules import Histogram, LogisticMixture
from genlab.nn.distributions import discretized_logistic_mixture_log_pmf


def fit(model, datamodule, epochs):
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    return model


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_pmf_is_exact_and_samples_follow_it(preset):
    distribution, _ = PRESETS[preset]
    pmf = distribution.pmf()
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12) and (pmf >= 0).all()
    samples = distribution.sample(200_000, np.random.default_rng(0))
    empirical = np.bincount(samples, minlength=distribution.num_bins) / len(samples)
    assert np.abs(empirical - pmf).max() < 0.005
    monte_carlo_entropy = -np.log(pmf[samples]).mean()
    assert distribution.entropy() == pytest.approx(monte_carlo_entropy, abs=0.02)


def test_data_split_is_80_20_with_validation_from_train_and_reproducible():
    first, again = Toy1DDataModule("course1"), Toy1DDataModule("course1")
    first.setup()
    again.setup()
    sizes = {name: len(split) for name, split in first.splits.items()}
    assert sizes == {"test": 200, "val": 80, "train": 720}
    assert all(torch.equal(first.splits[k], again.splits[k]) for k in sizes)
    assert first.num_bins == 20 and first.splits["train"].shape[1] == 1


@pytest.mark.parametrize("num_bins,components", [(2, 1), (20, 4), (100, 3)])
def test_logistic_mixture_probabilities_sum_to_one(num_bins, components):
    generator = torch.Generator().manual_seed(num_bins)
    for scale in (0.01, 1.0, 100.0):
        log_pmf = discretized_logistic_mixture_log_pmf(
            torch.randn(components, generator=generator),
            torch.randn(components, generator=generator) * num_bins,
            torch.full((components,), math.log(scale)),
            num_bins,
        )
        assert log_pmf.shape == (num_bins,)
        assert log_pmf.double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_logistic_mixture_matches_the_cdf_difference_by_hand():
    log_pmf = discretized_logistic_mixture_log_pmf(
        torch.tensor([0.0, math.log(3.0)]), torch.tensor([2.0, 6.0]), torch.tensor([0.0, 0.5]), 10
    )

    def sigmoid(v):
        return 1 / (1 + math.exp(-v))

    def component(k, mean, scale):
        upper = 1.0 if k == 9 else sigmoid((k + 0.5 - mean) / scale)
        lower = 0.0 if k == 0 else sigmoid((k - 0.5 - mean) / scale)
        return upper - lower

    for k in (0, 4, 9):
        by_hand = 0.25 * component(k, 2.0, 1.0) + 0.75 * component(k, 6.0, math.exp(0.5))
        assert log_pmf[k].exp().item() == pytest.approx(by_hand, rel=1e-5)


def test_histogram_learns_the_empirical_frequencies():
    torch.manual_seed(0)
    frequencies = torch.tensor([0.5, 0.1, 0.25, 0.0, 0.15])
    data = torch.repeat_interleave(torch.arange(5), (frequencies * 200).long()).unsqueeze(1)
    model = Histogram(num_bins=5, learning_rate=0.1)
    trainer = L.Trainer(
        max_epochs=300,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=200))
    learned = model.log_prob(torch.arange(5).unsqueeze(1)).exp().detach()
    assert torch.allclose(learned, frequencies, atol=0.01)


@pytest.mark.parametrize("model_class", [Histogram, LogisticMixture])
def test_test_nll_is_never_below_the_entropy_floor(model_class):
    datamodule = Toy1DDataModule("course1", seed=1)
    datamodule.setup()
    model = fit(model_class(num_bins=20, learning_rate=0.05), datamodule, epochs=30)
    test = datamodule.splits["test"]
    nll = mean_nats_per_dim(model, [test])
    pmf = torch.from_numpy(datamodule.distribution.pmf())
    true_nll = -pmf[test[:, 0]].log()
    floor, noise = true_nll.mean().item(), true_nll.std().item() / math.sqrt(len(test))
    assert nll >= floor - 4 * noise
    assert nll < datamodule.distribution.entropy() + 0.3, "the model did not learn"


def test_samples_have_the_data_layout_and_are_reproducible():
    model = LogisticMixture(num_bins=20)
    first = model.sample(50, generator=torch.Generator().manual_seed(0))
    again = model.sample(50, generator=torch.Generator().manual_seed(0))
    assert first.shape == (50, 1) and first.dtype == torch.long and torch.equal(first, again)
    assert first.min() >= 0 and first.max() < 20


def test_bad_data_names_what_was_expected():
    with pytest.raises(ValueError, match=r"shape \[B, 1\]"):
        Histogram(num_bins=5).log_prob(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="values in 0..4"):
        Histogram(num_bins=5).log_prob(torch.tensor([[5]]))
    with pytest.raises(ValueError, match="preset must be one of"):
        Toy1DDataModule("nope")
