"""Token prior over a VQ-VAE: the token cache beside the checkpoint, exact likelihoods,
cached against uncached sampling, a tiny fit through the ``genlab`` command and its reload;
for code-grid tokens and for global colours (two colour tokens, then stroke codes)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from sampling_checks import record_step_logits

from genlab.cli import run_cli
from genlab.lightning_modules import VQVAE, VQPrior
from genlab.lightning_modules.vq_prior import image_key, token_cache, token_cache_path

REPO = Path(__file__).resolve().parents[1]
TINY_PRIOR = dict(width=16, num_heads=2, num_layers=1)


def tiny_prior(ckpt: Path) -> VQPrior:
    torch.manual_seed(0)
    return VQPrior(str(ckpt), **TINY_PRIOR).eval()


def test_cached_tokens_are_the_encoder_tokens_and_are_computed_once(vqvae_run, monkeypatch):
    _, ckpt = vqvae_run
    vqvae = VQVAE.load_from_checkpoint(ckpt).eval()
    images = torch.randint(0, 4, (5, 3, 28, 28), generator=torch.Generator().manual_seed(1))
    path = token_cache_path(ckpt, images)
    assert path.parent == ckpt.parent and path.name.startswith(f"{ckpt.name}.tokens.")
    assert token_cache_path(ckpt, images[:4]) != path, "another data set, another file"

    tokens = token_cache(vqvae, images, ckpt, batch_size=2)
    assert path.is_file()
    assert tokens.dtype == torch.long and torch.equal(tokens, vqvae.encode(images))

    def fail(images):
        raise AssertionError("encode called although the tokens are cached")

    monkeypatch.setattr(vqvae, "encode", fail)
    assert torch.equal(token_cache(vqvae, images, ckpt), tokens)


def test_the_vqvae_is_frozen_and_the_metrics_count_subpixels_per_token(vqvae_run):
    _, ckpt = vqvae_run
    prior = tiny_prior(ckpt).train()
    assert not prior.vqvae.training and prior.gpt.training
    assert not any(p.requires_grad for p in prior.vqvae.parameters())
    assert prior.dims_per_token == 3 * 28 * 28 // 49 and prior.num_tokens == 49
    assert prior.gpt.config.vocab_size == 8 and prior.gpt.config.context_length == 50
    optimized = prior.configure_optimizers()["optimizer"].param_groups[0]["params"]
    assert {id(p) for p in optimized} == {id(p) for p in prior.gpt.parameters()}
    with pytest.raises(ValueError, match="num_levels"):
        VQPrior(str(ckpt), num_levels=2)


def test_log_prob_is_the_sum_of_next_token_log_softmaxes(vqvae_run):
    _, ckpt = vqvae_run
    prior = tiny_prior(ckpt)
    images = torch.randint(0, 4, (3, 3, 28, 28), generator=torch.Generator().manual_seed(2))
    tokens = prior.vqvae.encode(images).flatten(1)
    with torch.no_grad():
        logits = prior(tokens.view(3, 7, 7))
        log_prob = prior.log_prob(images)
    for b in range(3):
        by_hand = 0.0
        for t in range(49):
            weights = [math.exp(v) for v in logits[b, t].tolist()]
            by_hand += math.log(weights[int(tokens[b, t])] / sum(weights))
        assert log_prob[b].item() == pytest.approx(by_hand, abs=1e-4)
    nats_per_dim = prior.batch_nats((images, torch.zeros(3)))
    assert torch.allclose(nats_per_dim, -log_prob / (3 * 28 * 28))


def test_each_cached_step_draws_from_the_full_pass_logits_and_both_paths_agree(
    vqvae_run, monkeypatch
):
    _, ckpt = vqvae_run
    prior = tiny_prior(ckpt)
    steps = record_step_logits(prior.gpt, monkeypatch)
    tokens = prior.sample_tokens(4, generator=torch.Generator().manual_seed(3))
    step_logits = torch.stack(steps, dim=1)
    with torch.no_grad():
        full = prior(tokens)
    assert step_logits.shape == full.shape == (4, 49, 8)
    assert (step_logits - full).abs().max() < 1e-5
    assert tokens.shape == (4, 7, 7) and tokens.dtype == torch.long
    cached = prior.sample(4, generator=torch.Generator().manual_seed(3), use_cache=True)
    uncached = prior.sample(4, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(prior.vqvae.decode(tokens), cached)


def fit_tiny_prior(digits: Path, ckpt: Path):
    """``genlab fit`` of the colored-MNIST prior config, shrunk to ``TINY_PRIOR``, for one
    epoch over the VQ-VAE checkpoint ``ckpt`` and the array file ``digits``."""
    return run_cli(
        [
            "fit",
            f"--config={REPO}/configs/vq_prior/colored_mnist.yaml",
            f"--model.init_args.vqvae_checkpoint={ckpt}",
            f"--data.init_args.path={digits}",
            "--data.init_args.batch_size=8",
            *[f"--model.init_args.{name}={value}" for name, value in TINY_PRIOR.items()],
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=1",
            "--trainer.callbacks=[]",
        ]
    )


def reloaded_without_the_vqvae_file(fit, ckpt: Path) -> VQPrior:
    """The fit's ``last.ckpt`` loaded (in eval mode) while the VQ-VAE checkpoint is moved
    away, after checking that every weight came back unchanged."""
    moved = ckpt.with_name("moved.ckpt")
    ckpt.rename(moved)
    try:
        last = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
        restored = VQPrior.load_from_checkpoint(last).eval()
    finally:
        moved.rename(ckpt)
    for name, value in fit.model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name
    return restored


def test_the_config_fits_and_reloads_into_a_sampler_without_the_vqvae_file(
    vqvae_run, tmp_path, monkeypatch
):
    digits, ckpt = vqvae_run
    monkeypatch.chdir(tmp_path)
    fit = fit_tiny_prior(digits, ckpt)
    run = Path(fit.trainer.log_dir)
    assert run.parts[:3] == ("runs", "vq_prior", "colored_mnist")
    metrics = fit.trainer.callback_metrics
    per_token, per_dim = metrics["val/nats_per_token"], metrics["val/nats_per_dim"]
    assert per_token.item() == pytest.approx(48 * per_dim.item(), rel=1e-5)
    datamodule = fit.datamodule
    for split in (datamodule.train_set, datamodule.val_set):
        assert token_cache_path(ckpt, split.images).is_file()
    images, _ = next(iter(datamodule.train_dataloader()))
    expected = fit.model.vqvae.encode(images)
    monkeypatch.setattr(fit.model.vqvae, "encode", None)  # batches are looked up, not encoded
    assert torch.equal(fit.model.tokens_of(images), expected)

    restored = reloaded_without_the_vqvae_file(fit, ckpt)
    samples = restored.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 3, 28, 28) and samples.dtype == torch.long
    assert samples.min() >= 0 and samples.max() <= 3


def two_colour_images(count: int, seed: int) -> torch.Tensor:
    """Random strokes on a quarter of the pixels, painted with random colour pairs."""
    generator = torch.Generator().manual_seed(seed)
    strokes = torch.rand(count, 1, 28, 28, generator=generator) < 0.25
    colours = torch.randint(0, 4, (count, 2, 3, 1, 1), generator=generator)
    colours[:, 0, 0] = (colours[:, 1, 0] + 1) % 4  # foreground and background differ in red
    return torch.where(strokes, colours[:, 0], colours[:, 1])


def test_a_prior_over_global_colours_masks_each_position_to_colours_or_codes(global_vqvae_run):
    _, ckpt = global_vqvae_run
    prior = tiny_prior(ckpt)
    assert prior.num_tokens == 51 and prior.gpt.config.vocab_size == 8 + 64
    assert prior.gpt.config.context_length == 52
    assert prior.dims_per_token == pytest.approx(3 * 28 * 28 / 51)
    images = two_colour_images(3, seed=1)
    tokens = prior.vqvae.encode(images)
    with torch.no_grad():
        prior.gpt.head.bias[8:] += 5.0  # the unmasked model favours colours everywhere
        logits = prior(tokens)
        log_prob = prior.log_prob(images)
    assert torch.isinf(logits[:, :2, :8]).all() and torch.isinf(logits[:, 2:, 8:]).all()
    assert torch.isfinite(logits[:, :2, 8:]).all() and torch.isfinite(logits[:, 2:, :8]).all()
    for b in range(3):
        by_hand = 0.0
        for t in range(51):
            allowed = range(8, 72) if t < 2 else range(8)
            weights = {i: math.exp(logits[b, t, i].item()) for i in allowed}
            by_hand += math.log(weights[int(tokens[b, t])] / sum(weights.values()))
        assert log_prob[b].item() == pytest.approx(by_hand, abs=1e-4)


def test_global_colour_samples_draw_colours_then_codes_alike_with_and_without_cache(
    global_vqvae_run, monkeypatch
):
    _, ckpt = global_vqvae_run
    prior = tiny_prior(ckpt)
    with torch.no_grad():
        prior.gpt.head.bias[8:] += 30.0  # only the mask keeps colours out of the grid
        prior.gpt.head.bias[8 + 5] += 30.0  # and colour 5 would be drawn every time
    steps = record_step_logits(prior.gpt, monkeypatch)
    tokens = prior.sample_tokens(4, generator=torch.Generator().manual_seed(3))
    step_logits = torch.stack(steps, dim=1)
    with torch.no_grad():
        full = prior(tokens)
    assert step_logits.shape == full.shape == (4, 51, 72)
    allowed = prior.allowed.expand_as(full)
    assert (step_logits[allowed] - full[allowed]).abs().max() < 1e-5
    assert tokens.shape == (4, 51) and (tokens[:, :2] == 8 + 5).all()
    assert (tokens[:, 2:] < 8).all()
    cached = prior.sample(4, generator=torch.Generator().manual_seed(3), use_cache=True)
    uncached = prior.sample(4, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(prior.vqvae.decode(tokens), cached)
    colour_five = torch.tensor([0, 1, 1])  # 5 = 0*16 + 1*4 + 1
    assert (cached == colour_five[:, None, None]).all(), "one colour on one colour"


def test_recoloured_digits_find_their_stroke_codes_in_the_cache(global_vqvae_run, monkeypatch):
    _, ckpt = global_vqvae_run
    vqvae = VQVAE.load_from_checkpoint(ckpt).eval()
    images = two_colour_images(5, seed=4)
    grids = token_cache(vqvae, images, ckpt, batch_size=2)
    assert token_cache_path(ckpt, images).is_file()
    assert grids.shape == (5, 7, 7) and torch.equal(grids.flatten(1), vqvae.encode(images)[:, 2:])
    prior = tiny_prior(ckpt)
    prior._cached_tokens.update(
        zip(map(image_key, prior.vqvae.encoder_input(images)), grids, strict=True)
    )
    repainted = images.clone()
    repainted[:, 2] = 3 - repainted[:, 2]  # new colours, same strokes
    expected = prior.vqvae.encode(repainted)
    monkeypatch.setattr(prior.vqvae, "encode", None)  # found in the cache, not encoded
    monkeypatch.setattr(prior.vqvae, "code_grid", None)
    assert torch.equal(prior.tokens_of(repainted), expected)
    assert not torch.equal(expected[:, :2], vqvae.encode(images)[:, :2])


def test_a_global_colour_prior_fits_and_reloads_without_the_vqvae_file(
    global_vqvae_run, tmp_path, monkeypatch
):
    digits, ckpt = global_vqvae_run
    monkeypatch.chdir(tmp_path)
    fit = fit_tiny_prior(digits, ckpt)
    metrics = fit.trainer.callback_metrics
    per_token, per_dim = metrics["val/nats_per_token"], metrics["val/nats_per_dim"]
    assert per_token.item() == pytest.approx(3 * 28 * 28 / 51 * per_dim.item(), rel=1e-5)
    restored = reloaded_without_the_vqvae_file(fit, ckpt)
    assert restored.vqvae.global_colors and not restored.vqvae.training
    samples = restored.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 3, 28, 28) and samples.dtype == torch.long
    for image in samples:  # every sample is a stroke of one colour on another
        assert len(image.flatten(1).T.unique(dim=0)) <= 2
