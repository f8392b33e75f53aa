"""Masked convolutions for autoregressive image models (van den Oord et al., 2016,
"Pixel Recurrent Neural Networks", section 3.4).

A PixelCNN predicts each subpixel from the subpixels before it in raster order
(rows top to bottom, columns left to right, and within a pixel the colour channels
in order R, G, B). A convolution respects that order when its kernel is zero on
every tap that would read a later position:

* the rows below the centre and the taps right of the centre are always cut;
* at the centre tap itself, *mask A* (first layer) lets an output see only inputs of
  strictly earlier channel groups, and *mask B* (later layers) also lets it see its own
  group, because the features of its own group are already functions of earlier data.

Channels are split into ``groups`` contiguous blocks (one per colour channel). With
``groups=1`` the centre tap is closed by mask A and fully open under mask B, which is
the right rule when the colour channels of a pixel are predicted independently.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

MaskType = Literal["A", "B"]


def channel_groups(num_channels: int, groups: int) -> Tensor:
    """The group index of each channel when ``num_channels`` are split into ``groups``
    contiguous, as equal as possible blocks (channel i belongs to floor(i * groups / n))."""
    return torch.arange(num_channels) * groups // num_channels


def causal_mask(
    mask_type: MaskType, in_channels: int, out_channels: int, kernel_size: int, groups: int = 1
) -> Tensor:
    """The 0/1 mask of shape ``[out, in, k, k]`` for a raster-order causal convolution."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd so the kernel has a centre, got {kernel_size}")
    centre = kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, kernel_size, kernel_size)
    mask[:, :, :centre, :] = 1
    mask[:, :, centre, :centre] = 1
    out_group = channel_groups(out_channels, groups)[:, None]
    in_group = channel_groups(in_channels, groups)[None, :]
    centre_open = in_group < out_group if mask_type == "A" else in_group <= out_group
    mask[:, :, centre, centre] = centre_open.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A same-padded 2D convolution whose kernel is multiplied by a causal mask on
    every call, so the masked taps stay zero whatever the optimiser does."""

    def __init__(
        self,
        mask_type: MaskType,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.mask_type = mask_type
        self.color_groups = groups
        mask = causal_mask(mask_type, in_channels, out_channels, kernel_size, groups)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return f"mask={self.mask_type}, color_groups={self.color_groups}, " + super().extra_repr()


class GroupedChannelNorm(nn.Module):
    """Layer norm over the channels of each position, computed separately inside each
    channel group.

    A plain layer norm over all channels would mix the statistics of later colour
    groups into earlier ones and leak the current pixel's later channels into the
    prediction of its earlier ones; normalising within a group keeps causality.
    No statistic crosses positions, so no future pixel leaks either.
    """

    def __init__(self, num_channels: int, groups: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        if num_channels % groups != 0:
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by groups ({groups}) "
                "for a group-wise layer norm"
            )
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        grouped = x.view(b, self.groups, c // self.groups, h, w)
        mean = grouped.mean(dim=2, keepdim=True)
        var = grouped.var(dim=2, keepdim=True, unbiased=False)
        normed = ((grouped - mean) / torch.sqrt(var + self.eps)).view(b, c, h, w)
        return normed * self.weight[:, None, None] + self.bias[:, None, None]
