"""VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation Learning") as an
image tokenizer.

An encoder maps an image to a grid of vectors, each replaced by its nearest code of a
learned codebook; a decoder maps the grid of codes back to a categorical distribution
over every subpixel's level. Training minimises the reconstruction NLL plus the
quantizer's codebook and commitment losses. The integer code grid is the image's token
sequence, for a prior (a transformer over tokens) to model.

A VQ-VAE alone is not a likelihood model: ``-log p(x | z(x))`` is a reconstruction
error, not ``-log p(x)``, so it is logged as ``*/recon_nats_per_dim``, never as
``*/nats_per_dim``, and runs keep the checkpoint with the best
``val/recon_nats_per_dim``.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torchmetrics import MeanMetric

from genlab.lightning_modules.arguments import CheckedArguments
from genlab.lightning_modules.base import (
    check_discrete_data,
    data_of,
    log_step_loss,
    shows_step_figures,
)
from genlab.nn.distributions import categorical_log_prob
from genlab.nn.vq import Decoder, Encoder, Quantized, VectorQuantizer

DOWNSAMPLING = 4  # two stride-2 convolutions: 28x28 images become 7x7 token grids


class VQVAE(CheckedArguments, L.LightningModule):
    """VQ-VAE over integer images ``[B, C, H, W]`` with ``num_levels`` levels per subpixel
    (H and W multiples of 4); the encoder sees the levels scaled to ``[-1, 1]``.

    Logs ``train/loss`` (reconstruction nats/dim plus VQ losses, per step),
    ``{train,val,test}/recon_nats_per_dim`` (val/test: exact means over the split),
    ``{stage}/vq_loss``, ``{stage}/codebook_perplexity`` and ``{stage}/codes_used``
    (batch figures; val/test: means over batches). Per-step training figures are logged
    on the steps the logger writes or a progress bar shows (``shows_step_figures``).

    Args:
        image_shape: (channels, height, width) of the data; linked from the data module.
        num_levels: values per subpixel (K levels); linked from the data module.
        num_codes: codebook size.
        code_dim: size of each code vector.
        hidden_channels: filters of the encoder's and decoder's hidden layers.
        num_residual_blocks: residual blocks in the encoder and in the decoder.
        beta: weight of the commitment loss (0.25 in the paper).
        ema: learn the codebook by exponential moving averages instead of the codebook loss.
        decay: decay of the codebook's moving averages.
        restart_dead_codes: replace codes used less than once per batch (moving average)
            with random encoder outputs, see ``VectorQuantizer``.
        learning_rate: Adam's step size (2e-4 in the paper).
    """

    name = "vqvae"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        num_levels: int = 4,
        num_codes: int = 128,
        code_dim: int = 64,
        hidden_channels: int = 128,
        num_residual_blocks: int = 2,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        restart_dead_codes: bool = True,
        learning_rate: float = 2e-4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        channels, height, width = self.image_shape
        if height % DOWNSAMPLING or width % DOWNSAMPLING:
            raise ValueError(
                f"VQVAE needs image height and width divisible by {DOWNSAMPLING}, "
                f"got {height}x{width}"
            )
        blocks = (hidden_channels, code_dim, num_residual_blocks)
        self.encoder = Encoder(channels, num_levels, *blocks)
        self.decoder = Decoder(channels, num_levels, *blocks)
        self.quantizer = VectorQuantizer(
            num_codes,
            code_dim,
            beta=beta,
            ema=ema,
            decay=decay,
            dead_code_threshold=1.0 if restart_dead_codes else 0.0,
        )
        self.recon_nats_per_dim = torch.nn.ModuleDict(
            {stage: MeanMetric() for stage in ("val", "test")}
        )

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    @property
    def token_grid(self) -> tuple[int, int]:
        """(h, w) of the token grid of one image."""
        _, height, width = self.image_shape
        return height // DOWNSAMPLING, width // DOWNSAMPLING

    def forward(self, x: Tensor) -> tuple[Tensor, Quantized]:
        """Logits ``[B, C, K, H, W]`` of the reconstruction of integer images ``x``, and
        the quantizer's output."""
        check_discrete_data(x, self.image_shape, self.num_levels, "images")
        quantized = self.quantizer(self.encoder(x))
        return self.decoder(quantized.quantized), quantized

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Token grids ``[B, h, w]`` (LongTensor of code indices) of integer images."""
        check_discrete_data(images, self.image_shape, self.num_levels, "images")
        return self.quantizer.indices_of(self.encoder(images))

    @torch.no_grad()
    def decode(self, tokens: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` (most likely level of every subpixel, LongTensor in
        ``0..K-1`` like the data) of token grids ``[B, h, w]``."""
        return self.decoder(self.quantizer.lookup(tokens)).argmax(dim=2)

    def reconstruct(self, images: Tensor) -> Tensor:
        """``decode(encode(images))``: what the tokens keep of each image."""
        return self.decode(self.encode(images))

    def losses(self, x: Tensor) -> tuple[Tensor, Quantized]:
        """Reconstruction NLL of each example in nats per dim ``[B]``, and the quantizer's
        output (whose ``loss`` is the VQ part of the objective)."""
        logits, quantized = self(x)
        return -categorical_log_prob(logits, x, dim=2) / x[0].numel(), quantized

    def training_step(self, batch: Tensor | tuple, batch_idx: int) -> Tensor:
        recon, quantized = self.losses(data_of(batch))
        loss = recon.mean() + quantized.loss
        log_step_loss(self, loss)
        if shows_step_figures(self):
            self.log("train/recon_nats_per_dim", recon.mean(), on_step=True, on_epoch=False)
            self._log_codebook("train", quantized)
        return loss

    def validation_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self._evaluate("val", data_of(batch))

    def test_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self._evaluate("test", data_of(batch))

    def predict_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        raise NotImplementedError(
            "a VQ-VAE has no prior to sample from; train a token model on its encode() "
            "output, or use reconstruct() to see what the tokens keep"
        )

    def _evaluate(self, stage: str, x: Tensor) -> None:
        recon, quantized = self.losses(x)
        self.recon_nats_per_dim[stage].update(recon)
        self.log(f"{stage}/recon_nats_per_dim", self.recon_nats_per_dim[stage], prog_bar=True)
        self._log_codebook(stage, quantized)

    def _log_codebook(self, stage: str, quantized: Quantized) -> None:
        """Per step in training (this process's batch); in evaluation, means over the
        split, reduced across processes."""
        epoch = stage != "train"
        for name, value in [
            ("vq_loss", quantized.loss),
            ("codebook_perplexity", quantized.perplexity),
            ("codes_used", quantized.codes_used),
        ]:
            self.log(f"{stage}/{name}", value, on_step=not epoch, on_epoch=epoch, sync_dist=epoch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
