"""Ancestral sampling in raster order for autoregressive image models."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genlab.nn.distributions import sample_categorical

LogitsFn = Callable[[Tensor], Tensor]


@torch.no_grad()
def sample_raster(
    logits_fn: LogitsFn,
    num_samples: int,
    image_shape: tuple[int, int, int],
    *,
    channel_by_channel: bool,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw exact samples from a causal image model, one pixel at a time.

    ``logits_fn`` maps integer images ``[B, C, h, W]`` to logits ``[B, C, K, h, W]`` and
    must be causal in raster order: the logits of row ``i`` may depend only on rows
    ``0..i``, whatever the image height. The sampler therefore feeds only the rows
    generated so far, which halves the work of the naive loop and changes no value.

    With ``channel_by_channel`` the channels of a pixel are drawn in order, each after
    the previous ones are filled in (a model whose channels depend on each other);
    otherwise all channels of a pixel are drawn at once from one pass.
    """
    channels, height, width = image_shape
    images = torch.zeros(num_samples, channels, height, width, dtype=torch.long, device=device)
    for row in range(height):
        for col in range(width):
            if channel_by_channel:
                for channel in range(channels):
                    logits = logits_fn(images[:, :, : row + 1])[:, channel, :, row, col]
                    images[:, channel, row, col] = sample_categorical(logits, generator)
            else:
                logits = logits_fn(images[:, :, : row + 1])[:, :, :, row, col]
                images[:, :, row, col] = sample_categorical(logits, generator)
    return images


@torch.no_grad()
def sample_raster_with_pixel_head(
    features_fn: Callable[[Tensor], Tensor],
    pixel_logits_fn: Callable[[Tensor, Tensor], Tensor],
    num_samples: int,
    image_shape: tuple[int, int, int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Exact samples from a trunk-and-head model such as PixelCNN with a MADE head.

    ``features_fn`` maps images ``[B, C, h, W]`` to causal features ``[B, F, h, W]`` that
    depend on previous pixels only; ``pixel_logits_fn(pixels [B, C], features [B, F])``
    gives logits ``[B, C, K]`` in which channel c depends on channels before c. The trunk
    runs once per pixel and only the small head once per channel, and the draws are the
    same, uniform for uniform, as ``sample_raster`` with ``channel_by_channel=True``.
    """
    channels, height, width = image_shape
    images = torch.zeros(num_samples, channels, height, width, dtype=torch.long, device=device)
    for row in range(height):
        for col in range(width):
            features = features_fn(images[:, :, : row + 1])[:, :, row, col]
            for channel in range(channels):
                logits = pixel_logits_fn(images[:, :, row, col], features)[:, channel]
                images[:, channel, row, col] = sample_categorical(logits, generator)
    return images


def pass_span(
    given: Tensor | None,
    drawn: range | None,
    return_logits: bool,
    stop: int | None,
    num_positions: int,
) -> tuple[range, int]:
    """The raster positions a cached sampler draws, and where its pass ends.

    It draws every position without ``given`` images, else those in ``drawn`` (none
    when it is not given). The pass ends at ``stop`` if given, else after the last drawn
    position, or at the end of the image when every logit is wanted (or nothing is
    drawn). Both are checked to lie in the image, no drawn position left out."""
    if given is None:
        if drawn is not None:
            raise ValueError("drawn positions need the given images they complete")
        drawn = range(num_positions)
    elif drawn is None:
        drawn = range(0)
    elif drawn.step != 1 or not 0 <= drawn.start <= drawn.stop <= num_positions:
        raise ValueError(
            f"drawn must be a range of consecutive raster positions within "
            f"0..{num_positions}, got {drawn}"
        )
    if stop is None:
        return drawn, num_positions if return_logits or not drawn else drawn.stop
    if not drawn.stop <= stop <= num_positions:
        raise ValueError(
            f"stop must lie between the end of the drawn positions ({drawn.stop}) and "
            f"{num_positions}, got {stop}"
        )
    return drawn, stop


def kept_after(images: Tensor, given: Tensor | None, stop: int) -> Tensor:
    """``images`` with the pixels from raster position ``stop`` on taken from ``given``:
    what a sampler that stopped there leaves in place."""
    height, width = images.shape[-2:]
    if stop >= height * width:
        return images
    positions = torch.arange(height * width, device=images.device).view(height, width)
    return torch.where(positions >= stop, given, images)


def position_major_logits(like: Tensor, num_positions: int, stop: int, shape: tuple) -> Tensor:
    """A buffer ``[H * W, B, C, K]`` (``shape`` is ``(B, C, K)``) for the logits a cached
    sampler computes position by position, zero from ``stop`` on. Position-major, so
    that each step writes one contiguous block instead of scattering across the image."""
    buffer = like.new_empty(num_positions, *shape)
    buffer[stop:] = 0
    return buffer


def image_logits(buffer: Tensor, height: int, width: int) -> Tensor:
    """A ``position_major_logits`` buffer seen as logits ``[B, C, K, H, W]``."""
    return buffer.permute(1, 2, 3, 0).unflatten(3, (height, width))
