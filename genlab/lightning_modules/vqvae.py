"""VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation Learning") as an
image tokenizer.

An encoder maps an image to a grid of vectors, each replaced by its nearest code of a
learned codebook; a decoder maps the grid of codes back to a categorical distribution
over every subpixel's level. Training minimises the reconstruction NLL plus the
quantizer's codebook and commitment losses. The image's tokens are what a prior (a
transformer over tokens) models; there are two kinds of tokenizer (``colors``):

* ``local``: the tokens are the ``h x w`` code grid of the image itself, so each code
  carries the colours of its patch as well as its piece of the picture.
* ``global``: for images of two colours, a background and a foreground (coloured MNIST,
  coloured shapes), the colours are global tokens read exactly from the image and the
  codes are learned on the colour-free stroke, as VQ-VAE-2 (Razavi et al., 2019) splits
  global from local information. The background is the image's most common colour
  (the lowest colour number on ties), the foreground the next most common one, and the
  stroke every pixel not of the background colour. The tokens are ``[foreground,
  background, h*w codes in raster order]``; code ``c`` is id ``c`` and colour ``k`` (its
  channel levels read as base-K digits, ``r K^2 + g K + b`` for RGB) is id
  ``num_codes + k``. The same stroke in any colours is the same codes, and decoding
  paints the decoded stroke with the two colours.

A VQ-VAE alone is not a likelihood model: ``-log p(x | z(x))`` is a reconstruction
error, not ``-log p(x)``, so it is logged as ``*/recon_nats_per_dim``, never as
``*/nats_per_dim``, and runs keep the checkpoint with the best
``val/recon_nats_per_dim``.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.nn import functional as F
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
COLOR_MODES = ("local", "global")
COLOR_TOKENS = 2  # foreground, background


def color_numbers(images: Tensor, num_levels: int) -> Tensor:
    """The colour number ``[B, H, W]`` of every pixel of integer images ``[B, C, H, W]``:
    its channel levels read as base-K digits (RGB: ``r K^2 + g K + b``, the numbering of
    the data modules' colour pairs)."""
    return (images * place_values(images.shape[1], num_levels, images.device)[:, None, None]).sum(1)


def color_levels(numbers: Tensor, channels: int, num_levels: int) -> Tensor:
    """The channel levels ``[..., C]`` of colour numbers ``[...]`` (``color_numbers``
    undone)."""
    return numbers[..., None] // place_values(channels, num_levels, numbers.device) % num_levels


def place_values(channels: int, num_levels: int, device: torch.device) -> Tensor:
    """``K^(C-1), ..., K, 1``: what a level of each channel is worth in a colour number."""
    return num_levels ** torch.arange(channels - 1, -1, -1, device=device)


def two_colors(numbers: Tensor, num_colors: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per image of colour numbers ``[B, H, W]``: the background (its most common colour,
    the lowest number on ties), the foreground (the next most common; the lowest other
    number when the image has one colour) and how many colours it has, each ``[B]``."""
    flat = numbers.flatten(1)
    counts = torch.zeros(len(flat), num_colors, dtype=torch.long, device=flat.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat))
    background = counts.argmax(1)
    foreground = counts.scatter(1, background[:, None], -1).argmax(1)
    return background, foreground, (counts > 0).sum(1)


def painted_log_probs(
    stroke_logits: Tensor, foreground: Tensor, background: Tensor, num_levels: int
) -> Tensor:
    """Log-probabilities ``[B, C, K, H, W]`` of every subpixel's level when each pixel is
    the foreground colour with the stroke's probability and the background colour
    otherwise: stroke logits ``[B, 1, 2, H, W]`` (off, on), colours' levels ``[B, C]``.
    A channel in which the two colours agree is certain; levels of neither colour are
    impossible (``-inf``)."""
    log_probs = F.log_softmax(stroke_logits.float(), dim=2)
    off, on = log_probs[:, :, :1], log_probs[:, :, 1:]
    levels = torch.arange(num_levels, device=stroke_logits.device)
    is_foreground = (levels == foreground[..., None])[..., None, None]
    is_background = (levels == background[..., None])[..., None, None]
    either = torch.where(is_background, off, float("-inf"))
    return torch.where(is_foreground & is_background, 0.0, torch.where(is_foreground, on, either))


class VQVAE(CheckedArguments, L.LightningModule):
    """VQ-VAE over integer images ``[B, C, H, W]`` with ``num_levels`` levels per subpixel
    (H and W multiples of 4); the encoder sees the levels scaled to ``[-1, 1]`` (the
    image with ``colors="local"``, its 0/1 stroke with ``colors="global"``, see the
    module docstring).

    Logs ``train/loss`` (reconstruction nats/dim plus VQ losses, per step),
    ``{train,val,test}/recon_nats_per_dim`` (val/test: exact means over the split),
    ``{stage}/vq_loss``, ``{stage}/codebook_perplexity`` and ``{stage}/codes_used``
    (batch figures; val/test: means over batches). Per-step training figures are logged
    on the steps the logger writes or a progress bar shows (``shows_step_figures``).
    The reconstruction NLL is that of independent categoricals over the subpixels; with
    global colours each subpixel is the foreground's level with the decoded stroke's
    probability and the background's otherwise, and training images must have at most
    two colours.

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
        colors: ``local`` (codes of the image) or ``global`` (two colour tokens and codes
            of the stroke), see the module docstring.
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
        colors: str = "local",
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
        if colors not in COLOR_MODES:
            raise ValueError(f"colors must be one of {', '.join(COLOR_MODES)}, got {colors!r}")
        self.global_colors = colors == "global"
        coded_channels, coded_levels = (1, 2) if self.global_colors else (channels, num_levels)
        blocks = (hidden_channels, code_dim, num_residual_blocks)
        self.encoder = Encoder(coded_channels, coded_levels, *blocks)
        self.decoder = Decoder(coded_channels, coded_levels, *blocks)
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
        """Codebook size."""
        return self.quantizer.num_codes

    @property
    def num_colors(self) -> int:
        """Colours an image's pixels can take, ``K^C``."""
        return self.num_levels ** self.image_shape[0]

    @property
    def vocab_size(self) -> int:
        """Token ids: the codes, then (global colours) one id per colour."""
        return self.num_codes + (self.num_colors if self.global_colors else 0)

    @property
    def token_grid(self) -> tuple[int, int]:
        """(h, w) of the code grid of one image."""
        _, height, width = self.image_shape
        return height // DOWNSAMPLING, width // DOWNSAMPLING

    @property
    def token_shape(self) -> tuple[int, ...]:
        """Shape of one image's tokens: the code grid ``(h, w)``, or with global colours
        the sequence ``(2 + h*w,)`` of foreground, background and codes."""
        height, width = self.token_grid
        return (COLOR_TOKENS + height * width,) if self.global_colors else (height, width)

    @property
    def allowed_tokens(self) -> Tensor:
        """``[T, vocab_size]`` booleans over the ``T`` tokens of an image in order: the
        ids each may hold (with global colours, colours first and codes after)."""
        num_tokens = self.token_grid[0] * self.token_grid[1]
        is_code = torch.arange(self.vocab_size) < self.num_codes
        codes = is_code.repeat(num_tokens, 1)
        if not self.global_colors:
            return codes
        return torch.cat([(~is_code).repeat(COLOR_TOKENS, 1), codes])

    def forward(self, x: Tensor) -> tuple[Tensor, Quantized]:
        """Logits ``[B, C, K, H, W]`` of the reconstruction of integer images ``x`` (with
        global colours, log-probabilities, ``-inf`` at levels of neither colour), and
        the quantizer's output."""
        check_discrete_data(x, self.image_shape, self.num_levels, "images")
        if not self.global_colors:
            quantized = self.quantizer(self.encoder(x))
            return self.decoder(quantized.quantized), quantized
        background, foreground, strokes = self.split_colors(x, at_most_two=True)
        quantized = self.quantizer(self.encoder(strokes))
        logits = painted_log_probs(
            self.decoder(quantized.quantized),
            self.levels_of(foreground),
            self.levels_of(background),
            self.num_levels,
        )
        return logits, quantized

    def split_colors(
        self, images: Tensor, at_most_two: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Background and foreground colour numbers ``[B]`` of integer images and their
        strokes ``[B, 1, H, W]`` (1 where a pixel is not of the background colour). With
        ``at_most_two``, an image of more colours stops with an error."""
        numbers = color_numbers(images, self.num_levels)
        background, foreground, count = two_colors(numbers, self.num_colors)
        if at_most_two and int(count.max()) > 2:
            raise ValueError(
                f"a VQVAE with global colours reconstructs images of at most two colours "
                f"(a background and a foreground), got one of {int(count.max())}"
            )
        return background, foreground, (numbers != background[:, None, None]).long()[:, None]

    def levels_of(self, colors: Tensor) -> Tensor:
        """Channel levels ``[B, C]`` of colour numbers ``[B]``."""
        return color_levels(colors, self.image_shape[0], self.num_levels)

    def encoder_input(self, images: Tensor) -> Tensor:
        """What the encoder sees of integer images: the images, or their strokes
        ``[B, 1, H, W]`` with global colours; images with the same input have the same
        code grid, whatever their colours."""
        return self.split_colors(images)[2] if self.global_colors else images

    @torch.no_grad()
    def code_grid(self, inputs: Tensor) -> Tensor:
        """Code grids ``[B, h, w]`` of encoder inputs (see ``encoder_input``)."""
        return self.quantizer.indices_of(self.encoder(inputs))

    def tokens(self, images: Tensor, grids: Tensor) -> Tensor:
        """The tokens ``[B, *token_shape]`` of integer images whose code grids are
        ``grids [B, h, w]``: the grids, or with global colours the images' foreground
        and background ids before the codes."""
        if not self.global_colors:
            return grids
        background, foreground, _ = self.split_colors(images)
        colors = torch.stack([foreground, background], dim=1) + self.num_codes
        return torch.cat([colors, grids.flatten(1)], dim=1)

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Tokens ``[B, *token_shape]`` (LongTensor of ids) of integer images."""
        check_discrete_data(images, self.image_shape, self.num_levels, "images")
        return self.tokens(images, self.code_grid(self.encoder_input(images)))

    @torch.no_grad()
    def decode(self, tokens: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` (most likely level of every subpixel, LongTensor in
        ``0..K-1`` like the data) of tokens ``[B, *token_shape]``."""
        if not self.global_colors:
            return self.decoder(self.quantizer.lookup(tokens)).argmax(dim=2)
        colors = self.levels_of(tokens[:, :COLOR_TOKENS] - self.num_codes)[..., None, None]
        grids = tokens[:, COLOR_TOKENS:].view(len(tokens), *self.token_grid)
        strokes = self.decoder(self.quantizer.lookup(grids)).argmax(dim=2).bool()
        return torch.where(strokes, colors[:, 0], colors[:, 1])

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
