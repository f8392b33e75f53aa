"""VAE: the closed-form KL, the categorical likelihood, the ELBO against the
importance-weighted estimate and an exact marginal, the reparameterised gradient,
sampling, bad input, and the configs through the ``genlab`` command with a reload."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genlab.callbacks.latent_manifold import normal_quantile_grid
from genlab.cli import run_cli
from genlab.lightning_modules.base import data_of
from genlab.lightning_modules.vae import VAE
from genlab.nn.distributions import categorical_log_prob
from genlab.nn.latent import DiagonalGaussian, standard_normal_log_prob

REPO = Path(__file__).resolve().parents[1]
TINY = dict(hidden_channels=4, test_iw_samples=5)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_closed_form_kl_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    posterior = DiagonalGaussian(torch.randn(3, 4), torch.randn(3, 4))
    z = posterior.rsample(200_000, generator=seeded(1))
    monte_carlo = (posterior.log_prob(z) - standard_normal_log_prob(z)).mean(0)
    assert torch.allclose(posterior.kl_to_standard_normal(), monte_carlo, rtol=0.02, atol=0.02)


def test_the_log_density_is_the_product_of_univariate_normals():
    mean, log_var = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.7]])
    z = torch.tensor([[1.0, 0.3]])
    expected = torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(z).sum(-1)
    assert torch.allclose(DiagonalGaussian(mean, log_var).log_prob(z), expected)


def test_a_uniform_binary_decoder_scores_exactly_one_bit_per_dim():
    model = VAE(image_shape=(1, 8, 8), num_levels=2, latent_dim=3, **TINY)
    last = model.decoder.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x = torch.randint(0, 2, (5, 1, 8, 8))
    recon, _ = model.terms_per_dim(x)
    assert torch.equal(recon / math.log(2), torch.ones(5))
    assert categorical_log_prob(torch.zeros(2, 3, 16, 4, 4), torch.zeros(2, 3, 4, 4).long(), 2)[
        0
    ].item() == pytest.approx(-48 * math.log(16))


@pytest.fixture(scope="module")
def trained_1d_vae() -> tuple[VAE, torch.Tensor]:
    """A VAE with a one-dimensional code, fitted for a few hundred steps on four 4x4
    binary patterns, so that its exact marginal can be integrated on a grid."""
    torch.manual_seed(0)
    patterns = torch.randint(0, 2, (4, 1, 4, 4))
    model = VAE(image_shape=(1, 4, 4), num_levels=2, latent_dim=1, hidden_channels=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = -model.elbo(patterns.repeat(8, 1, 1, 1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), patterns


def exact_log_marginal(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """``log p(x) = log integral p(x|z) N(z) dz`` by the rectangle rule on [-8, 8]."""
    z = torch.linspace(-8, 8, 4001).unsqueeze(1)
    with torch.no_grad():
        logits = model.decoder(z)
    joint = torch.stack(
        [categorical_log_prob(logits, image.expand(len(z), -1, -1, -1), 2) for image in x]
    ) + standard_normal_log_prob(z)
    return torch.logsumexp(joint, dim=1) + math.log(16 / 4000)


def test_elbo_lies_below_the_iw_estimate_which_rises_with_k_towards_log_p(trained_1d_vae):
    model, x = trained_1d_vae
    x = x.repeat(100, 1, 1, 1)
    with torch.no_grad():
        elbo = model.elbo(x, generator=seeded(0)).mean()
        iw = {k: model.log_prob_iw(x, k, generator=seeded(k)).mean() for k in (10, 500)}
    exact = exact_log_marginal(model, x[:4]).mean()
    # measured: ELBO -2.69, IW -2.53 (k = 10) and -2.505 (k = 500), exact -2.501
    assert elbo + 0.1 < iw[10] < iw[500] - 0.01
    assert iw[500] <= exact + 1e-3
    assert iw[500] == pytest.approx(float(exact), abs=0.02)


def test_gradients_reach_the_encoder_through_the_reparameterisation():
    torch.manual_seed(0)
    model = VAE(image_shape=(1, 8, 8), num_levels=4, latent_dim=3, **TINY)
    recon, _ = model.elbo_terms(torch.randint(0, 4, (4, 1, 8, 8)))
    recon.mean().backward()
    for name, parameter in model.encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_samples_are_images_like_the_data_and_follow_the_generator():
    model = VAE(image_shape=(1, 8, 8), num_levels=4, latent_dim=3, **TINY)
    first = model.sample(6, generator=seeded(3))
    assert first.shape == (6, 1, 8, 8) and first.dtype == torch.long
    assert first.min() >= 0 and first.max() <= 3
    assert torch.equal(first, model.sample(6, generator=seeded(3)))
    z = torch.randn(6, 3, generator=seeded(3))
    assert torch.equal(first, model.decoder(z).argmax(2))
    drawn = model.sample(6, generator=seeded(3), levels="sampled")
    assert drawn.shape == first.shape and not torch.equal(drawn, first)
    assert model.reconstruct(first).shape == first.shape
    assert model.encode(first).shape == (6, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(latent_dim=0), "latent_dim must be at least 1, got 0"),
        (dict(sample_levels="mean"), "sample_levels must be one of"),
        (dict(test_iw_samples=-1), "test_iw_samples"),
        (dict(image_shape=(1, 10, 10)), r"divisible by 4.*\(1, 10, 10\)"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAE(**{"image_shape": (1, 8, 8), "num_levels": 4, **kwargs})


def test_bad_images_and_log_prob_are_refused_with_reasons():
    model = VAE(image_shape=(1, 8, 8), num_levels=4, latent_dim=2, **TINY)
    with pytest.raises(ValueError, match=r"shape \[B, 1, 8, 8\]"):
        model.elbo(torch.zeros(2, 1, 4, 4).long())
    with pytest.raises(ValueError, match="values in 0..3"):
        model.elbo(torch.full((2, 1, 8, 8), 4))
    with pytest.raises(ValueError, match="num_samples must be at least 1"):
        model.log_prob_iw(torch.zeros(2, 1, 8, 8).long(), 0)
    with pytest.raises(NotImplementedError, match="elbo"):
        model.log_prob(torch.zeros(2, 1, 8, 8).long())


def test_the_manifold_grid_sits_at_normal_quantiles_with_high_z2_on_top():
    grid = normal_quantile_grid(3)
    quantile = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(5 / 6)).item()
    assert grid.shape == (9, 2)
    assert grid[0].tolist() == pytest.approx([-quantile, quantile])
    assert grid[4].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert grid[8].tolist() == pytest.approx([quantile, -quantile])


def tiny_run_args(config: str, path: Path) -> list[str]:
    return [
        f"--config={REPO}/configs/vae/{config}.yaml",
        f"--data.init_args.path={path}",
        "--data.init_args.batch_size=8",
        *[f"--model.init_args.{name}={value}" for name, value in TINY.items()],
        "--trainer.accelerator=cpu",
    ]


def test_the_config_fits_tests_and_reloads_with_the_same_elbo(digits_file):
    args = tiny_run_args("mnist", digits_file)
    fit = run_cli(["fit", *args, "--trainer.max_epochs=1"])
    run = Path(fit.trainer.log_dir)
    assert run.parts[:3] == ("runs", "vae", "mnist_16levels")
    assert fit.model.image_shape == (1, 28, 28) and fit.model.num_levels == 16
    for name in ["checkpoints/best.ckpt", "samples/epoch_000.png", "samples.png"]:
        assert (run / name).is_file(), name
    assert {"val/kl_nats_per_dim", "train/bits_per_dim"} <= set(fit.trainer.callback_metrics)

    last = run / "checkpoints" / "last.ckpt"
    run_cli(["test", *args, f"--ckpt_path={last}"])
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["test/nats_per_dim"] == pytest.approx(
        metrics["test/recon_nats_per_dim"] + metrics["test/kl_nats_per_dim"]
    )
    assert metrics["test/bits_per_dim"] == pytest.approx(metrics["test/nats_per_dim"] / math.log(2))
    assert metrics["test/iw_bits_per_dim"] == pytest.approx(
        metrics["test/iw_nats_per_dim"] / math.log(2)
    )
    assert 0 < metrics["test/iw_nats_per_dim"] < metrics["test/nats_per_dim"]

    restored = VAE.load_from_checkpoint(last).eval()
    x = data_of(next(iter(fit.datamodule.test_dataloader())))
    with torch.no_grad():
        expected = fit.model.eval().elbo(x, generator=seeded(0))
        assert torch.allclose(restored.elbo(x, generator=seeded(0)), expected, atol=1e-5)


def test_the_2d_config_draws_the_manifold_and_the_codes(digits_file):
    fit = run_cli(["fit", *tiny_run_args("mnist_2d", digits_file), "--trainer.max_epochs=1"])
    run = Path(fit.trainer.log_dir)
    for name in ["manifold/epoch_000.png", "manifold.png", "codes/epoch_000.png", "codes.png"]:
        assert (run / name).is_file(), name
