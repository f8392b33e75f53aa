"""PixelCNN networks (van den Oord et al., 2016, "Pixel Recurrent Neural Networks",
and "Conditional Image Generation with PixelCNN Decoders").

Two bodies share one input and output convention:

* ``"plain"``: the course architecture for binary images: a 7x7 mask-A convolution,
  ``num_layers`` mask-B convolutions of ``kernel_size``, then two 1x1 mask-B
  convolutions, ReLU in between.
* ``"residual"``: for colour images: a 7x7 mask-A convolution, ``num_layers`` residual
  blocks of masked convolutions with a causality-preserving layer norm, and the same
  1x1 head.

``color_mode="independent"`` predicts every channel of a pixel from previous pixels
only; ``"autoregressive"`` also conditions G on R and B on R and G through channel-group
masks. Outputs are logits ``[B, C, K, H, W]``.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from genlab.nn.masked_conv import GroupedChannelNorm, MaskedConv2d

ColorMode = Literal["independent", "autoregressive"]
Architecture = Literal["plain", "residual"]


class ResidualBlock(nn.Module):
    """Norm, ReLU, masked kxk convolution, ReLU, masked 1x1 convolution, plus the input."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.norm = GroupedChannelNorm(channels, groups)
        self.conv = MaskedConv2d("B", channels, channels, kernel_size, groups)
        self.mix = MaskedConv2d("B", channels, channels, 1, groups)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(self.norm(x).relu())
        return x + self.mix(h.relu())


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
    ) -> None:
        super().__init__()
        if color_mode not in ("independent", "autoregressive"):
            raise ValueError(
                f"color_mode must be 'independent' or 'autoregressive', got {color_mode!r}"
            )
        if architecture not in ("plain", "residual"):
            raise ValueError(f"architecture must be 'plain' or 'residual', got {architecture!r}")
        channels = image_shape[0]
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        groups = channels if color_mode == "autoregressive" else 1
        stem = MaskedConv2d("A", channels, hidden_channels, 7, groups)
        if architecture == "plain":
            body = [nn.ReLU()]
            for _ in range(num_layers):
                body += [MaskedConv2d("B", hidden_channels, hidden_channels, kernel_size, groups)]
                body += [nn.ReLU()]
        else:
            body = [ResidualBlock(hidden_channels, kernel_size, groups) for _ in range(num_layers)]
            body += [GroupedChannelNorm(hidden_channels, groups), nn.ReLU()]
        head = [
            MaskedConv2d("B", hidden_channels, hidden_channels, 1, groups),
            nn.ReLU(),
            MaskedConv2d("B", hidden_channels, channels * num_levels, 1, groups),
        ]
        self.layers = nn.Sequential(stem, *body, *head)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, C, K, H, W]`` for integer images ``[B, C, H, W]`` in ``0..K-1``."""
        b, c, h, w = x.shape
        scaled = x.float() * (2.0 / (self.num_levels - 1)) - 1.0
        return self.layers(scaled).view(b, c, self.num_levels, h, w)
