"""Probability queries on the pixels of an image autoregressive model.

An autoregressive model answers some questions about an image in one pass and others
only by sampling. With the pixels in raster order and ``m`` the middle pixel (row
``H // 2``, column ``W // 2``):

- the first pixel's marginal and ``p(x_m | x_<m)`` are read off the logits (exact);
- ``p(x_m | every other pixel)`` scores the K completions with ``log_prob`` (exact);
- the bottom half given the top half continues ancestral sampling (exact);
- the middle pixel's marginal and ``p(x_m | x_>m)`` sum over the pixels before ``m``,
  which is intractable, so they are Monte Carlo estimates with standard errors (and,
  for the importance-sampled one, an effective sample size);
- the top half given the bottom half runs a Markov chain whose every step leaves the
  pixel's conditional given all others invariant (approximate).

Every query takes a model through the public API only: ``forward(x)`` returning logits
``[B, C, K, H, W]`` (subpixel ``(c, i, j)`` given every subpixel before it),
``log_prob(x) -> [B]`` in nats, and the attributes ``image_shape`` and ``num_levels``.
Pixels are drawn with the model's ``complete`` where it has one (PixelCNN and Gated
PixelCNN: a cached pass, each layer computed once per position), else by running the
model once per drawn pixel; both give the same draws from the same generator.
Queries need single-channel images. The model runs in eval mode without gradients and
gets its training flag back afterwards; results come back on the CPU, probabilities
in float64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.nn.distributions import sample_categorical
from genlab.nn.modes import evaluating

LOGITS_PER_PASS = 2**23  # when completions are scored; bigger passes run slower per image
SAMPLE_CHUNK = 256  # images per cached pass that returns every logit (about 200 MB at 8 bit)


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate of a distribution over the K values of one pixel:
    ``probs[k]`` and its standard error ``standard_error[k]``. An importance-sampled
    estimate also gives its effective sample size, ``(sum w)^2 / sum w^2``: far below
    the number of samples, a few samples carry the estimate and its standard error is
    too optimistic."""

    probs: Tensor
    standard_error: Tensor
    effective_sample_size: float | None = None


def middle_pixel(model: nn.Module) -> tuple[int, int]:
    """(row, col) of the pixel the queries ask about: ``(H // 2, W // 2)``."""
    _, height, width = model.image_shape
    return height // 2, width // 2


def _query(function: Callable) -> Callable:
    """Checks that the model has one channel and runs ``function`` in eval mode without
    gradients, restoring the model's training flag afterwards."""

    @functools.wraps(function)
    def wrapper(model: nn.Module, *args, **kwargs):
        channels = model.image_shape[0]
        if channels != 1:
            raise ValueError(
                f"probability queries need one channel (C=1); this model has C={channels}"
            )
        with evaluating(model), torch.no_grad():
            return function(model, *args, **kwargs)

    return wrapper


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _repeat_image(model: nn.Module, image: Tensor, count: int) -> Tensor:
    """``count`` copies ``[count, C, H, W]`` of an integer image ``[C, H, W]`` on the
    model's device."""
    if tuple(image.shape) != tuple(model.image_shape):
        raise ValueError(
            f"expected a conditioning image of shape {list(model.image_shape)}, "
            f"got {list(image.shape)}"
        )
    if image.is_floating_point() or image.is_complex():
        raise TypeError(f"expected an integer conditioning image, got {image.dtype}")
    return image.to(_device_of(model), torch.long).expand(count, *image.shape).clone()


def _pixel_log_probs(model: nn.Module, images: Tensor, row: int, col: int) -> Tensor:
    """``log p(x_(row, col) = k | pixels before it)`` for every image, ``[B, K]``."""
    return F.log_softmax(model(images)[:, 0, :, row, col].float(), dim=-1)


def _with_each_value(images: Tensor, row: int, col: int, num_levels: int) -> Tensor:
    """``[B * K, C, H, W]``: each image K times, with pixel (row, col) set to 0..K-1."""
    completions = images.repeat_interleave(num_levels, dim=0)
    values = torch.arange(num_levels, device=images.device).repeat(len(images))
    completions[:, 0, row, col] = values
    return completions


