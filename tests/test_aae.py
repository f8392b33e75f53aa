"""Adversarial autoencoder: what lambda lets the discriminator touch, which optimiser
each phase steps, that both kinds of encoder train, the MMD, bad input, and the 2D
config through the ``genlab`` command with a reload."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from genlab.cli import run_cli
from genlab.lightning_modules.aae import AAE
from genlab.lightning_modules.base import data_of
from genlab.nn.latent import rbf_mmd2

REPO = Path(__file__).resolve().parents[1]
TINY = dict(
    image_shape=(1, 8, 8),
    num_levels=2,
    latent_dim=2,
    hidden_channels=4,
    discriminator_hidden_units=8,
    discriminator_layers=1,
)


def patterns(count: int = 32) -> torch.Tensor:
    """``count`` binary 8x8 images, repeats of four fixed random patterns."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 2, (4, 1, 8, 8), generator=generator).repeat(count // 4, 1, 1, 1)


def fit(model: AAE, steps: int, callbacks: list | None = None) -> L.Trainer:
    """Train ``model`` for ``steps`` batches of 8 (same batches for the same seed)."""
    L.seed_everything(0)
    loader = DataLoader(patterns(8 * steps), batch_size=8, shuffle=False)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks or [],
    )
    trainer.fit(model, loader)
    return trainer


def with_discriminator_seed(seed: int, **kwargs) -> AAE:
    """An AAE whose encoder and decoder start the same for every ``seed`` and whose
    discriminator starts from ``seed``."""
    torch.manual_seed(0)
    model = AAE(**TINY, **kwargs)
    torch.manual_seed(seed)
    for parameter in model.discriminator.parameters():
        torch.nn.init.normal_(parameter)
    return model


def autoencoder_state(model: AAE) -> dict[str, torch.Tensor]:
    return {
        name: value
        for name, value in model.state_dict().items()
        if not name.startswith("discriminator")
    }


@pytest.mark.parametrize("stochastic", [False, True])
def test_at_lambda_one_the_discriminator_never_touches_encoder_or_decoder(stochastic):
    states = []
    for seed in (1, 2):
        model = with_discriminator_seed(
            seed, reconstruction_weight=1.0, stochastic_encoder=stochastic
        )
        fit(model, steps=3)
        states.append(autoencoder_state(model))
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name


def test_below_lambda_one_the_discriminator_does_move_the_encoder():
    states = []
    for seed in (1, 2):
        model = with_discriminator_seed(seed, reconstruction_weight=0.9)
        fit(model, steps=3)
        states.append(autoencoder_state(model))
    assert not torch.equal(states[0]["encoder.net.0.weight"], states[1]["encoder.net.0.weight"])


