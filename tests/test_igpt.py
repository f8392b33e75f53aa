"""iGPT: pixel tokens, exact likelihoods, cached against uncached sampling, the schedule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from sampling_checks import assert_samples_follow_the_model, record_step_logits
from torch.utils.data import DataLoader, TensorDataset

from genlab.analysis import decoding_step_seconds, timing
from genlab.lightning_modules import IGPT
from genlab.lightning_modules.base import warmup_cosine


def tiny_igpt(image_shape=(1, 3, 3), num_levels=2, perturbation=0.0):
    """A small model, its weights moved off their initialisation by ``perturbation``
    standard deviations."""
    torch.manual_seed(0)
    model = IGPT(image_shape, num_levels, width=16, num_heads=2, num_layers=2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(perturbation * torch.randn_like(parameter))
    return model.eval()


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
def test_each_cached_step_draws_from_the_full_pass_logits_and_both_paths_agree(
    shape, levels, monkeypatch
):
    model = tiny_igpt(shape, levels)
    steps = record_step_logits(model.gpt, monkeypatch)
    cached = model.sample(6, generator=torch.Generator().manual_seed(3), use_cache=True)
    step_logits = torch.stack(steps, dim=1)
    with torch.no_grad():
        full = model(cached)
    assert step_logits.shape == full.shape == (6, shape[1] * shape[2], levels ** shape[0])
    assert (step_logits - full).abs().max() < 1e-5
    uncached = model.sample(6, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(cached, uncached)
    assert cached.shape == (6, *shape) and cached.max() < levels
    assert cached.unique().numel() > 1


def test_samples_follow_the_model_distribution_exactly():
    """Weights moved far enough that each pixel depends strongly on those before it, so a
    sampler that reads the wrong pixels, or draws at another temperature, shows."""
    model = tiny_igpt((1, 2, 3), 2, perturbation=0.5)
    samples = model.sample(30_000, generator=torch.Generator().manual_seed(0))
    assert_samples_follow_the_model(model, samples, 2)


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


def test_each_step_time_spans_the_one_pass_that_drew_its_token(monkeypatch):
    """A clock that reads the number of GPT passes made so far: with and without the
    cache, every token's time is one pass, from the first to the last."""
    model = tiny_igpt((1, 8, 8), 2)
    passes = record_step_logits(model.gpt, monkeypatch)
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: float(len(passes))))
    for use_cache in (True, False):
        seconds = decoding_step_seconds(model, 4, use_cache, torch.Generator().manual_seed(0))
        assert seconds == [1.0] * 64
