"""iGPT: pixel tokens, exact likelihoods, cached against uncached sampling, the schedule."""

from __future__ import annotations

import itertools
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from genlab.analysis import decoding_step_seconds
from genlab.lightning_modules import IGPT
from genlab.lightning_modules.base import warmup_cosine


def tiny_igpt(image_shape=(1, 3, 3), num_levels=2):
    torch.manual_seed(0)
    return IGPT(image_shape, num_levels, width=16, num_heads=2, num_layers=2).eval()


def images(shape, num_levels, count=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_levels, (count, *shape), generator=generator)


def test_colour_pixels_are_one_token_each_and_round_trip():
    model = tiny_igpt((3, 2, 3), 4)
    x = images((3, 2, 3), 4)
    tokens = model.to_tokens(x)
    assert tokens.shape == (5, 6) and tokens.max() < 64
    assert tokens[0, 4] == x[0, 0, 1, 1] * 16 + x[0, 1, 1, 1] * 4 + x[0, 2, 1, 1]
    assert torch.equal(model.to_images(tokens), x)
    assert model.gpt.config.vocab_size == 64


def test_log_prob_is_the_product_of_next_token_softmaxes():
    model = tiny_igpt((3, 2, 2), 2)
    x = images((3, 2, 2), 2)
    with torch.no_grad():
        logits = model(x)
        log_prob = model.log_prob(x)
    tokens = model.to_tokens(x)
    for b in range(5):
        by_hand = 0.0
        for t in range(4):
            weights = [math.exp(v) for v in logits[b, t].tolist()]
            by_hand += math.log(weights[int(tokens[b, t])] / sum(weights))
        assert log_prob[b].item() == pytest.approx(by_hand, abs=1e-4)


@pytest.mark.parametrize("shape,levels", [((1, 4, 4), 2), ((3, 3, 3), 4)])
def test_cached_and_uncached_sampling_give_identical_images(shape, levels):
    model = tiny_igpt(shape, levels)
    cached = model.sample(6, generator=torch.Generator().manual_seed(3), use_cache=True)
    uncached = model.sample(6, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(cached, uncached)
    assert cached.shape == (6, *shape) and cached.max() < levels
    assert cached.unique().numel() > 1


def test_samples_follow_the_model_distribution_exactly():
    model = tiny_igpt((1, 2, 2), 2)
    every_image = torch.tensor(list(itertools.product([0, 1], repeat=4))).view(-1, 1, 2, 2)
    with torch.no_grad():
        probabilities = model.log_prob(every_image).exp()
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    codes = (samples.flatten(1) * torch.tensor([8, 4, 2, 1])).sum(1)
    frequencies = torch.bincount(codes, minlength=16).float() / len(samples)
    assert (frequencies - probabilities).abs().max() < 0.015


def test_colour_validation_reports_nats_per_token_as_three_subpixels():
    model = tiny_igpt((3, 2, 2), 4)
    x = images((3, 2, 2), 4, count=8)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(model, DataLoader(TensorDataset(x, torch.zeros(8)), batch_size=3))
    metrics = metrics[0]
    assert metrics["val/nats_per_token"] == pytest.approx(3 * metrics["val/nats_per_dim"], rel=1e-5)
    with torch.no_grad():
        expected = (-model.log_prob(x) / 12).mean().item()
    assert metrics["val/nats_per_dim"] == pytest.approx(expected, rel=1e-5)


def test_warmup_then_cosine_decay():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0, abs=1e-12)


def test_bad_images_and_shapes_are_named():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        IGPT((2, 4, 4), 2)
    with pytest.raises(ValueError, match="0..1"):
        tiny_igpt().log_prob(torch.full((1, 1, 3, 3), 2))


def test_step_times_cover_every_token():
    model = tiny_igpt((1, 8, 8), 2)
    cached = decoding_step_seconds(model, 4, True, torch.Generator().manual_seed(0))
    uncached = decoding_step_seconds(model, 4, False, torch.Generator().manual_seed(0))
    assert len(cached) == len(uncached) == 64
    assert all(seconds > 0 for seconds in cached + uncached)