class StepRecorder(L.Callback):
    """Records, at every optimiser step, which optimiser steps and which of the model's
    parts (encoder, decoder, discriminator) hold a gradient for it."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, set[str]]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        names = ["autoencoder", "discriminator"]
        part_of = {p: n.split(".")[0] for n, p in pl_module.named_parameters()}
        for name, optimizer in zip(names, trainer.optimizers, strict=True):

            def record(optimizer, args, kwargs, name=name):
                parts = {
                    part_of[p]
                    for group in optimizer.param_groups
                    for p in group["params"]
                    if p.grad is not None and p.grad.abs().sum() > 0
                }
                self.steps.append((name, parts))

            optimizer.register_step_pre_hook(record)


@pytest.mark.parametrize(
    "weight,expected",
    [
        (
            0.5,
            [
                ("autoencoder", {"encoder", "decoder"}),
                ("discriminator", {"discriminator"}),
                ("autoencoder", {"encoder"}),
            ],
        ),
        (1.0, [("autoencoder", {"encoder", "decoder"})]),
        (0.0, [("discriminator", {"discriminator"}), ("autoencoder", {"encoder"})]),
    ],
)
def test_each_phase_steps_its_optimisers_with_gradients_of_its_parts(weight, expected):
    recorder = StepRecorder()
    trainer = fit(AAE(**TINY, reconstruction_weight=weight), steps=2, callbacks=[recorder])
    assert recorder.steps == expected * 2
    assert trainer.global_step == len(expected) * 2, "Lightning counts every optimiser step"


@pytest.mark.parametrize("stochastic", [False, True])
def test_deterministic_and_stochastic_encoders_both_learn_to_reconstruct(stochastic):
    torch.manual_seed(0)
    model = AAE(**{**TINY, "hidden_channels": 8}, stochastic_encoder=stochastic, learning_rate=0.01)
    x = patterns(8)
    with torch.no_grad():
        before = model.recon_nats_per_dim_of(x).mean()
    fit(model, steps=40)
    with torch.no_grad():
        after = model.eval().recon_nats_per_dim_of(x).mean()
    assert after < 0.5 * before


def test_the_mmd_matches_a_hand_computation_and_tells_shifted_codes_apart():
    x = torch.tensor([[0.0], [1.0]])
    # unbiased: k(0,1) from each set alone, minus twice the mean over the 4 cross pairs
    k = math.exp(-0.5)
    assert rbf_mmd2(x, x, bandwidth=1.0).item() == pytest.approx(2 * k - (2 + 2 * k) / 2)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 500, 2, generator=generator)
    assert abs(rbf_mmd2(a, b, math.sqrt(2)).item()) < 0.01
    assert rbf_mmd2(a, b + 1.0, math.sqrt(2)).item() > 0.1
    with pytest.raises(ValueError, match="at least 2 rows"):
        rbf_mmd2(a[:1], b, 1.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(reconstruction_weight=1.5), r"reconstruction_weight \(lambda\) must lie in \[0, 1\]"),
        (dict(reconstruction_weight=-0.1), "got -0.1"),
        (dict(latent_dim=0), "latent_dim must be at least 1"),
        (dict(sample_levels="mean"), "sample_levels"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AAE(**{**TINY, **kwargs})


def test_decoded_prior_draws_are_images_like_the_data():
    model = AAE(**TINY, stochastic_encoder=True)
    generator = torch.Generator().manual_seed(0)
    samples = model.sample(5, generator=generator)
    assert samples.shape == (5, 1, 8, 8) and samples.dtype == torch.long
    assert set(samples.unique().tolist()) <= {0, 1}
    assert torch.equal(samples, model.sample(5, generator=torch.Generator().manual_seed(0)))
    assert model.encode(samples).shape == (5, 2)
    assert torch.equal(model.reconstruct(samples), model.reconstruct(samples)), "the mean code"


def recon_nats_per_dim_by_hand(model: AAE, loader: DataLoader) -> float:
    """Cross-entropy of every subpixel of the split under p(x|z) at a draw of its image's
    code, averaged over all subpixels."""
    total, dims = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            x = data_of(batch)
            total += F.cross_entropy(model(x).movedim(2, 1), x, reduction="sum").item()
            dims += x.numel()
    return total / dims


@pytest.mark.parametrize("config", ["mnist", "mnist_2d"])
def test_the_configs_fit_test_and_reload(config, digits_file):
    args = [
        f"--config={REPO}/configs/aae/{config}.yaml",
        f"--data.init_args.path={digits_file}",
        "--data.init_args.batch_size=8",
        "--model.init_args.hidden_channels=4",
        "--model.init_args.discriminator_hidden_units=8",
        "--trainer.accelerator=cpu",
    ]
    fit_run = run_cli(["fit", *args, "--trainer.max_epochs=1"])
    run = Path(fit_run.trainer.log_dir)
    assert run.parts[:2] == ("runs", "aae")
    assert fit_run.trainer.checkpoint_callback.monitor == "val/recon_nats_per_dim"
    pictures = ["samples.png", "reconstructions.png"]
    if config == "mnist_2d":
        pictures += ["codes/epoch_000.png", "codes.png", "manifold.png"]
    for name in ["checkpoints/best.ckpt", *pictures]:
        assert (run / name).is_file(), name

    last = run / "checkpoints" / "last.ckpt"
    test = run_cli(["test", *args, f"--ckpt_path={last}"])
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    torch.manual_seed(0)  # other draws of the codes move the figure by about 0.01%
    recon = recon_nats_per_dim_by_hand(test.model.eval(), test.datamodule.test_dataloader())
    assert metrics["test/recon_nats_per_dim"] == pytest.approx(recon, rel=1e-3)
    assert {"test/prior_mmd", "test/discriminator_accuracy"} <= set(metrics)
    assert "test/nats_per_dim" not in metrics, "an AAE makes no likelihood claim"

    restored = AAE.load_from_checkpoint(last)
    x = data_of(next(iter(fit_run.datamodule.test_dataloader())))
    assert torch.equal(restored.reconstruct(x), fit_run.model.reconstruct(x))
