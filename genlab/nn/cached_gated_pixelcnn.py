"""Cached Gated PixelCNN sampling: each layer of both stacks computed once per position,
as generation reaches it.

The naive sampler runs the whole network for every pixel it draws. The two stacks make
caching simple, because they split what a position reads along the raster order:

* the *vertical* stack's features at row ``r`` read only rows above ``r`` of the image
  (the first layer's kernel stops one row up; later layers read their input's own row,
  itself a function of earlier rows). So once row ``r - 1`` is drawn, every vertical
  layer is computed for the whole of row ``r`` at once: one convolution over the few
  buffered rows its (dilated) kernel spans, written where the next layer reads it;
* the *horizontal* stack's features at ``(r, c)`` read the row so far, left of ``c``,
  and the vertical features at ``(r, c)``. Per position and layer that is one small
  matrix product for each of the ``k//2 + 1`` taps of a row buffer (spaced by the
  dilation), plus the vertical-to-horizontal link already computed for the row, the
  gate and the output 1x1 product, written into the next layer's row buffer.

The image costs about one forward pass, spread over its pixels. Buffers hold the input
of every layer, zero-padded as the convolutions pad it, so every tap reads what a full
pass would read; the not-yet-drawn pixels of the first layer hold level 0, as in the
naive sampler (only the non-causal ablation reads one: its own).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from genlab.nn.distributions import sample_categorical
from genlab.nn.gated_pixelcnn import GatedLayer, GatedPixelCNNNet, StackConv2d, gate
from genlab.nn.modes import full_precision
from genlab.nn.pixelcnn import scale_levels
from genlab.nn.sampling import (
    image_logits,
    kept_after,
    pass_span,
    position_major_logits,
)


def pointwise(conv: torch.nn.Conv2d) -> tuple[Tensor, Tensor]:
    """A 1x1 convolution's weight ``[out, in]`` and bias, to apply to vectors."""
    return conv.weight.flatten(1), conv.bias


class CachedLayer:
    """One layer of both stacks with its input buffers.

    ``vertical_in`` ``[B, C, H + side, W + 2 side]`` holds the vertical input, padded as
    the vertical convolution pads it; ``horizontal_in`` ``[W + side, B, C]`` holds the
    current row of the horizontal input, padded on the left and position-major, so that
    each tap of a position is one contiguous ``[B, C]`` block.
    """

    def __init__(self, layer, in_channels: int, batch: int, height: int, width: int, like):
        self.layer = layer
        self.gated = isinstance(layer, GatedLayer)
        self.vertical: StackConv2d = layer.vertical
        horizontal: StackConv2d = layer.horizontal
        self.side = self.vertical.pads[0]
        self.dilation = horizontal.dilation[1]
        self.taps_weights = horizontal.weight[:, :, 0, :].permute(2, 1, 0).contiguous()
        self.taps_bias = horizontal.bias
        if self.gated:
            self.link = pointwise(layer.vertical_to_horizontal)
            self.out_weight = layer.horizontal_out.weight.flatten(1).t()
            self.out_bias = layer.horizontal_out.bias
        padded = (batch, in_channels, height + self.side, width + 2 * self.side)
        self.vertical_in = like.new_zeros(padded)
        self.horizontal_in = like.new_zeros(width + self.side, batch, in_channels)
        self.row_part: Tensor | None = None

    def vertical_pass(self, row: int) -> Tensor:
        """The vertical stack's output ``[B, C', W]`` at ``row``, from buffered rows above
        it (and its own row of the input, for layers past the first). Also keeps the
        part of every horizontal pre-activation of the row that does not depend on the
        row itself, ``[W, B, C']``: the biases, and for the gated layer the vertical
        link."""
        rows = self.vertical.kernel_size[0]
        span = self.vertical.dilation[0] * (rows - 1) + 1
        window = self.vertical_in[:, :, row : row + span]
        pre = F.conv2d(
            window, self.vertical.weight, self.vertical.bias, dilation=self.vertical.dilation
        )[:, :, 0]
        if not self.gated:
            self.row_part = self.taps_bias.expand(pre.shape[-1], *pre.shape[:1], -1)
            return pre.relu()
        bias = self.link[1] + self.taps_bias
        self.row_part = torch.einsum("oc,bcw->wbo", self.link[0], pre) + bias
        return gate(pre)

    def horizontal_at(self, col: int) -> Tensor:
        """The horizontal stack's output ``[B, C']`` at ``col`` of the current row."""
        pre = self.row_part[col]
        for tap, weight in enumerate(self.taps_weights):
            pre = torch.addmm(pre, self.horizontal_in[col + tap * self.dilation], weight)
        if not self.gated:
            return pre.relu()
        out = torch.addmm(self.out_bias, gate(pre), self.out_weight)
        if self.layer.residual:
            return self.horizontal_in[col + self.side] + out
        return out


