"""PixelCNN networks (van den Oord et al., 2016, "Pixel Recurrent Neural Networks",
and "Conditional Image Generation with PixelCNN Decoders").

A network is a causal trunk, which turns an image into per-position features that
depend only on earlier subpixels, and a head, which turns features into logits.

Trunks:

* ``"plain"``: the course architecture for binary images: a 7x7 mask-A convolution and
  ``num_layers`` mask-B convolutions of ``kernel_size``, ReLU in between.
* ``"residual"``: for colour images: a 7x7 mask-A convolution and ``num_layers``
  residual blocks (masked 1x1 down to half width, kxk, 1x1 back up, as in the paper),
  each behind a causality-preserving layer norm.

Colour modes:

* ``"independent"``: every channel of a pixel is predicted from previous pixels only;
  the head is two 1x1 convolutions.
* ``"autoregressive"``: channel-group masks in every layer let G see R and B see R and G
  of the same pixel; the head is two grouped 1x1 convolutions.
* ``"made"``: the trunk sees previous pixels only, and a MADE over the channels of the
  current pixel, conditioned on the trunk's feature there, models R, then G given R,
  then B given R and G. The channels' dependence lives in a small MLP instead of being
  threaded through every layer.

Outputs are logits ``[B, C, K, H, W]``.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from genlab.nn.made import MADENet
from genlab.nn.masked_conv import GroupedChannelNorm, MaskedConv2d

ColorMode = Literal["independent", "autoregressive", "made"]
Architecture = Literal["plain", "residual"]


def scale_levels(x: Tensor, num_levels: int) -> Tensor:
    """Levels ``0..K-1`` (integers, or floats for image gradients) mapped to ``[-1, 1]``,
    the input scale of the convolutional image models."""
    return x.float() * (2.0 / (num_levels - 1)) - 1.0


class ResidualBlock(nn.Module):
    """Norm, then masked 1x1 to half width, kxk, 1x1 back to full width (ReLU before
    each), added to the input."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        half = channels // 2
        self.norm = GroupedChannelNorm(channels, groups)
        self.down = MaskedConv2d("B", channels, half, 1, groups)
        self.conv = MaskedConv2d("B", half, half, kernel_size, groups)
        self.up = MaskedConv2d("B", half, channels, 1, groups)

    def forward(self, x: Tensor) -> Tensor:
        h = self.down(self.norm(x).relu())
        h = self.conv(h.relu())
        return x + self.up(h.relu())


def causal_trunk(
    channels: int,
    architecture: Architecture,
    hidden_channels: int,
    num_layers: int,
    kernel_size: int,
    groups: int,
) -> nn.Sequential:
    """Image to features ``[B, hidden_channels, H, W]``, each a function of earlier
    subpixels only, ending in a ReLU."""
    stem = MaskedConv2d("A", channels, hidden_channels, 7, groups)
    if architecture == "plain":
        body: list[nn.Module] = [nn.ReLU()]
        for _ in range(num_layers):
            body += [MaskedConv2d("B", hidden_channels, hidden_channels, kernel_size, groups)]
            body += [nn.ReLU()]
    else:
        body = [ResidualBlock(hidden_channels, kernel_size, groups) for _ in range(num_layers)]
        body += [GroupedChannelNorm(hidden_channels, groups), nn.ReLU()]
    return nn.Sequential(stem, *body)


class PixelCNNNet(nn.Module):
    """A causal convolutional network from integer images to per-subpixel logits."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        num_levels: int,
        color_mode: ColorMode = "independent",
        architecture: Architecture = "plain",
        hidden_channels: int = 64,
        num_layers: int = 5,
        kernel_size: int = 7,
        made_hidden_units: tuple[int, ...] = (128,),
    ) -> None:
        super().__init__()
        if color_mode not in ("independent", "autoregressive", "made"):
            raise ValueError(
                f"color_mode must be 'independent', 'autoregressive' or 'made', got {color_mode!r}"
            )
        if architecture not in ("plain", "residual"):
            raise ValueError(f"architecture must be 'plain' or 'residual', got {architecture!r}")
        channels = image_shape[0]
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        self.color_mode = color_mode
        groups = channels if color_mode == "autoregressive" else 1
        self.trunk = causal_trunk(
            channels, architecture, hidden_channels, num_layers, kernel_size, groups
        )
        if color_mode == "made":
            self.head = MADENet(
                channels, num_levels, tuple(made_hidden_units), context_features=hidden_channels
            )
        else:
            self.head = nn.Sequential(
                MaskedConv2d("B", hidden_channels, hidden_channels, 1, groups),
                nn.ReLU(),
                MaskedConv2d("B", hidden_channels, channels * num_levels, 1, groups),
            )

    def features(self, x: Tensor) -> Tensor:
        """Trunk features ``[B, F, H, W]`` of integer (or float) levels ``[B, C, H, W]``."""
        return self.trunk(scale_levels(x, self.num_levels))

    def pixel_logits(self, pixels: Tensor, features: Tensor) -> Tensor:
        """MADE head only: logits ``[N, C, K]`` of N pixels ``[N, C]`` given their trunk
        features ``[N, F]``; channel c's logits depend on channels before c only."""
        return self.head(pixels, context=features)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, C, K, H, W]`` for integer images ``[B, C, H, W]`` in ``0..K-1``."""
        b, c, h, w = x.shape
        features = self.features(x)
        if self.color_mode != "made":
            return self.head(features).view(b, c, self.num_levels, h, w)
        pixels = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
        per_pixel = features.permute(0, 2, 3, 1).reshape(b * h * w, -1)
        logits = self.pixel_logits(pixels, per_pixel)
        return logits.view(b, h, w, c, self.num_levels).permute(0, 3, 4, 1, 2)
