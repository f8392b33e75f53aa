"""Vector quantization (van den Oord et al., 2017, "Neural Discrete Representation
Learning") and the convolutional encoder and decoder of a VQ-VAE over small images.

The quantizer maps every encoder output vector to its nearest codebook entry and lets
gradients pass straight through. The codebook learns either by gradient descent on the
codebook loss or by exponential moving averages of the vectors assigned to each code
(the paper's appendix; Razavi et al., 2019, "VQ-VAE-2"); codes that fall out of use can
be restarted on encoder outputs (as in Dhariwal et al., 2020, "Jukebox").
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.nn.modes import full_precision
from genlab.nn.pixelcnn import scale_levels


class Quantized(NamedTuple):
    """What ``VectorQuantizer`` returns for encoder outputs ``z`` of shape ``[B, D, *S]``.

    quantized: the chosen codes ``[B, D, *S]``, with the straight-through gradient to ``z``.
    indices: the chosen code of every vector, ``[B, *S]``.
    loss: codebook loss (gradient mode only) plus ``beta`` times the commitment loss.
    perplexity: ``exp`` of the entropy of the batch's code usage (K when all codes are
        used equally, 1 when one code takes everything).
    codes_used: the fraction of codes chosen at least once in the batch.
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    perplexity: Tensor
    codes_used: Tensor


def code_usage_stats(indices: Tensor, num_codes: int) -> tuple[Tensor, Tensor]:
    """Perplexity and fraction of codes used of a batch of code indices."""
    counts = torch.bincount(indices.flatten(), minlength=num_codes).float()
    probs = counts / counts.sum()
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    return entropy.exp(), (counts > 0).float().mean()


