"""Cached PixelCNN sampling: each layer computed once per position, as generation
reaches it.

The naive sampler runs the whole network for every subpixel it draws, although the
only new values a step needs are those at the position being generated. A causal
convolution's output at ``(r, c)`` reads its input in a window of the rows at or above
``r`` (the rows below are masked away: a 7x7 mask-B kernel has only its top four rows
non-zero). Every value in that window belongs to an earlier position, or to the current
one, and is final once computed. So this sampler keeps each kxk convolution's input in
a zero-padded buffer ``[B, H + p, W + 2p, C]`` (channels last, padding ``p = k // 2``
above and on both sides, which is what the convolution's zero padding reads) and splits
its output at ``(r, c)`` in two parts:

* the rows above ``r`` are final once row ``r`` starts, so their part (with the bias)
  is computed for the whole row at once, over ``p`` buffer rows, and written where the
  next layer reads its input;
* the current row's taps, left of and at ``c``, are one contiguous stretch of each
  example's buffer; their part is one small matrix product per position, with the
  weights of those taps flattened once, added in place to the known part.

Per position and layer that is two calls (the product and the ReLU); every view they
use is made once per row. At batch 1 the cost of sampling is the number of such calls.

Pointwise layers (1x1 convolutions, norms, ReLUs) need no buffer. The whole image
costs what one forward pass costs, spread over its pixels.

With channel-group masks (colour channels predicted R, then G given R, then B given R
and G) every layer's output channels are split into groups, one per colour channel, and
the pass that draws channel ``g`` computes only group ``g`` of every layer at the current
position: the masks guarantee it reads groups ``<= g`` there, which earlier passes have
filled in. Nothing is computed twice.
"""

from __future__ import annotations

from itertools import accumulate

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.nn.distributions import sample_categorical
from genlab.nn.masked_conv import GroupedChannelNorm, MaskedConv2d, channel_groups
from genlab.nn.modes import full_precision
from genlab.nn.pixelcnn import PixelCNNNet, ResidualBlock, scale_levels
from genlab.nn.sampling import (
    image_logits,
    kept_after,
    pass_span,
    position_major_logits,
)

# From this batch size on, the rows-above part of a row is a convolution; below it, one
# matrix product over gathered windows, faster for few images on a CPU.
CONVOLVE_FROM_BATCH = 8


def group_slices(num_channels: int, groups: int) -> list[slice]:
    """The contiguous channel range of each of ``groups`` channel groups."""
    sizes = torch.bincount(channel_groups(num_channels, groups), minlength=groups).tolist()
    return [slice(end - size, end) for size, end in zip(sizes, accumulate(sizes), strict=True)]


class PixelVector:
    """The values of one layer at the current position, ``[B, C]``, filled one channel
    group per pass. With a single group a pass computes the whole vector, which is then
    used as it is; with several, the groups of earlier passes are kept beside it."""

    def __init__(self, batch: int, channels: int, groups: int, like: Tensor) -> None:
        self.slices = group_slices(channels, groups)
        self.whole = groups == 1
        self.values = like.new_zeros(batch, channels)

    def fill(self, group: int, values: Tensor) -> Tensor:
        if self.whole:
            return values
        self.values[:, self.slices[group]] = values
        return self.values


