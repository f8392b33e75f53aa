"""``--trainer.precision bf16-mixed`` for every model family: a tiny fit (two batches and a
validation) and a test from its checkpoint, whose figures must be finite and match the
same checkpoint tested in float32; and the float32 islands that keep them honest."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from genlab.cli import run_cli
from genlab.lightning_modules import Diffusion
from genlab.nn.latent import DiagonalGaussian
from genlab.nn.vq import VectorQuantizer

REPO = Path(__file__).resolve().parents[1]
SHORT_RUN = [
    "--trainer.accelerator=cpu",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
    "--trainer.max_epochs=1",
    "--trainer.max_steps=-1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=2",
    "--trainer.val_check_interval=null",
    "--trainer.check_val_every_n_epoch=1",
]
SHAPES = [
    "--data.init_args.image_size=12",
    "--data.init_args.num_train=40",
    "--data.init_args.num_test=16",
    "--data.init_args.batch_size=8",
]
DIGITS = ["--data.init_args.path={digits}", "--data.init_args.batch_size=8"]
TINY_GPT = ["--model.init_args.width=16", "--model.init_args.num_heads=2"]
TINY_GPT += ["--model.init_args.num_layers=1"]
TINY_CONV = ["--model.init_args.hidden_channels=8", "--model.init_args.num_layers=1"]
ON_SHAPES = ["--data=genlab.datamodules.ShapesDataModule", *SHAPES]
FAMILIES = {
    "pixelcnn/shapes": [*SHAPES, *TINY_CONV, "--model.init_args.kernel_size=3"],
    "pixelcnn_made/colored_shapes": [*SHAPES, *TINY_CONV],
    "gated_pixelcnn/mnist": [*DIGITS, "--model.init_args.hidden_channels=8"],
    "igpt/shapes": [*SHAPES, *TINY_GPT],
    "made/shapes": [*SHAPES, "--model.init_args.hidden_units=[16]"],
    "histogram/course1": [],
    "logistic_mixture/course1": [],
    "autoregressive2d/procedural": ["--data.init_args.num_samples=2000"],
    "diffusion/square_classes": [
        "--data.init_args.num_train=64",
        "--data.init_args.num_val=32",
        "--data.init_args.num_test=32",
        "--model.init_args.hidden_units=16",
        "--model.init_args.likelihood_steps=4",
    ],
    "char_gpt/tinyshakespeare": [
        "--data.init_args.path={text}",
        "--data.init_args.context_length=16",
        "--data.init_args.batch_size=8",
        *TINY_GPT,
    ],
    "vae/mnist": [*ON_SHAPES, "--model.init_args.hidden_channels=4"],
    "aae/mnist": [*ON_SHAPES, "--model.init_args.hidden_channels=4"],
    "vqvae/colored_mnist": [
        *DIGITS,
        "--model.init_args.num_codes=8",
        "--model.init_args.code_dim=4",
        "--model.init_args.hidden_channels=8",
        "--model.init_args.num_residual_blocks=1",
    ],
    "vq_prior/colored_mnist": [*DIGITS, *TINY_GPT, "--model.init_args.vqvae_checkpoint={vqvae}"],
    "multimodal/captioned_mnist": [
        *DIGITS,
        *TINY_GPT,
        "--model.init_args.vqvae_checkpoint={vqvae}",
    ],
}
FAST_FAMILY = "pixelcnn/shapes"


def test_every_config_folder_has_a_family_here():
    folders = {path.name for path in (REPO / "configs").iterdir() if path.is_dir()}
    assert {family.split("/")[0] for family in FAMILIES} == folders


def family_args(family: str, request: pytest.FixtureRequest, folder: Path) -> list[str]:
    """The config of ``family`` shrunk to seconds, its files filled in."""
    files = {"digits": "", "text": "", "vqvae": ""}
    overrides = " ".join(FAMILIES[family])
    if "{vqvae}" in overrides:
        files["digits"], files["vqvae"] = request.getfixturevalue("vqvae_run")
    elif "{digits}" in overrides:
        files["digits"] = request.getfixturevalue("digits_file")
    if "{text}" in overrides:
        files["text"] = folder / "text.txt"
        files["text"].write_text("the quick brown fox jumps over the lazy dog\n" * 30)
    filled = [value.format(**files) for value in FAMILIES[family]]
    return [f"--config={REPO}/configs/{family}.yaml", *filled, *SHORT_RUN]


def figures(metrics: dict) -> dict[str, float]:
    """The likelihood figures among logged metrics (nats, and bits, per dim or token)."""
    units = ("nats_per_", "bits_per_")
    return {name: float(value) for name, value in metrics.items() if any(u in name for u in units)}


@pytest.mark.parametrize(
    "family",
    [
        family if family == FAST_FAMILY else pytest.param(family, marks=pytest.mark.slow)
        for family in FAMILIES
    ],
)
def test_bf16_mixed_fits_every_family_with_honest_figures(family, request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = family_args(family, request, tmp_path)
    fit = run_cli(["fit", *args, "--trainer.precision=bf16-mixed"])
    assert fit.trainer.global_step > 0
    fitted = {name: float(value) for name, value in fit.trainer.callback_metrics.items()}
    assert any(name.startswith("val/") for name in fitted), "validation ran"
    assert all(math.isfinite(value) for value in fitted.values()), fitted

    last = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    tested = {
        precision: figures(
            run_cli(
                ["test", *args, f"--ckpt_path={last}", f"--trainer.precision={precision}"]
            ).trainer.callback_metrics
        )
        for precision in ("32-true", "bf16-mixed")
    }
    assert tested["32-true"], "the test logged likelihood figures"
    assert tested["bf16-mixed"].keys() == tested["32-true"].keys()
    for name, value in tested["32-true"].items():
        assert math.isfinite(tested["bf16-mixed"][name])
        assert tested["bf16-mixed"][name] == pytest.approx(value, rel=5e-3, abs=1e-4), name


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_nearest_codes_are_found_in_float32_under_autocast():
    """Codes far from the origin and close to each other: the expanded squared distance
    cancels in bfloat16, and only a float32 search finds each vector's own code."""
    generator = torch.Generator().manual_seed(0)
    quantizer = VectorQuantizer(num_codes=32, code_dim=8).eval()
    with torch.no_grad():
        quantizer.codebook.copy_(10 + 0.05 * torch.randn(32, 8, generator=generator))
    chosen = torch.randint(0, 32, (64,), generator=generator)
    z = (quantizer.codebook[chosen] + 1e-3 * torch.randn(64, 8, generator=generator)).detach()
    with bf16_autocast():
        found = quantizer.indices_of(z[:, :, None])[:, 0]
    assert torch.equal(found, chosen)