@_query
def sample_in_raster_order(
    model: nn.Module,
    images: Tensor,
    start: int,
    stop: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Copies of ``images`` ``[B, 1, H, W]`` whose pixels at raster indices
    ``start..stop-1`` are redrawn, in order, from the model's conditionals. Exact
    ancestral sampling of those pixels given the ones before ``start``; pixels from
    ``stop`` on keep their values (a causal model never reads them for these draws).
    """
    images = images.to(_device_of(model), torch.long)
    return _fill_in_raster_order(model, images, start, stop, generator).cpu()


def _fill_in_raster_order(
    model: nn.Module, images: Tensor, start: int, stop: int, generator: torch.Generator | None
) -> Tensor:
    """``sample_in_raster_order`` on the model's device, without the checks."""
    if hasattr(model, "complete"):
        return model.complete(images, range(start, stop), generator=generator)
    width = model.image_shape[2]
    images = images.clone()
    for index in range(start, stop):
        row, col = divmod(index, width)
        logits = model(images)[:, 0, :, row, col]
        images[:, 0, row, col] = sample_categorical(logits, generator)
    return images


def _drawn_through(
    model: nn.Module,
    images: Tensor,
    position: int,
    generator: torch.Generator | None,
    score_rest: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``images`` with raster positions ``0..position`` drawn from the model, the
    conditional ``log p(x_position = k | x_<position)`` ``[B, K]`` they were drawn
    from, and with ``score_rest`` the log-probability of every pixel's value given
    those before it, ``[B, H * W]``. In chunks, so that a chunk's logits fit in memory."""
    num_positions = model.image_shape[1] * model.image_shape[2]
    stop = num_positions if score_rest else position + 1
    drawn, at_position, picked = [], [], []
    for chunk in images.split(SAMPLE_CHUNK):
        if hasattr(model, "complete"):
            chunk, logits = model.complete(
                chunk, range(0, position + 1), generator=generator, return_logits=True, stop=stop
            )
        else:
            chunk = _fill_in_raster_order(model, chunk, 0, position + 1, generator)
            logits = model(chunk)
        logits = logits[:, 0].flatten(2).float()
        drawn.append(chunk)
        at_position.append(F.log_softmax(logits[..., position], dim=1))
        if score_rest:
            own = logits.gather(1, chunk.flatten(2)[:, :1]).squeeze(1)
            picked.append(own - logits.logsumexp(dim=1))
    return torch.cat(drawn), torch.cat(at_position), torch.cat(picked) if score_rest else None


@_query
def first_pixel_marginal(model: nn.Module) -> Tensor:
    """``p(x_(0, 0))`` ``[K]``. Exact: the first pixel is conditioned on nothing, so its
    logits are the same for any input image."""
    blank = torch.zeros(1, *model.image_shape, dtype=torch.long, device=_device_of(model))
    return _pixel_log_probs(model, blank, 0, 0)[0].cpu().double().exp()


@_query
def middle_pixel_marginal(
    model: nn.Module, num_samples: int = 256, *, generator: torch.Generator | None = None
) -> Estimate:
    """``p(x_m)`` of the middle pixel, ``[K]``. Approximate: the exact marginal sums over
    every configuration of the pixels before ``m``. This averages the exact conditional
    ``p(x_m | x_<m)`` over ``num_samples`` ancestral samples of ``x_<m`` (a
    Rao-Blackwellised estimate); the standard error is the spread across samples. A
    cached pass draws each sample and its conditional at the cost of about half a
    forward pass."""
    row, col = middle_pixel(model)
    middle = row * model.image_shape[2] + col
    blank = torch.zeros(num_samples, *model.image_shape, dtype=torch.long, device=_device_of(model))
    _, log_probs, _ = _drawn_through(model, blank, middle, generator)
    return _mean_with_error(log_probs.cpu().double().exp())


def _mean_with_error(values: Tensor) -> Estimate:
    """The mean over the first axis and its standard error."""
    if len(values) < 2:
        raise ValueError("an estimate with a standard error needs at least 2 samples")
    return Estimate(values.mean(dim=0), values.std(dim=0) / math.sqrt(len(values)))


@_query
def middle_given_above_left(model: nn.Module, image: Tensor) -> Tensor:
    """``p(x_m | x_<m)`` ``[K]``, the middle pixel given every pixel above it and to its
    left in its row. Exact: one forward pass of ``image``."""
    row, col = middle_pixel(model)
    log_probs = _pixel_log_probs(model, _repeat_image(model, image, 1), row, col)
    return log_probs[0].cpu().double().exp()


@_query
def middle_given_below_right(
    model: nn.Module,
    image: Tensor,
    num_samples: int = 256,
    *,
    generator: torch.Generator | None = None,
) -> Estimate:
    """``p(x_m | x_>m)`` ``[K]``, the middle pixel given every pixel below it and to its
    right in its row; the pixels before it are unknown (their values in ``image`` are
    ignored). Approximate, by self-normalised importance sampling: the proposal draws
    ``x_<m`` and then ``x_m`` ancestrally from the model (one cached pass per sample),
    and a sample's weight is the likelihood of the known pixels, ``p(x_>m | x_<=m)``.
    The estimate of value k is the weighted share of the samples with ``x_m = k``; its
    standard error comes from the delta method, and the effective sample size says
    how many samples carry it (a proposal that ignores ``x_>m`` can leave few)."""
    row, col = middle_pixel(model)
    middle = row * model.image_shape[2] + col
    images = _repeat_image(model, image, num_samples)
    proposals, _, picked = _drawn_through(model, images, middle, generator, score_rest=True)
    log_weights = picked[:, middle + 1 :].cpu().double().sum(dim=1)
    values = proposals[:, 0, row, col].cpu()
    return _self_normalised(log_weights, F.one_hot(values, model.num_levels).double())


def _self_normalised(log_weights: Tensor, indicators: Tensor) -> Estimate:
    """``probs[k] = sum_s w[s] 1[k_s = k] / sum_s w[s]`` from log-weights ``[S]`` and the
    one-hot values ``[S, K]``, with the delta-method standard error of that ratio of
    means and the effective sample size."""
    if len(log_weights) < 2:
        raise ValueError("an estimate with a standard error needs at least 2 samples")
    weights = (log_weights - log_weights.max()).exp()
    probs = (weights[:, None] * indicators).sum(dim=0) / weights.sum()
    residuals = weights[:, None] * (indicators - probs)
    error = residuals.std(dim=0) / (math.sqrt(len(weights)) * weights.mean())
    effective = (weights.sum() ** 2 / (weights**2).sum()).item()
    return Estimate(probs, error, effective)


@_query
def pixel_given_all_others(model: nn.Module, images: Tensor, row: int, col: int) -> Tensor:
    """``p(x_(row, col) = k | every other pixel)`` for each image ``[B, 1, H, W]``,
    ``[B, K]``. Exact: the K completions are scored with ``log_prob`` and normalised."""
    images = images.to(_device_of(model), torch.long)
    log_joint = _log_joint_of_each_value(model, images, row, col)
    return log_joint.cpu().double().softmax(dim=-1)


def _log_joint_of_each_value(model: nn.Module, images: Tensor, row: int, col: int) -> Tensor:
    """``log p(image with pixel (row, col) set to k)`` ``[B, K]``, on the model's device."""
    completions = _with_each_value(images, row, col, model.num_levels)
    chunk_size = max(1, LOGITS_PER_PASS // (model.num_levels * math.prod(model.image_shape)))
    scores = torch.cat([model.log_prob(chunk) for chunk in completions.split(chunk_size)])
    return scores.view(len(images), -1)


@_query
def middle_given_all_others(model: nn.Module, image: Tensor) -> Tensor:
    """``p(x_m | every other pixel)`` ``[K]``. Exact: the K completions of ``image`` are
    scored with ``log_prob`` and normalised."""
    row, col = middle_pixel(model)
    return pixel_given_all_others(model, _repeat_image(model, image, 1), row, col)[0]


@_query
def sample_bottom_given_top(
    model: nn.Module,
    image: Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``[N, 1, H, W]`` images whose top rows ``0..H//2-1`` are those of ``image`` and
    whose bottom rows are drawn from ``p(bottom | top)``. Exact: ancestral sampling
    continued from row ``H // 2``."""
    _, height, width = model.image_shape
    images = _repeat_image(model, image, num_samples)
    return _fill_in_raster_order(
        model, images, (height // 2) * width, height * width, generator
    ).cpu()


@_query
def sample_top_given_bottom(
    model: nn.Module,
    image: Tensor,
    num_samples: int,
    num_sweeps: int = 20,
    *,
    init: Literal["model", "random"] = "model",
    method: Literal["metropolis", "gibbs"] = "metropolis",
    generator: torch.Generator | None = None,
) -> Tensor:
    """``[N, 1, H, W]`` images whose bottom rows ``H//2..`` are those of ``image`` and
    whose top rows are drawn approximately from ``p(top | bottom)``. Approximate: a
    Markov chain per sample, ``num_sweeps`` sweeps each updating every top pixel in
    raster order so that its conditional given all other pixels is left invariant. The
    chains start from the model's ancestral samples of the top rows (``init="model"``,
    which ignore the bottom) or from uniform noise (``"random"``); they reach the target
    only as the number of sweeps grows.

    ``method="metropolis"`` proposes each pixel from the model's own ``p(x_i | x_<i)``
    and accepts with the probability that corrects it to ``p(x_i | every other pixel)``:
    one forward pass per pixel, whatever the number of levels K. ``"gibbs"`` draws the
    pixel from that conditional exactly, by scoring all K values: K forward passes.
    """
    _, height, width = model.image_shape
    top = (height // 2) * width
    chains = _repeat_image(model, image, num_samples)
    if init == "model":
        chains = _fill_in_raster_order(model, chains, 0, top, generator)
    elif init == "random":
        noise_device = generator.device if generator is not None else "cpu"
        noise = torch.randint(
            model.num_levels, (num_samples, top), generator=generator, device=noise_device
        )
        chains[:, 0, : height // 2] = noise.view(num_samples, height // 2, width).to(chains.device)
    else:
        raise ValueError(f'init must be "model" or "random", got {init!r}')
    if method == "metropolis":
        return _metropolis_sweeps(model, chains, top, num_sweeps, generator).cpu()
    if method != "gibbs":
        raise ValueError(f'method must be "metropolis" or "gibbs", got {method!r}')
    for _ in range(num_sweeps):
        for index in range(top):
            row, col = divmod(index, width)
            logits = _log_joint_of_each_value(model, chains, row, col)
            chains[:, 0, row, col] = sample_categorical(logits, generator)
    return chains.cpu()


def _conditionals(model: nn.Module, images: Tensor) -> Tensor:
    """``log p(x_i = k | x_<i)`` of every pixel, ``[B, K, H, W]``, in float32."""
    return F.log_softmax(model(images)[:, 0].float(), dim=1)


def _metropolis_sweeps(
    model: nn.Module,
    chains: Tensor,
    stop: int,
    num_sweeps: int,
    generator: torch.Generator | None,
) -> Tensor:
    """Metropolis-within-Gibbs over the pixels ``0..stop-1`` of every chain. Pixel i's
    proposal ``q(x_i') = p(x_i' | x_<i)`` ignores the current ``x_i``, so accepting with
    ``min(1, p(x') q(x_i) / (p(x) q(x_i')))`` leaves ``p(x_i | every other pixel)``
    invariant; both ratios come from the conditionals of the current and the proposed
    image, one forward pass of the proposal per pixel."""
    width = model.image_shape[2]
    log_probs = _conditionals(model, chains)
    log_joint = _picked(log_probs, chains).double().sum(dim=(1, 2))
    for _ in range(num_sweeps):
        for index in range(stop):
            row, col = divmod(index, width)
            proposal_logits = log_probs[:, :, row, col]
            proposed = chains.clone()
            proposed[:, 0, row, col] = sample_categorical(proposal_logits, generator)
            proposed_log_probs = _conditionals(model, proposed)
            proposed_joint = _picked(proposed_log_probs, proposed).double().sum(dim=(1, 2))
            forward = proposal_logits.gather(1, proposed[:, 0, row, col, None])[:, 0]
            backward = proposal_logits.gather(1, chains[:, 0, row, col, None])[:, 0]
            log_ratio = (proposed_joint - log_joint) + (backward - forward)
            noise_device = generator.device if generator is not None else chains.device
            uniform = torch.rand(len(chains), generator=generator, device=noise_device)
            accept = uniform.to(chains.device).log() < log_ratio
            chains[accept] = proposed[accept]
            log_probs[accept] = proposed_log_probs[accept]
            log_joint = torch.where(accept, proposed_joint, log_joint)
    return chains


def _picked(log_probs: Tensor, images: Tensor) -> Tensor:
    """The log-probability of each pixel's own value, ``[B, H, W]``."""
    return log_probs.gather(1, images[:, :1]).squeeze(1)