def all_reduce_sum(x: Tensor) -> Tensor:
    """``x`` summed over the processes of a distributed run (itself otherwise), so every
    replica updates its codebook with the statistics of the whole global batch."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


def broadcast_from_first(x: Tensor) -> None:
    """Overwrite ``x`` with process 0's copy in a distributed run (no-op otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(x, src=0)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantization of ``D``-dimensional vectors with ``K`` codes.

    Args:
        num_codes: codebook size K.
        code_dim: vector size D.
        beta: weight of the commitment loss ``||z - sg[e]||^2``, which keeps encoder
            outputs close to their codes (0.25 in the paper).
        ema: learn the codebook by exponential moving averages instead of the codebook
            loss ``||sg[z] - e||^2``; the codebook then gets no gradient.
        decay: decay of the moving averages (of code usage, and in EMA mode of the
            vectors assigned to each code).
        eps: Laplace smoothing of the EMA cluster sizes, so no code divides by zero.
        dead_code_threshold: dead-code restarts, off at 0. Every code keeps a moving
            average ``cluster_size`` of how many vectors it is assigned per training
            batch (starting at 1). At each training step, a code whose average is below
            the threshold is replaced by a random encoder output of the current batch,
            and its average is reset to the threshold; a restarted code that still wins
            no vectors is restarted again at the next step.

    The squared errors are means over every element of ``z``. Statistics and codes only
    change in training mode; in evaluation mode the quantizer is a pure function.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.beta = beta
        self.ema = ema
        self.decay = decay
        self.eps = eps
        self.dead_code_threshold = dead_code_threshold
        codebook = torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes)
        self.codebook = nn.Parameter(codebook, requires_grad=not ema)
        self.register_buffer("cluster_size", torch.ones(num_codes))
        if ema:
            self.register_buffer("embed_sum", codebook.clone())

    def forward(self, z: Tensor) -> Quantized:
        """Quantize ``z`` ``[B, D, *S]``; in training mode, then update the codebook
        statistics (EMA) and restart dead codes."""
        vectors = z.movedim(1, -1)
        indices = self.indices_of(z)
        chosen = self.codebook[indices]
        loss = self.beta * F.mse_loss(vectors, chosen.detach())
        if not self.ema:
            loss = loss + F.mse_loss(chosen, vectors.detach())
        quantized = (vectors + (chosen - vectors).detach()).movedim(-1, 1)
        perplexity, codes_used = code_usage_stats(indices, self.num_codes)
        if self.training:
            with full_precision(z.device):
                self.update(vectors.detach().float().reshape(-1, self.code_dim), indices.flatten())
        return Quantized(quantized, indices, loss, perplexity, codes_used)

    @torch.no_grad()
    def indices_of(self, z: Tensor) -> Tensor:
        """Index ``[B, *S]`` of the nearest code (squared distance) to each vector of ``z``,
        in float32 even under autocast (the expanded distance cancels badly in bfloat16)."""
        vectors = z.movedim(1, -1).float()
        codebook = self.codebook.float()
        with full_precision(z.device):
            distances = (
                vectors.pow(2).sum(-1, keepdim=True)
                - 2 * vectors @ codebook.T
                + codebook.pow(2).sum(-1)
            )
        return distances.argmin(-1)

    def lookup(self, indices: Tensor) -> Tensor:
        """The codes ``[B, D, *S]`` of indices ``[B, *S]``."""
        return self.codebook[indices].movedim(-1, 1)

    @torch.no_grad()
    def update(self, vectors: Tensor, indices: Tensor) -> None:
        """One training step of the statistics: usage averages, EMA codebook, restarts.
        ``vectors`` ``[N, D]`` are this batch's encoder outputs, ``indices`` ``[N]``."""
        assigned = F.one_hot(indices, self.num_codes).type_as(vectors)
        counts = all_reduce_sum(assigned.sum(0))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.ema:
            sums = all_reduce_sum(assigned.T @ vectors)
            self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            self.codebook.copy_(self.embed_sum / self.smoothed_cluster_size().unsqueeze(1))
        if self.dead_code_threshold > 0:
            self.restart_dead_codes(vectors)

    def smoothed_cluster_size(self) -> Tensor:
        """Cluster sizes with Laplace smoothing, ``(N_k + eps) / (n + K eps) * n`` where
        ``n`` is their total: no size is zero, and the total stays ``n``."""
        total = self.cluster_size.sum()
        return (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total

    def restart_dead_codes(self, vectors: Tensor) -> None:
        """Replace every code used less than ``dead_code_threshold`` times per batch (on
        average) with a random row of ``vectors``; process 0 chooses in distributed runs."""
        dead = self.cluster_size < self.dead_code_threshold
        if not dead.any():
            return
        picks = torch.randint(len(vectors), (int(dead.sum()),), device=vectors.device)
        self.codebook[dead] = vectors[picks].to(self.codebook.dtype)
        self.cluster_size[dead] = self.dead_code_threshold
        broadcast_from_first(self.codebook.data)
        if self.ema:
            self.embed_sum.copy_(self.codebook * self.smoothed_cluster_size().unsqueeze(1))


class ResidualBlock(nn.Module):
    """ReLU, 3x3 convolution, ReLU, 1x1 convolution, added to the input (the paper's block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """Images of ``num_levels`` levels ``[B, C, H, W]``, scaled to ``[-1, 1]``, to vectors
    ``[B, code_dim, H/4, W/4]``: two stride-2 4x4 convolutions, a 3x3 convolution,
    residual blocks and a 1x1 projection."""

    def __init__(
        self,
        channels: int,
        num_levels: int,
        hidden_channels: int,
        code_dim: int,
        num_residual_blocks: int,
    ) -> None:
        super().__init__()
        self.num_levels = num_levels
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1),
            *[ResidualBlock(hidden_channels) for _ in range(num_residual_blocks)],
            nn.ReLU(),
            nn.Conv2d(hidden_channels, code_dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(scale_levels(x, self.num_levels))


class Decoder(nn.Module):
    """Codes ``[B, code_dim, h, w]`` to logits ``[B, C, K, 4h, 4w]`` of every subpixel's
    level: a 3x3 convolution, residual blocks and two stride-2 transposed convolutions
    (the encoder mirrored)."""

    def __init__(
        self,
        channels: int,
        num_levels: int,
        hidden_channels: int,
        code_dim: int,
        num_residual_blocks: int,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_levels = num_levels
        self.net = nn.Sequential(
            nn.Conv2d(code_dim, hidden_channels, 3, padding=1),
            *[ResidualBlock(hidden_channels) for _ in range(num_residual_blocks)],
            nn.ReLU(),
            nn.ConvTranspose2d(hidden_channels, hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden_channels, channels * num_levels, 4, stride=2, padding=1),
        )

    def forward(self, codes: Tensor) -> Tensor:
        logits = self.net(codes)
        batch, _, height, width = logits.shape
        return logits.view(batch, self.channels, self.num_levels, height, width)