class CachedConv:
    """A masked convolution evaluated at one position at a time.

    A kxk convolution (k > 1) owns the buffer its input is written into: by the
    convolution before it (``feeds``), by the sampler (the first layer, whose input is
    the image being drawn), or by itself from the vector it is given. A convolution that
    feeds another writes, when a row starts, the part of every output of that row that
    is already known (bias and rows above) into the next buffer, and adds the current
    row's part in place at each position; columns not reached yet hold that partial sum,
    which nothing reads before it is complete.
    """

    def __init__(self, conv: MaskedConv2d, batch: int, height: int, width: int, relu: bool):
        weight = (conv.weight * conv.mask).detach()
        out_channels, in_channels, k, _ = weight.shape
        self.pad, self.relu, self.in_channels = k // 2, relu, in_channels
        self.width = width
        current_row = weight[:, :, self.pad, : self.pad + 1]
        flat = current_row.permute(0, 2, 1).reshape(out_channels, -1).t()
        self.out = PixelVector(batch, out_channels, conv.color_groups, weight)
        self.in_slices = group_slices(in_channels, conv.color_groups)
        self.weights = [flat[:, s].contiguous() for s in self.out.slices]
        self.bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(out_channels)
        self.biases = [self.bias[s].contiguous() for s in self.out.slices]
        self.feeds: CachedConv | None = None
        self.input_written = False
        self.buffer = None
        if k > 1:
            self.rows_above = weight[:, :, : self.pad, :].contiguous()
            self.rows_above_flat = self.rows_above.permute(2, 3, 1, 0).reshape(-1, out_channels)
            self.buffer = weight.new_zeros(
                batch, height + self.pad, width + 2 * self.pad, in_channels
            )
            self.flat = self.buffer.view(batch, -1)
            self.row_length = self.buffer.shape[2] * in_channels
            self.window_size = (self.pad + 1) * in_channels

    def row_inputs(self, row: int) -> Tensor:
        """``[B, W, C_in]``: the buffer's entries for the positions of ``row``."""
        return self.buffer[:, row + self.pad, self.pad : self.pad + self.width]

    def start_row(self, row: int) -> None:
        """Views of ``row``'s inputs, windows and outputs, one per column, and the part
        of each output that the rows above (and the bias) give: ``[B, out]`` per column."""
        known = None
        if self.buffer is not None:
            known = self.from_rows_above(row)
            if not self.input_written:
                self.inputs = self.row_inputs(row).unbind(1)
            first = (row + self.pad) * self.row_length
            shape = (self.width, self.flat.shape[0], self.window_size)
            strides = (self.in_channels, self.flat.stride(0), 1)
            self.windows = self.flat.as_strided(shape, strides, first).unbind(0)
        if self.feeds is not None:
            outputs = self.feeds.row_inputs(row)
            outputs.copy_(self.bias if known is None else known)
            self.outputs = outputs.unbind(1)
        elif known is not None:
            self.known = known.contiguous().unbind(1)

    def from_rows_above(self, row: int) -> Tensor:
        """``[B, W, out]``: bias plus the taps on the ``pad`` rows above ``row``. Small
        batches gather every column's window (overlapping views of the buffer) into one
        matrix product; larger ones run a convolution, faster there."""
        rows = self.buffer[:, row : row + self.pad]
        batch, _, _, channels = rows.shape
        if batch >= CONVOLVE_FROM_BATCH:
            above = F.conv2d(rows.permute(0, 3, 1, 2), self.rows_above, self.bias)
            return above[:, :, 0].transpose(1, 2)
        k = 2 * self.pad + 1
        batch_stride, row_stride = rows.stride()[:2]
        windows = rows.as_strided(
            (batch, self.width, self.pad, k, channels),
            (batch_stride, channels, row_stride, channels, 1),
        )
        gathered = windows.reshape(batch * self.width, -1)
        return torch.addmm(self.bias, gathered, self.rows_above_flat).view(batch, self.width, -1)

    def __call__(self, x: Tensor | None, row: int, col: int, group: int) -> Tensor:
        if self.buffer is None:
            inputs = x
        else:
            if not self.input_written:
                s = self.in_slices[group]
                self.inputs[col][:, s] = x[:, s]
            inputs = self.windows[col]
        if self.feeds is not None:
            y = self.outputs[col]
            if not self.out.whole:
                y = y[:, self.out.slices[group]]
            y.addmm_(inputs, self.weights[group])
        else:
            if self.buffer is None:
                base = self.biases[group]
            else:
                base = self.known[col]
                if not self.out.whole:
                    base = base[:, self.out.slices[group]]
            y = torch.addmm(base, inputs, self.weights[group])
        if self.relu:
            y.relu_()
        return y if self.feeds is not None else self.out.fill(group, y)


