"""VQ-VAE: the vector quantizer's gradients, EMA update, restarts and statistics; the
tokenizer's encode/decode; a tiny fit through the ``genlab`` command and its reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from genlab.cli import run_cli
from genlab.lightning_modules.base import data_of
from genlab.lightning_modules.vqvae import VQVAE
from genlab.nn.vq import VectorQuantizer

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = dict(num_codes=8, code_dim=4, hidden_channels=8, num_residual_blocks=1)
GLOBAL_MODEL = dict(TINY_MODEL, colors="global")
RED, BLUE, DARK_GREEN, WHITE = [3, 0, 0], [0, 0, 3], [0, 1, 0], [3, 3, 3]


def quantizer_with(codebook: list[list[float]], **kwargs) -> VectorQuantizer:
    """A quantizer whose codes (and, in EMA mode, EMA sums) are ``codebook``."""
    codes = torch.tensor(codebook)
    quantizer = VectorQuantizer(len(codes), codes.shape[1], **kwargs)
    with torch.no_grad():
        quantizer.codebook.copy_(codes)
        if quantizer.ema:
            quantizer.embed_sum.copy_(codes)
    return quantizer


def test_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    model = VQVAE(image_shape=(3, 8, 8), num_levels=4, **TINY_MODEL)
    x = torch.randint(0, 4, (4, 3, 8, 8))
    recon, _ = model.losses(x)
    recon.mean().backward()
    for parameter in model.encoder.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_ema_update_matches_a_hand_computation():
    quantizer = quantizer_with([[0.0, 0.0], [10.0, 10.0]], ema=True, decay=0.5, eps=0.5)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 12.0]])
    out = quantizer(z)
    assert out.indices.tolist() == [0, 0, 1]
    assert torch.equal(out.quantized, torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]))
    # sizes 0.5 * [1, 1] + 0.5 * [2, 1]; sums 0.5 * [(0,0), (10,10)] + 0.5 * [(1,1), (10,12)]
    assert torch.allclose(quantizer.cluster_size, torch.tensor([1.5, 1.0]))
    assert torch.allclose(quantizer.embed_sum, torch.tensor([[0.5, 0.5], [10.0, 11.0]]))
    # Laplace smoothing, n = 2.5: (1.5 + 0.5) / 3.5 * 2.5 = 10/7 and (1 + 0.5) / 3.5 * 2.5 = 15/14
    expected = torch.tensor([[0.5 * 7 / 10, 0.5 * 7 / 10], [10 * 14 / 15, 11 * 14 / 15]])
    assert torch.allclose(quantizer.codebook, expected)
    assert quantizer.codebook.grad is None and not quantizer.codebook.requires_grad


def test_the_quantizer_changes_nothing_in_evaluation_mode():
    quantizer = quantizer_with([[0.0, 0.0], [100.0, 100.0]], ema=True, dead_code_threshold=1.0)
    before = {name: t.clone() for name, t in quantizer.state_dict().items()}
    quantizer.eval()(torch.randn(5, 2))
    for name, value in quantizer.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("ema", [False, True])
def test_a_code_never_chosen_is_restarted_on_an_encoder_output(ema):
    torch.manual_seed(0)
    quantizer = quantizer_with([[0.0, 0.0], [100.0, 100.0]], ema=ema, dead_code_threshold=1.0)
    z = torch.randn(5, 2)
    quantizer(z)
    assert (quantizer.codebook[1] == z).all(dim=1).any(), "code 1 is one of the batch's vectors"
    assert quantizer.cluster_size[1] == 1.0
    if ema:
        smoothed = quantizer.smoothed_cluster_size().unsqueeze(1)
        assert torch.allclose(quantizer.embed_sum / smoothed, quantizer.codebook)
    assert quantizer_with([[0.0, 0.0], [100.0, 100.0]], ema=ema)(z).indices.eq(0).all()


def test_codebook_loss_moves_codes_and_commitment_loss_moves_the_encoder_by_beta():
    torch.manual_seed(0)
    quantizer = quantizer_with([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]], beta=0.25)
    z = torch.randn(6, 2, requires_grad=True)
    out = quantizer(z)
    out.loss.backward()
    chosen = quantizer.codebook.detach()[out.indices]
    assert torch.allclose(z.grad, 0.25 * 2 * (z.detach() - chosen) / z.numel())
    expected = torch.zeros(3, 2).index_add_(0, out.indices, 2 * (chosen - z.detach()) / z.numel())
    assert torch.allclose(quantizer.codebook.grad, expected)


def test_perplexity_and_codes_used_match_a_hand_computation():
    quantizer = quantizer_with([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]).eval()
    out = quantizer(torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.9, 0.0], [0.0, 1.1]]))
    assert out.indices.tolist() == [0, 0, 1, 2]
    # usage (1/2, 1/4, 1/4, 0): entropy 1.5 ln 2, perplexity 2 ** 1.5
    assert out.perplexity.item() == pytest.approx(2**1.5)
    assert out.codes_used.item() == pytest.approx(0.75)


def test_decode_of_encode_gives_images_like_the_data():
    model = VQVAE(image_shape=(3, 28, 28), num_levels=4, **TINY_MODEL).eval()
    x = torch.randint(0, 4, (2, 3, 28, 28))
    tokens = model.encode(x)
    assert model.token_grid == (7, 7) and model.num_codes == 8
    assert tokens.shape == (2, 7, 7) and tokens.dtype == torch.long
    assert tokens.min() >= 0 and tokens.max() < 8
    images = model.decode(tokens)
    assert images.shape == x.shape and images.dtype == x.dtype
    assert images.min() >= 0 and images.max() <= 3
    assert torch.equal(model.reconstruct(x), images)


def paint(strokes: torch.Tensor, foreground: list, background: list) -> torch.Tensor:
    """Images ``[B, 3, H, W]`` of 0/1 strokes ``[B, H, W]``, each painted with its RGB
    foreground on its RGB background."""
    fg = torch.tensor(foreground)[:, :, None, None]
    bg = torch.tensor(background)[:, :, None, None]
    return torch.where(strokes[:, None].bool(), fg, bg)


def sparse_strokes(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random 0/1 strokes covering a quarter of the pixels (fewer than the background)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(count, size, size, generator=generator) < 0.25).long()


def test_global_colours_are_read_exactly_and_the_stroke_is_all_but_the_background():
    model = VQVAE(image_shape=(3, 8, 8), num_levels=4, **GLOBAL_MODEL)
    strokes = sparse_strokes(2, 8)
    half = (torch.arange(8) < 4).long().expand(8, 8)
    strokes = torch.cat([strokes, half[None], torch.zeros(1, 8, 8, dtype=torch.long)])
    images = paint(strokes, [RED, WHITE, BLUE, RED], [BLUE, DARK_GREEN, DARK_GREEN, WHITE])
    background, foreground, found = model.split_colors(images)
    # colour numbers r*16 + g*4 + b: red 48, blue 3, dark green 4, white 63
    assert background.tolist() == [3, 4, 3, 63], "a tie goes to the lower number"
    assert foreground.tolist() == [48, 63, 4, 0], "one colour: the lowest other number"
    assert torch.equal(found[:2, 0], strokes[:2])
    assert torch.equal(found[2, 0], 1 - half) and not found[3].any()
    assert torch.equal(
        model.levels_of(foreground), torch.tensor([RED, WHITE, DARK_GREEN, [0, 0, 0]])
    )


def test_global_tokens_are_the_colours_then_codes_of_the_stroke_alone():
    model = VQVAE(image_shape=(3, 28, 28), num_levels=4, **GLOBAL_MODEL).eval()
    strokes = sparse_strokes(3, 28)
    images = paint(strokes, [RED, WHITE, BLUE], [BLUE, DARK_GREEN, WHITE])
    tokens = model.encode(images)
    assert model.token_shape == (51,) and model.vocab_size == 8 + 64 and model.num_codes == 8
    assert tokens.shape == (3, 51) and tokens.dtype == torch.long
    assert tokens[:, :2].tolist() == [[8 + 48, 8 + 3], [8 + 63, 8 + 4], [8 + 3, 8 + 63]]
    assert tokens[:, 2:].min() >= 0 and tokens[:, 2:].max() < 8
    repainted = paint(strokes, [DARK_GREEN, RED, WHITE], [WHITE, BLUE, RED])
    assert torch.equal(model.encode(repainted)[:, 2:], tokens[:, 2:]), "codes carry no colour"
    assert torch.equal(model.code_grid(model.encoder_input(images)).flatten(1), tokens[:, 2:])

    decoded = model.decode(tokens)
    assert decoded.shape == images.shape and decoded.dtype == images.dtype
    with torch.no_grad():
        stroke_logits = model.decoder(model.quantizer.lookup(tokens[:, 2:].view(3, 7, 7)))
    decoded_strokes = stroke_logits.argmax(dim=2)[:, 0]
    assert torch.equal(
        decoded, paint(decoded_strokes, [RED, WHITE, BLUE], [BLUE, DARK_GREEN, WHITE])
    )
    assert torch.equal(model.reconstruct(images), decoded)

    allowed = model.allowed_tokens
    assert allowed.shape == (51, 72)
    assert allowed[:2, 8:].all() and not allowed[:2, :8].any(), "colours first"
    assert allowed[2:, :8].all() and not allowed[2:, 8:].any(), "then codes"
    local = VQVAE(image_shape=(3, 28, 28), num_levels=4, **TINY_MODEL)
    assert local.allowed_tokens.shape == (49, 8) and local.allowed_tokens.all()
    assert local.vocab_size == 8 and local.token_shape == (7, 7)


def test_global_reconstruction_nll_is_the_stroke_nll_in_each_channel_the_colours_differ_in():
    torch.manual_seed(0)
    model = VQVAE(image_shape=(3, 8, 8), num_levels=4, **GLOBAL_MODEL).eval()  # codebook fixed
    strokes = sparse_strokes(2, 8)
    images = paint(strokes, [RED, [1, 2, 3]], [BLUE, [1, 2, 0]])  # 2 channels differ, then 1
    logits, quantized = model(images)
    stroke_logits = model.decoder(quantized.quantized)[:, 0]
    stroke_nats = F.cross_entropy(stroke_logits, strokes, reduction="none").sum(dim=(1, 2))
    recon, _ = model.losses(images)
    assert torch.allclose(recon, torch.tensor([2.0, 1.0]) * stroke_nats / (3 * 8 * 8))
    assert torch.allclose(logits.exp().sum(dim=2), torch.ones(2, 3, 8, 8))
    assert (logits[0, 1, 0] == 0).all(), "green is 0 in both colours: certain"
    assert torch.isinf(logits[0, 1, 1:]).all() and torch.isinf(logits[0, 0, 1:3]).all()
    recon.mean().backward()
    for parameter in model.encoder.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_global_colours_encode_any_image_but_reconstruct_only_two_colours():
    model = VQVAE(image_shape=(3, 8, 8), num_levels=4, **GLOBAL_MODEL).eval()
    images = torch.randint(0, 4, (2, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    assert model.encode(images).shape == (2, 2 + 4)
    with pytest.raises(ValueError, match="at most two colours"):
        model.losses(images)
    with pytest.raises(ValueError, match="colors must be one of local, global"):
        VQVAE(colors="per pixel")


def recon_nats_per_dim_by_hand(model: VQVAE, loader) -> float:
    """Cross-entropy of every subpixel of the split under the decoder's logits at its
    image's tokens, averaged over all subpixels."""
    total, dims = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            x = data_of(batch)
            logits, _ = model(x)
            total += F.cross_entropy(logits.movedim(2, 1), x, reduction="sum").item()
            dims += x.numel()
    return total / dims


