"""Opt-in ``torch.compile`` (``--compile true``, ``CompileNetworks``): what gets compiled, the
same training as eager mode, checkpoints that load uncompiled, and the fall back to eager
mode with one warning where compilation is unavailable."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from genlab.callbacks import CompileNetworks
from genlab.callbacks.compile import networks_of
from genlab.cli import run_cli
from genlab.datamodules import ShapesDataModule
from genlab.lightning_modules import VAE, Histogram, PixelCNN

REPO = Path(__file__).resolve().parents[1]
TINY = [
    f"--config={REPO}/configs/pixelcnn/shapes.yaml",
    "--model.init_args.hidden_channels=8",
    "--model.init_args.num_layers=1",
    "--model.init_args.kernel_size=3",
    "--data.init_args.image_size=12",
    "--data.init_args.num_train=40",
    "--data.init_args.num_test=16",
    "--data.init_args.batch_size=16",
    "--trainer.accelerator=cpu",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.log_every_n_steps=1",
]
UNAVAILABLE = "InvalidCxxCompiler: No working C++ compiler found"


def unsupported_platform(function, **options):
    """``torch.compile`` where dynamo does not run: it raises at once."""
    raise RuntimeError("torch.compile is not supported on this Python version")


def fit_vae(callbacks: list[L.Callback]) -> tuple[VAE, dict]:
    """Two steps and a validation of a tiny VAE (two networks) from seed 0."""
    L.seed_everything(0, verbose=False)
    model = VAE(image_shape=(1, 12, 12), num_levels=2, latent_dim=2, hidden_channels=4)
    data = ShapesDataModule(image_size=12, num_train=40, num_test=16, batch_size=8)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=1,
        val_check_interval=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(model, datamodule=data)
    return model, {name: float(value) for name, value in trainer.callback_metrics.items()}


def test_the_networks_are_the_trainable_children_or_the_model_itself():
    vae = VAE(image_shape=(1, 12, 12), latent_dim=2, hidden_channels=4)
    assert set(networks_of(vae)) == {"encoder", "decoder"}, "metrics are no network"
    vae.decoder.requires_grad_(False)
    assert set(networks_of(vae)) == {"encoder"}, "frozen parts stay eager"
    histogram = Histogram(num_bins=5)
    assert networks_of(histogram) == {"Histogram": histogram}


def test_a_compiler_failing_at_the_first_call_falls_back_with_one_warning(monkeypatch):
    eager_model, eager_metrics = fit_vae([])

    def failing_compile(function, **options):
        def compiled(*args, **kwargs):
            raise RuntimeError(f"{UNAVAILABLE} in ('g++',)\nmore detail")

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    callback = CompileNetworks()
    with pytest.warns(UserWarning) as record:
        model, metrics = fit_vae([callback])
    messages = [str(w.message) for w in record if "torch.compile" in str(w.message)]
    assert messages == [
        f"torch.compile is unavailable here (RuntimeError: {UNAVAILABLE} in ('g++',)); "
        "the model runs in eager mode"
    ]
    assert not any("forward" in vars(network) for network in (model.encoder, model.decoder))
    assert metrics == pytest.approx(eager_metrics)
    for name, value in eager_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_a_platform_without_dynamo_falls_back_before_compiling(monkeypatch):
    monkeypatch.setattr(torch, "compile", unsupported_platform)
    with pytest.warns(UserWarning, match="unavailable here .RuntimeError: torch.compile is not"):
        fit_vae([CompileNetworks()])


def test_an_error_of_the_network_itself_is_raised_as_in_eager_mode(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda function, **options: function)
    model = PixelCNN(image_shape=(1, 4, 4), hidden_channels=4, num_layers=1, kernel_size=3)
    CompileNetworks().setup(L.Trainer(logger=False), model, "fit")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="channels"):
            model.net(torch.zeros(1, 2, 4, 4))


def test_the_command_compiles_on_request_and_says_when_it_cannot(in_tmp, monkeypatch):
    plain = run_cli(["fit", *TINY])
    assert not any(isinstance(c, CompileNetworks) for c in plain.trainer.callbacks)
    monkeypatch.setattr(torch, "compile", unsupported_platform)
    with pytest.warns(UserWarning, match="unavailable here .RuntimeError: torch.compile is not"):
        fit = run_cli(["fit", *TINY, "--compile=true"])
    assert any(isinstance(c, CompileNetworks) for c in fit.trainer.callbacks)


@pytest.mark.slow
def test_a_compiled_fit_trains_as_eager_and_its_checkpoint_loads_uncompiled(in_tmp):
    eager = run_cli(["fit", *TINY])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile is unavailable")
        compiled = run_cli(["fit", *TINY, "--compile=true"])
    assert "forward" in vars(compiled.model.net), "the network runs compiled"
    metrics = {
        run: {name: float(value) for name, value in cli.trainer.callback_metrics.items()}
        for run, cli in (("eager", eager), ("compiled", compiled))
    }
    assert {"train/loss", "val/nats_per_dim"} <= set(metrics["compiled"])
    assert metrics["compiled"] == pytest.approx(metrics["eager"], rel=1e-4)

    last = Path(compiled.trainer.log_dir) / "checkpoints" / "last.ckpt"
    restored = PixelCNN.load_from_checkpoint(last).eval()
    assert "forward" not in vars(restored.net)
    images = torch.randint(0, 2, (4, 1, 12, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = compiled.model.eval().log_prob(images)
        assert torch.allclose(restored.log_prob(images), expected, atol=1e-5)