class CachedNorm:
    """``GroupedChannelNorm`` at one position, one channel group per pass, optionally
    followed by a ReLU."""

    feeds = None

    def __init__(self, norm: GroupedChannelNorm, batch: int, relu: bool) -> None:
        channels = norm.weight.shape[0]
        self.out = PixelVector(batch, channels, norm.groups, norm.weight.detach())
        self.eps, self.relu = norm.eps, relu
        self.weights = [norm.weight.detach()[s] for s in self.out.slices]
        self.biases = [norm.bias.detach()[s] for s in self.out.slices]

    def start_row(self, row: int) -> None:
        """Nothing to prepare: a norm reads the current position only."""

    def __call__(self, x: Tensor, row: int, col: int, group: int) -> Tensor:
        s = self.out.slices[group]
        values = x[:, s]
        mean = values.mean(dim=1, keepdim=True)
        var = values.var(dim=1, keepdim=True, unbiased=False)
        y = (values - mean) / torch.sqrt(var + self.eps) * self.weights[group] + self.biases[group]
        if self.relu:
            y.relu_()
        return self.out.fill(group, y)


class CachedResidual:
    """``ResidualBlock`` at one position: norm, 1x1 down, kxk, 1x1 up, plus the input."""

    feeds = None

    def __init__(self, block: ResidualBlock, batch: int, height: int, width: int) -> None:
        self.layers = chained(
            [
                CachedNorm(block.norm, batch, relu=True),
                CachedConv(block.down, batch, height, width, relu=True),
                CachedConv(block.conv, batch, height, width, relu=True),
                CachedConv(block.up, batch, height, width, relu=False),
            ]
        )
        up = block.up
        self.out = PixelVector(batch, up.out_channels, up.color_groups, up.weight.detach())

    def start_row(self, row: int) -> None:
        for layer in self.layers:
            layer.start_row(row)

    def __call__(self, x: Tensor, row: int, col: int, group: int) -> Tensor:
        h = x
        for layer in self.layers:
            h = layer(h, row, col, group)
        s = self.out.slices[group]
        return self.out.fill(group, x[:, s] + h[:, s])


def chained(layers: list) -> list:
    """``layers``, each convolution that is followed by a kxk one set to write its output
    straight into that one's buffer."""
    for layer, after in zip(layers, layers[1:], strict=False):
        if (
            isinstance(layer, CachedConv)
            and isinstance(after, CachedConv)
            and after.buffer is not None
        ):
            layer.feeds, after.input_written = after, True
    return layers


def cached_layers(modules: nn.Sequential, batch: int, height: int, width: int) -> list:
    """The per-position counterparts of a trunk's or head's layers, each ReLU folded into
    the convolution or norm before it."""
    children = list(modules)
    layers: list = []
    i = 0
    while i < len(children):
        module = children[i]
        relu = i + 1 < len(children) and isinstance(children[i + 1], nn.ReLU)
        if isinstance(module, MaskedConv2d):
            layers.append(CachedConv(module, batch, height, width, relu))
        elif isinstance(module, GroupedChannelNorm):
            layers.append(CachedNorm(module, batch, relu))
        elif isinstance(module, ResidualBlock):
            layers.append(CachedResidual(module, batch, height, width))
            relu = False
        else:
            raise TypeError(f"cached sampling has no per-position form of {module}")
        i += 2 if relu else 1
    return chained(layers)


class CachedPixelCNN:
    """A ``PixelCNNNet`` evaluated one position (and channel group) at a time over a
    batch of images that is being generated in raster order. The first layer's buffer
    holds the image on the network's [-1, 1] input scale."""

    def __init__(self, net: PixelCNNNet, batch: int) -> None:
        channels, height, width = net.image_shape
        self.trunk = cached_layers(net.trunk, batch, height, width)
        self.head = (
            [] if net.color_mode == "made" else cached_layers(net.head, batch, height, width)
        )
        self.first = self.trunk[0]
        self.first.input_written = True
        self.scale = 2.0 / (net.num_levels - 1)
        levels = torch.arange(net.num_levels, device=self.first.buffer.device)
        self.level_values = scale_levels(levels, net.num_levels).to(self.first.buffer.dtype)

    def start_row(self, row: int) -> None:
        """Prepare every layer for the positions of ``row``: all rows above are final."""
        for layer in self.trunk + self.head:
            layer.start_row(row)
        self.pixels = self.first.row_inputs(row).unbind(1)

    def features(self, row: int, col: int, group: int = 0) -> Tensor:
        """Trunk features ``[B, F]`` at ``(row, col)`` (channel group ``group``'s part
        filled in), from the image values written so far."""
        x = None
        for layer in self.trunk:
            x = layer(x, row, col, group)
        return x

    def logits(self, row: int, col: int, group: int = 0) -> Tensor:
        """Head output of channel group ``group`` at ``(row, col)``: ``[B, C*K]`` with a
        single group, else ``[B, K]``, the logits of channel ``group``."""
        x = self.features(row, col, group)
        for layer in self.head:
            x = layer(x, row, col, group)
        out = self.head[-1].out
        return x if out.whole else x[:, out.slices[group]]

    def write(self, col: int, channels: slice, levels: Tensor) -> None:
        """Record drawn levels of the current pixel where the first layer reads them."""
        self.pixels[col][:, channels] = torch.take(self.level_values, levels)

    def images(self) -> Tensor:
        """The levels written so far, ``[B, C, H, W]``."""
        pad = self.first.pad
        scaled = self.first.buffer[:, pad:, pad:-pad].permute(0, 3, 1, 2)
        return ((scaled + 1) / self.scale).round().long()