def tiny_run_args(path: Path) -> list[str]:
    return [
        f"--config={REPO}/configs/vqvae/colored_mnist.yaml",
        f"--data.init_args.path={path}",
        "--data.init_args.batch_size=8",
        *[f"--model.init_args.{name}={value}" for name, value in TINY_MODEL.items()],
        "--trainer.accelerator=cpu",
    ]


def test_the_config_fits_tests_and_reloads_with_identical_tokens(digits_file):
    args = tiny_run_args(digits_file)
    fit = run_cli(["fit", *args, "--trainer.max_epochs=1"])
    run = Path(fit.trainer.log_dir)
    assert run.parts[:3] == ("runs", "vqvae", "colored_mnist")
    assert fit.model.image_shape == (3, 28, 28) and fit.model.num_levels == 4
    for name in ["checkpoints/best.ckpt", "checkpoints/last.ckpt", "reconstructions.png"]:
        assert (run / name).is_file(), name
    assert fit.trainer.checkpoint_callback.monitor == "val/recon_nats_per_dim"
    assert "val/codebook_perplexity" in fit.trainer.callback_metrics

    last = run / "checkpoints" / "last.ckpt"
    test = run_cli(["test", *args, f"--ckpt_path={last}"])
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    recon = recon_nats_per_dim_by_hand(test.model.eval(), test.datamodule.test_dataloader())
    assert metrics["test/recon_nats_per_dim"] == pytest.approx(recon, rel=1e-5)
    assert 0 < metrics["test/codes_used"] <= 1

    restored = VQVAE.load_from_checkpoint(last).eval()
    x = data_of(next(iter(fit.datamodule.test_dataloader())))
    assert torch.equal(restored.encode(x), fit.model.eval().encode(x))


def test_a_dry_run_draws_no_reconstructions(digits_file):
    fit = run_cli(["fit", *tiny_run_args(digits_file), "--trainer.fast_dev_run=true"])
    assert fit.trainer.global_step == 1
    assert not list(digits_file.parent.rglob("*.png"))
