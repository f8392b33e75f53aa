"""Receptive fields of autoregressive image models: which input pixels one prediction
actually reads, at the model's current weights.

The map is the absolute gradient of ``log p(x_target | x_<target)`` with respect to every
input subpixel, maximised over channels. For a causal model it is zero at every pixel
after the target; for the plain PixelCNN it also shows the blind spot, the triangle of
earlier pixels up and to the right that stacked masked convolutions never reach
(van den Oord et al., 2016, "Conditional Image Generation with PixelCNN Decoders").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.nn.modes import evaluating


def input_gradient(
    model: nn.Module, target: tuple[int, int, int], image: Tensor | None = None
) -> Tensor:
    """``|d log p(x_target | x_<target) / d x|`` for every input subpixel, ``[C, H, W]``.

    ``target`` is ``(channel, row, col)``; ``image`` (integer levels ``[C, H, W]``) is the
    point where the gradient is taken, mid-grey (level ``(K-1)/2`` rounded down) by
    default. Needs a model whose ``forward`` takes float levels and returns logits
    ``[B, C, K, H, W]``, and that has ``image_shape`` and ``num_levels``.
    """
    channel, row, col = target
    if image is None:
        image = torch.full(tuple(model.image_shape), (model.num_levels - 1) // 2)
    device = next(model.parameters()).device
    x = image.to(device).float().unsqueeze(0).requires_grad_(True)
    with evaluating(model), torch.enable_grad():
        log_probs = F.log_softmax(model(x)[0, channel, :, row, col], dim=-1)
        log_probs[int(image[channel, row, col])].backward()
    return x.grad[0].abs().cpu()


def receptive_field(
    model: nn.Module, position: tuple[int, int, int], image: Tensor | None = None
) -> Tensor:
    """The receptive field of subpixel ``position = (channel, row, col)`` as an
    ``[H, W]`` map: ``input_gradient`` maximised over input channels."""
    return input_gradient(model, position, image).amax(dim=0)