def sample_cached(
    net: PixelCNNNet,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    given: Tensor | None = None,
    drawn: range | None = None,
    return_logits: bool = False,
    stop: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Exact ancestral samples from ``net`` in raster order, with every layer computed
    once per position; the same draws, uniform for uniform, as ``sample_raster`` (and
    ``sample_raster_with_pixel_head`` for the MADE head).

    Images are drawn on the device of ``net``, in float32 even under autocast (the
    buffers are written in place, so every layer must produce their dtype). ``given``
    replays existing images ``[B, C, H, W]`` instead of drawing (teacher forcing),
    except at the raster positions (pixels) in ``drawn``, which are drawn given
    everything before them; pixels after ``drawn`` keep their values.
    ``return_logits`` also returns the logits ``[B, C, K, H, W]`` each step used, which
    equal one full forward pass of the returned images. The pass ends before raster
    position ``stop`` (by default after the last drawn pixel, or at the end of the image
    with ``return_logits``); logits from there on are zero.
    """
    device = next(net.parameters()).device
    with torch.inference_mode(), full_precision(device):
        images, logits = draw_cached(net, num_samples, generator, given, drawn, return_logits, stop)
    if return_logits:
        return images.clone(), logits.clone()
    return images.clone()


def draw_cached(
    net: PixelCNNNet,
    num_samples: int,
    generator: torch.Generator | None,
    given: Tensor | None,
    drawn: range | None,
    return_logits: bool,
    stop: int | None,
) -> tuple[Tensor, Tensor | None]:
    """The body of ``sample_cached``, run without autograd (its results are inference
    tensors, which ``sample_cached`` turns into ordinary ones)."""
    channels, height, width = net.image_shape
    num_levels = net.num_levels
    num_samples = len(given) if given is not None else num_samples
    drawn, stop = pass_span(given, drawn, return_logits, stop, height * width)
    state = CachedPixelCNN(net, num_samples)
    logits = None
    if return_logits:
        shape = (num_samples, channels, num_levels)
        logits = position_major_logits(state.first.buffer, height * width, stop, shape)

    def choose(step_logits: Tensor, row: int, col: int, s: slice) -> Tensor:
        if logits is not None:
            logits[row * width + col, :, s] = step_logits.view(num_samples, -1, num_levels)
        if row * width + col in drawn:
            levels = sample_categorical(step_logits, generator).view(num_samples, -1)
        else:
            levels = given[:, s, row, col]
        state.write(col, s, levels)
        return levels

    for index in range(stop):
        row, col = divmod(index, width)
        if col == 0:
            state.start_row(row)
        if net.color_mode == "made":
            features = state.features(row, col)
            pixel = features.new_zeros(num_samples, channels, dtype=torch.long)
            for c in range(channels):
                step = net.pixel_logits(pixel, features)[:, c]
                pixel[:, c : c + 1] = choose(step, row, col, slice(c, c + 1))
        elif net.color_mode == "autoregressive":
            for c in range(channels):
                choose(state.logits(row, col, c), row, col, slice(c, c + 1))
        else:
            step = state.logits(row, col).view(num_samples, channels, num_levels)
            choose(step, row, col, slice(0, channels))
    if logits is not None:
        logits = image_logits(logits, height, width)
    return kept_after(state.images(), given, stop), logits
