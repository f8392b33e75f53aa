"""Checks shared by the sampling tests: samples of a small discrete model against its
exact distribution over every possible example, and the logits of each step of
KV-cached decoding."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
from torch import Tensor, nn


def every_example(shape: tuple[int, ...], num_levels: int) -> Tensor:
    """All ``num_levels ** prod(shape)`` integer examples of ``shape``, in the order of
    their ``codes``."""
    values = itertools.product(range(num_levels), repeat=math.prod(shape))
    return torch.tensor(list(values)).view(-1, *shape)


def codes(examples: Tensor, num_levels: int) -> Tensor:
    """The position of each example in ``every_example``'s order."""
    flat = examples.flatten(1)
    return (flat * num_levels ** torch.arange(flat.shape[1] - 1, -1, -1)).sum(1)


def total_variation(p: Tensor, q: Tensor) -> float:
    return 0.5 * (p - q).abs().sum().item()


def product_of_marginals(p: Tensor, num_dims: int, num_levels: int) -> Tensor:
    """The distribution whose dimensions are independent with the marginals of ``p``."""
    table = p.view([num_levels] * num_dims)
    marginals = [
        table.sum(dim=[other for other in range(num_dims) if other != dim])
        for dim in range(num_dims)
    ]
    return functools.reduce(lambda a, b: (a[:, None] * b[None, :]).flatten(), marginals)


def assert_samples_follow_the_model(model: nn.Module, samples: Tensor, num_levels: int) -> None:
    """Score every possible example with ``model.log_prob`` (the probabilities must sum
    to one), check that the model is far from uniform and from independent dimensions
    (so that drawing each dimension from the wrong conditional shows), and hold every
    example's sample frequency within 5 standard errors of its probability (the
    standard error of an example rarer than one in ``len(samples)`` taken as that of one
    in ``len(samples)``, so that a single draw of it passes)."""
    examples = every_example(tuple(samples.shape[1:]), num_levels)
    with torch.no_grad():
        p = model.log_prob(examples).double().exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    uniform = torch.full_like(p, 1 / len(p))
    independent = product_of_marginals(p, examples[0].numel(), num_levels)
    assert total_variation(p, uniform) > 0.3, "the model is nearly uniform"
    assert total_variation(p, independent) > 0.1, "the dimensions are nearly independent"
    n = len(samples)
    frequencies = torch.bincount(codes(samples, num_levels), minlength=len(p)).double() / n
    errors = (frequencies - p).abs() / (p.clamp(min=1 / n) * (1 - p) / n).sqrt()
    worst = int(errors.argmax())
    assert errors[worst] < 5, (
        f"example {examples[worst].flatten().tolist()}: frequency {frequencies[worst]:.5f}, "
        f"probability {p[worst]:.5f} ({errors[worst]:.1f} standard errors)"
    )


def record_step_logits(gpt: nn.Module, monkeypatch: pytest.MonkeyPatch) -> list[Tensor]:
    """A list that fills with the last position's logits ``[B, V]`` of every call of
    ``gpt``, that is, the logits each decoding step draws its token from."""
    steps: list[Tensor] = []
    forward = gpt.forward

    def recording(*args, **kwargs):
        logits = forward(*args, **kwargs)
        steps.append(logits[:, -1])
        return logits

    monkeypatch.setattr(gpt, "forward", recording)
    return steps