class CachedGatedPixelCNN:
    """Buffers and per-position computation of a ``GatedPixelCNNNet`` for ``batch``
    images; ``start_row`` then ``logits`` and ``write`` for each column in turn."""

    def __init__(self, net: GatedPixelCNNNet, batch: int) -> None:
        channels, height, width = net.image_shape
        self.net = net
        like = net.head[1].weight
        self.images = torch.zeros(
            batch, channels, height, width, dtype=torch.long, device=like.device
        )
        self.layers = []
        for index, layer in enumerate(net.layers):
            in_channels = channels if index == 0 else layer.vertical.in_channels
            self.layers.append(CachedLayer(layer, in_channels, batch, height, width, like))
        first = self.layers[0]
        blank = scale_levels(torch.zeros((), device=like.device), net.num_levels)
        first.vertical_in[:, :, first.side :, first.side : first.side + width] = blank
        self.head = [pointwise(net.head[1]), pointwise(net.head[3])]

    def start_row(self, row: int) -> None:
        """Compute every vertical layer for ``row`` and reset the horizontal row buffers
        of the first layer to the row's undrawn image (level 0)."""
        for index, cached in enumerate(self.layers):
            out = cached.vertical_pass(row)
            if index + 1 < len(self.layers):
                following = self.layers[index + 1]
                columns = slice(following.side, following.side + out.shape[-1])
                following.vertical_in[:, :, row + following.side, columns] = out
            elif not cached.gated:
                self.last_vertical = out
        first = self.layers[0]
        image_row = first.vertical_in[:, :, row + first.side, first.side : -first.side]
        first.horizontal_in[first.side :] = image_row.permute(2, 0, 1)

    def logits(self, col: int) -> Tensor:
        """Logits ``[B, C, K]`` of the pixel at ``col`` of the current row."""
        features = None
        for index, cached in enumerate(self.layers):
            features = cached.horizontal_at(col)
            if index + 1 < len(self.layers):
                following = self.layers[index + 1]
                following.horizontal_in[col + following.side] = features
        if not self.layers[-1].gated:
            features = features + self.last_vertical[:, :, col]
        hidden = F.linear(features.relu(), *self.head[0]).relu()
        batch = features.shape[0]
        return F.linear(hidden, *self.head[1]).view(batch, -1, self.net.num_levels)

    def write(self, row: int, col: int, levels: Tensor) -> None:
        """Put the drawn levels ``[B, C]`` of ``(row, col)`` where later positions read
        them: the image, and the first layer's vertical and horizontal buffers."""
        self.images[:, :, row, col] = levels
        first = self.layers[0]
        scaled = scale_levels(levels, self.net.num_levels)
        first.vertical_in[:, :, row + first.side, col + first.side] = scaled
        first.horizontal_in[col + first.side] = scaled


def sample_cached_gated(
    net: GatedPixelCNNNet,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    given: Tensor | None = None,
    drawn: range | None = None,
    return_logits: bool = False,
    stop: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Exact ancestral samples from ``net`` in raster order, every layer computed once
    per position; the same draws, uniform for uniform, as ``sample_raster`` (all channels
    of a pixel at once). ``given`` replays existing images ``[B, C, H, W]`` instead of
    drawing, except at the raster positions in ``drawn``, which are drawn given
    everything before them (pixels after ``drawn`` keep their values). ``return_logits``
    also returns the logits ``[B, C, K, H, W]`` of every position, which equal one full
    forward pass of the returned images. The pass ends before raster position ``stop``
    (by default after the last drawn position, or at the end of the image with
    ``return_logits``); logits from there on are zero. Computed in float32 without
    autograd, on the device of ``net``."""
    device = next(net.parameters()).device
    with torch.inference_mode(), full_precision(device):
        images, logits = draw(net, num_samples, generator, given, drawn, return_logits, stop)
    if return_logits:
        return images.clone(), logits.clone()
    return images.clone()


def draw(
    net: GatedPixelCNNNet,
    num_samples: int,
    generator: torch.Generator | None,
    given: Tensor | None,
    drawn: range | None,
    return_logits: bool,
    stop: int | None,
) -> tuple[Tensor, Tensor | None]:
    """The body of ``sample_cached_gated``."""
    channels, height, width = net.image_shape
    num_samples = len(given) if given is not None else num_samples
    drawn, stop = pass_span(given, drawn, return_logits, stop, height * width)
    state = CachedGatedPixelCNN(net, num_samples)
    logits = None
    if return_logits:
        shape = (num_samples, channels, net.num_levels)
        logits = position_major_logits(state.head[1][0], height * width, stop, shape)
    for index in range(stop):
        row, col = divmod(index, width)
        if col == 0:
            state.start_row(row)
        step = state.logits(col)
        if logits is not None:
            logits[index] = step
        levels = sample_categorical(step, generator) if index in drawn else given[..., row, col]
        state.write(row, col, levels)
    if logits is not None:
        logits = image_logits(logits, height, width)
    return kept_after(state.images, given, stop), logits
