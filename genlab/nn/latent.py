"""Building blocks of latent-variable image models: a convolutional encoder to a code
vector, a convolutional decoder from a code to a categorical distribution over every
subpixel's level, a diagonal Gaussian posterior with its closed-form KL to the standard
normal prior (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes", appendix B),
the average of importance weights in log space (Burda et al., 2016, "Importance
Weighted Autoencoders"), a discriminator on codes (Makhzani et al., 2016, "Adversarial
Autoencoders") and the maximum mean discrepancy between two sets of codes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from genlab.nn.distributions import sample_categorical
from genlab.nn.pixelcnn import scale_levels

DOWNSAMPLING = 4  # two stride-2 convolutions: 28x28 images become 7x7 feature maps
ENCODER_HIDDEN_UNITS = 256  # between the feature map and the code, see ConvEncoder
LOG_2PI = math.log(2 * math.pi)


def check_latent_dim(latent_dim: int) -> None:
    """Reject a code size below one."""
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be at least 1, got {latent_dim}")


def feature_grid(image_shape: tuple[int, int, int]) -> tuple[int, int]:
    """(h, w) of the encoder's last feature map; stops when H or W is not divisible by 4."""
    _, height, width = image_shape
    if height % DOWNSAMPLING or width % DOWNSAMPLING:
        raise ValueError(
            f"image height and width must be divisible by {DOWNSAMPLING} for the "
            f"convolutional encoder and decoder, got image_shape {tuple(image_shape)}"
        )
    return height // DOWNSAMPLING, width // DOWNSAMPLING


def random_normal(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None = None
) -> Tensor:
    """Standard normal noise of ``shape`` on ``device``, drawn from ``generator`` on the
    generator's own device, so a seeded CPU generator gives the same numbers wherever the
    model runs."""
    noise_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=noise_device).to(device)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over the last axis."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(dim=-1)


class DiagonalGaussian(NamedTuple):
    """``N(mean, diag(exp(log_var)))`` over the last axis of ``[..., D]`` tensors."""

    mean: Tensor
    log_var: Tensor

    @classmethod
    def from_features(cls, features: Tensor) -> DiagonalGaussian:
        """The first half of the last axis is the mean, the second the log-variance; both
        in float32, so densities and KL terms stay exact when an encoder runs under
        bfloat16 autocast."""
        mean, log_var = features.float().chunk(2, dim=-1)
        return cls(mean, log_var)

    def rsample(
        self, num_samples: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Reparameterised draws ``mean + std * eps``, so gradients reach the parameters:
        one per distribution (``[..., D]``), or ``num_samples`` stacked in front."""
        shape = self.mean.shape if num_samples is None else (num_samples, *self.mean.shape)
        noise = random_normal(shape, self.mean.device, generator)
        return self.mean + (0.5 * self.log_var).exp() * noise

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of ``z`` ``[..., D]``, summed over the last axis."""
        squared = (z - self.mean).pow(2) * (-self.log_var).exp()
        return -0.5 * (squared + self.log_var + LOG_2PI).sum(dim=-1)

    def kl_to_standard_normal(self) -> Tensor:
        """``KL(N(mean, var) || N(0, I))`` in closed form, summed over the last axis."""
        return 0.5 * (self.log_var.exp() + self.mean.pow(2) - 1 - self.log_var).sum(dim=-1)


def log_mean_exp(x: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(x)))`` along ``dim`` without overflow: how importance-weighted
    estimates average their weights, which live in log space."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


def rbf_mmd2(x: Tensor, y: Tensor, bandwidth: float) -> Tensor:
    """Unbiased estimate of the squared maximum mean discrepancy between the
    distributions of the rows of ``x`` ``[N, D]`` and ``y`` ``[M, D]`` (N, M >= 2) under
    the kernel ``exp(-|a - b|^2 / (2 bandwidth^2))``. Zero in expectation when both come
    from one distribution, so small negative values happen."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"rbf_mmd2 needs at least 2 rows in each set, got {len(x)} and {len(y)}")

    def mean_kernel(a: Tensor, b: Tensor, same: bool) -> Tensor:
        kernel = torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth**2))
        if not same:
            return kernel.mean()
        return (kernel.sum() - kernel.diagonal().sum()) / (len(a) * (len(a) - 1))

    x, y = x.double(), y.double()
    return mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False)


class ConvEncoder(nn.Module):
    """Images of ``num_levels`` levels ``[B, C, H, W]``, scaled to ``[-1, 1]``, to vectors
    ``[B, out_features]``: two stride-2 4x4 convolutions (``hidden_channels``, then twice
    as many filters) and two linear layers. H and W must be multiples of 4.

    The hidden linear layer keeps the code's layer narrow: Adam moves every weight by
    about its step size, so a code computed straight from the 3,136 features of a 7x7
    map moved several units in the first few steps, far from the prior's centre."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        num_levels: int,
        hidden_channels: int,
        out_features: int,
    ) -> None:
        super().__init__()
        height, width = feature_grid(image_shape)
        self.num_levels = num_levels
        self.net = nn.Sequential(
            nn.Conv2d(image_shape[0], hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, 2 * hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * hidden_channels * height * width, ENCODER_HIDDEN_UNITS),
            nn.ReLU(),
            nn.Linear(ENCODER_HIDDEN_UNITS, out_features),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(scale_levels(x, self.num_levels))


class CategoricalDecoder(nn.Module):
    """Codes ``[B, latent_dim]`` to logits ``[B, C, K, H, W]`` of every subpixel's level,
    independent given the code: a linear layer to a ``2 * hidden_channels`` map of
    ``H/4 x W/4`` and two stride-2 4x4 transposed convolutions (the encoder mirrored)."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, int, int],
        num_levels: int,
        hidden_channels: int,
    ) -> None:
        super().__init__()
        height, width = feature_grid(image_shape)
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * hidden_channels * height * width),
            nn.ReLU(),
            nn.Unflatten(1, (2 * hidden_channels, height, width)),
            nn.ConvTranspose2d(2 * hidden_channels, hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(
                hidden_channels, image_shape[0] * num_levels, 4, stride=2, padding=1
            ),
        )

    def forward(self, z: Tensor) -> Tensor:
        channels, height, width = self.image_shape
        return self.net(z).view(len(z), channels, self.num_levels, height, width)


def levels_of(logits: Tensor, sampled: bool, generator: torch.Generator | None = None) -> Tensor:
    """Integer images ``[B, C, H, W]`` of logits ``[B, C, K, H, W]``: a draw of every
    subpixel's level when ``sampled``, else its most likely level."""
    if not sampled:
        return logits.argmax(dim=2)
    return sample_categorical(logits.movedim(2, -1), generator)


class CodeDiscriminator(nn.Module):
    """An MLP from codes ``[B, latent_dim]`` to one logit each, positive for "drawn from
    the prior", negative for "an encoded image"."""

    def __init__(self, latent_dim: int, hidden_units: int, num_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_units), nn.LeakyReLU(0.2)]
            width = hidden_units
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)
