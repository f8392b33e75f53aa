"""MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015).

An MLP whose weight masks make output ``i`` depend only on the inputs that come before
``i`` in a chosen ordering, so one pass gives every conditional
``p(x_i | x_<i)`` of a discrete vector. Each of the D inputs enters as a one-hot over its
K values; each output is K logits.

Every unit carries a degree: input and output units of dimension ``i`` have the position
of ``i`` in the ordering (1..D); hidden units get degrees 1..D-1 in turn. A hidden unit
reads units of degree at most its own; an output reads hidden units of strictly smaller
degree than its dimension.

Given a ``context`` vector, the network is a conditional MADE: an unmasked projection of
the context is added to every hidden layer and to the output, so every conditional also
sees it. The PixelCNN MADE head uses this with the trunk's summary of the previous pixels
as context and the colour channels of the current pixel as the vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask on every call."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def one_hot_levels(x: Tensor, num_levels: int) -> Tensor:
    """One-hot codes ``[..., K]`` of levels ``x``. Float levels get the piecewise-linear
    code ``max(0, 1 - |x - k|)``, equal to the one-hot at integers, so gradients with
    respect to an image can pass through (as receptive-field analyses need). Its kinks
    sit at the integers, where autograd's one-sided derivatives are zero; the gradient
    is the symmetric derivative instead, which is not (+-1/2 for the neighbouring
    levels)."""
    if not x.is_floating_point():
        return F.one_hot(x, num_levels).float()
    levels = torch.arange(num_levels, device=x.device, dtype=x.dtype)
    code = tent_code(x.detach(), levels)
    step = 1e-3
    slope = (tent_code(x.detach() + step, levels) - tent_code(x.detach() - step, levels)) / (
        2 * step
    )
    return code + slope * (x - x.detach())[..., None]


def tent_code(x: Tensor, levels: Tensor) -> Tensor:
    """``max(0, 1 - |x - k|)`` for every level k: the one-hot code at integer ``x``."""
    return (1 - (x[..., None] - levels).abs()).clamp(min=0)


def hidden_degrees(num_units: int, num_dims: int) -> Tensor:
    """Degrees 1..D-1 assigned in turn (all 0 when D = 1: such units see no input)."""
    if num_dims == 1:
        return torch.zeros(num_units, dtype=torch.long)
    return torch.arange(num_units) % (num_dims - 1) + 1


class MADENet(nn.Module):
    """Integer vectors ``[B, D]`` in ``0..K-1`` to logits ``[B, D, K]``; output ``i``
    depends only on inputs earlier than ``i`` in ``ordering`` (a permutation of 0..D-1,
    natural order by default) and on the optional context ``[B, context_features]``."""

    def __init__(
        self,
        num_dims: int,
        num_levels: int,
        hidden_units: tuple[int, ...] = (512, 512),
        ordering: Tensor | None = None,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        ordering = torch.arange(num_dims) if ordering is None else torch.as_tensor(ordering)
        if sorted(ordering.tolist()) != list(range(num_dims)):
            raise ValueError(f"ordering must be a permutation of 0..{num_dims - 1}")
        self.num_dims, self.num_levels = num_dims, num_levels
        self.register_buffer("ordering", ordering.clone(), persistent=True)
        position = torch.empty(num_dims, dtype=torch.long)
        position[ordering] = torch.arange(1, num_dims + 1)
        previous = position.repeat_interleave(num_levels)
        self.masked = nn.ModuleList()
        for units in hidden_units:
            degrees = hidden_degrees(units, num_dims)
            self.masked.append(MaskedLinear(len(previous), units, degrees[:, None] >= previous))
            previous = degrees
        out_degrees = position.repeat_interleave(num_levels)
        self.masked.append(
            MaskedLinear(len(previous), num_dims * num_levels, out_degrees[:, None] > previous)
        )
        self.context: nn.ModuleList | None = None
        if context_features > 0:
            self.context = nn.ModuleList(
                nn.Linear(context_features, layer.out_features, bias=False) for layer in self.masked
            )

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if (context is None) != (self.context is None):
            raise ValueError("pass a context exactly when the network was built with one")
        h = one_hot_levels(x, self.num_levels).flatten(1)
        for index, layer in enumerate(self.masked):
            if index > 0:
                h = h.relu()
            h = layer(h)
            if context is not None:
                h = h + self.context[index](context)
        return h.view(len(x), self.num_dims, self.num_levels)