def test_codebook_updates_are_the_same_under_autocast():
    z = torch.randn(16, 3, 5, generator=torch.Generator().manual_seed(0))
    plain, autocast = (VectorQuantizer(num_codes=4, code_dim=3, ema=True).train() for _ in "ab")
    autocast.load_state_dict(plain.state_dict())
    plain(z)
    with bf16_autocast():
        autocast(z)
    for name, value in plain.state_dict().items():
        assert torch.equal(autocast.state_dict()[name], value), name


def test_gaussian_posteriors_of_bf16_features_are_float32():
    features = torch.randn(5, 6, generator=torch.Generator().manual_seed(0)).bfloat16()
    posterior = DiagonalGaussian.from_features(features)
    assert posterior.mean.dtype == posterior.log_var.dtype == torch.float32
    mean, log_var = features.float().chunk(2, dim=-1)
    expected = 0.5 * (log_var.exp() + mean.pow(2) - 1 - log_var).sum(dim=-1)
    assert torch.equal(posterior.kl_to_standard_normal(), expected)


def test_the_diffusion_density_is_the_same_under_autocast():
    torch.manual_seed(0)
    model = Diffusion(hidden_units=32, likelihood_steps=8).eval()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    expected = model.log_prob(x)
    with bf16_autocast():
        assert torch.equal(model.log_prob(x), expected)
