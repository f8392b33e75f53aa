"""Gated PixelCNN (van den Oord et al., 2016, "Conditional Image Generation with PixelCNN
Decoders").

A plain PixelCNN has a blind spot: stacking masked kxk convolutions never reaches the
pixels up and to the right of the target. The gated model splits the network into two
stacks whose union covers every earlier pixel:

* the *vertical* stack sees whole rows above the target, as wide as the kernels reach;
* the *horizontal* stack sees the target's own row, left of it, and receives the
  vertical stack's features at each layer.

Causality comes from the first layer: its vertical kernel stops one row above the
centre and its horizontal kernel one pixel left of the centre. Later layers may then
include their own row and centre, since their inputs already depend on earlier pixels
only. Setting ``causal=False`` opens the first horizontal kernel's centre (an ablation:
the prediction of a pixel then reads the pixel itself, and nothing later).

Variants:

* ``"gated"``: gated activations ``tanh(a) * sigmoid(b)``, a residual 1x1 in the
  horizontal stack, vertical-to-horizontal links, dilations in the middle layers.
* ``"plain"``: ReLU layers of the two kinds of masked convolutions, no links, no gates,
  no dilation; the two stacks are added at the end. Cheaper per step. Its vertical stack
  covers the rows above and its horizontal stack the row so far, so it has no blind spot
  either, but the two only meet in the 1x1 head.

Colour channels, when there are several, are predicted independently given the
previous pixels. Outputs are logits ``[B, C, K, H, W]``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.nn.pixelcnn import scale_levels

Variant = Literal["gated", "plain"]


def stack_mask(stack: str, kernel_size: int, include_centre: bool) -> Tensor:
    """The 0/1 mask ``[k, k]`` of the taps a vertical or horizontal stack convolution
    reads, drawn on the full kxk window.

    Vertical: the rows above the centre, and the centre row too when ``include_centre``.
    Horizontal: the centre row only, left of the centre, plus the centre when
    ``include_centre``.
    """
    centre = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    if stack == "vertical":
        mask[: centre + int(include_centre), :] = 1
    elif stack == "horizontal":
        mask[centre, : centre + int(include_centre)] = 1
    else:
        raise ValueError(f"stack must be 'vertical' or 'horizontal', got {stack!r}")
    return mask


class StackConv2d(nn.Conv2d):
    """A same-size, optionally dilated convolution over one stack's taps of a kxk window,
    holding only those taps: a ``(k//2 [+1]) x k`` kernel over the rows above (vertical)
    or a ``1 x (k//2 [+1])`` kernel over the pixels to the left (horizontal), the ``+1``
    when the centre is included. The input is padded so that the kernel's last tap falls
    on the centre, or one step before it. Computing every tap of a kxk kernel and masking
    most of them to zero gives the same outputs with up to k times the work and
    parameters (``stack_mask`` draws the taps on the full window)."""

    def __init__(
        self,
        stack: str,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        include_centre: bool,
        dilation: int = 1,
    ) -> None:
        if kernel_size % 2 != 1 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and at least 3, got {kernel_size}")
        if stack not in ("vertical", "horizontal"):
            raise ValueError(f"stack must be 'vertical' or 'horizontal', got {stack!r}")
        centre = kernel_size // 2
        reach = centre + int(include_centre)
        shape = (reach, kernel_size) if stack == "vertical" else (1, reach)
        super().__init__(in_channels, out_channels, shape, dilation=dilation)
        self.stack = stack
        self.window = kernel_size
        last = 0 if include_centre else -dilation  # where the last tap falls: centre or before
        side = dilation * centre
        # F.pad order: left, right, top, bottom; a negative pad crops.
        self.pads = (side, side, side, last) if stack == "vertical" else (side, last, 0, 0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pads))

    def taps_of(self, weight: Tensor) -> Tensor:
        """``weight`` as this layer holds it: unchanged when it already has the layer's
        shape, cut down to the layer's taps when it is a full ``[out, in, k, k]`` kernel
        (the layout of checkpoints written before the layers held only their taps)."""
        if tuple(weight.shape[-2:]) != (self.window, self.window):
            return weight
        rows, cols = self.kernel_size
        centre = self.window // 2
        if self.stack == "vertical":
            return weight[..., :rows, :].clone()
        return weight[..., centre : centre + 1, :cols].clone()

    def extra_repr(self) -> str:
        return f"stack={self.stack}, window={self.window}, " + super().extra_repr()


def gate(x: Tensor) -> Tensor:
    """``tanh`` of the first half of the channels times ``sigmoid`` of the second."""
    values, gates = x.chunk(2, dim=1)
    return torch.tanh(values) * torch.sigmoid(gates)


class GatedLayer(nn.Module):
    """One gated layer of both stacks.

    The vertical features feed the horizontal stack through a 1x1 convolution; this is
    safe because vertical features at a pixel already depend on rows above only. The
    horizontal stack is residual except in the first layer, whose input is the image.
    ``first`` closes the centre of both kernels; ``causal=False`` reopens the
    horizontal one (the ablation).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int,
        dilation: int,
        first: bool,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.residual = not first
        self.vertical = StackConv2d(
            "vertical", in_channels, 2 * channels, kernel_size, not first, dilation
        )
        self.horizontal = StackConv2d(
            "horizontal", in_channels, 2 * channels, kernel_size, not first or not causal, dilation
        )
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_pre)
        h_out = self.horizontal_out(gate(h_pre))
        return gate(v_pre), h + h_out if self.residual else h_out


class PlainLayer(nn.Module):
    """One ReLU layer of each stack, with no exchange between the stacks."""

    def __init__(
        self, in_channels: int, channels: int, kernel_size: int, first: bool, causal: bool = True
    ) -> None:
        super().__init__()
        self.vertical = StackConv2d("vertical", in_channels, channels, kernel_size, not first)
        self.horizontal = StackConv2d(
            "horizontal", in_channels, channels, kernel_size, not first or not causal
        )

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.vertical(v).relu(), self.horizontal(h).relu()


def middle_dilations(num_layers: int, dilations: tuple[int, ...]) -> list[int]:
    """Dilation of each layer: 1 for the first and last, ``dilations`` cycled between."""
    return [
        1 if index in (0, num_layers - 1) else dilations[(index - 1) % len(dilations)]
        for index in range(num_layers)
    ]


class GatedPixelCNNNet(nn.Module):
    """Two-stack causal network from integer images ``[B, C, H, W]`` to logits
    ``[B, C, K, H, W]``."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        num_levels: int,
        variant: Variant = "gated",
        hidden_channels: int = 64,
        num_layers: int = 8,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 1, 4),
        causal: bool = True,
    ) -> None:
        super().__init__()
        if variant not in ("gated", "plain"):
            raise ValueError(f"variant must be 'gated' or 'plain', got {variant!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        channels = image_shape[0]
        self.image_shape = tuple(image_shape)
        self.num_levels = num_levels
        self.variant = variant
        self.layers = nn.ModuleList()
        for index, dilation in enumerate(middle_dilations(num_layers, tuple(dilations))):
            first = index == 0
            in_channels = channels if first else hidden_channels
            if variant == "gated":
                layer = GatedLayer(
                    in_channels, hidden_channels, kernel_size, dilation, first, causal
                )
            else:
                layer = PlainLayer(in_channels, hidden_channels, kernel_size, first, causal)
            self.layers.append(layer)
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, channels * num_levels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        scaled = scale_levels(x, self.num_levels)
        vertical, horizontal = scaled, scaled
        for layer in self.layers:
            vertical, horizontal = layer(vertical, horizontal)
        features = horizontal + vertical if self.variant == "plain" else horizontal
        return self.head(features).view(b, c, self.num_levels, h, w)
