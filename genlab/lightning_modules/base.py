"""The training and evaluation loop shared by every model with an exact likelihood."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor
from torchmetrics import MeanMetric

from genlab.lightning_modules.arguments import CheckedArguments
from genlab.nn.distributions import categorical_log_prob
from genlab.nn.modes import evaluating


def check_discrete_data(
    x: Tensor,
    data_shape: tuple[int, ...],
    num_levels: int,
    kind: str = "data",
    allow_float: bool = False,
) -> None:
    """Stop with a clear message unless ``x`` is a batch ``[B, *data_shape]`` with values in
    ``0..num_levels-1``: integers, or also floats when ``allow_float``. ``kind`` names
    the data in the messages ("images", "pairs", ...)."""
    if tuple(x.shape[1:]) != tuple(data_shape):
        raise ValueError(
            f"expected {kind} of shape [B, {', '.join(map(str, data_shape))}], got {list(x.shape)}"
        )
    if x.is_complex() or (x.is_floating_point() and not allow_float):
        raise TypeError(
            f"expected integer {kind} with values in 0..{num_levels - 1}, got {x.dtype}"
        )
    low, high = torch.stack(torch.aminmax(x)).tolist()  # one pass, one wait for the device
    if low < 0 or high > num_levels - 1:
        raise ValueError(f"expected values in 0..{num_levels - 1}, got values in {low}..{high}")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, floor: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up from 0 to 1 over ``warmup_steps``, then a
    cosine decay to ``floor`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine_schedule(
    module: L.LightningModule,
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    floor: float = 0.0,
) -> dict:
    """``configure_optimizers``'s answer: ``optimizer`` stepped per batch by
    ``warmup_cosine`` over the trainer's total number of optimiser steps."""
    total = int(module.trainer.estimated_stepping_batches) if module._trainer else 10**6
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup_steps, total, floor)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def has_progress_bar(module: L.LightningModule) -> bool:
    """Whether the module's run shows a progress bar. Per-step figures go to the bar only
    then: Lightning turns each bar figure into a Python number after every step, which
    makes the host wait for the device, a wait that a run without a bar need not pay."""
    return module._trainer is not None and module.trainer.progress_bar_callback is not None


def shows_step_figures(module: L.LightningModule) -> bool:
    """Whether a figure logged in this training step reaches anyone: the progress bar
    shows every step's, the logger writes those of every ``log_every_n_steps``-th step.
    Each ``self.log`` call costs about two milliseconds of host time (Lightning moves
    its stored result to the value's device every time), as much as a whole step of a
    small model, so per-step figures are logged on those steps only; TensorBoard gets
    the same points."""
    if module._trainer is None:
        return True
    trainer = module.trainer
    return (
        has_progress_bar(module)
        or bool(trainer.fast_dev_run)
        or trainer._logger_connector.should_update_logs
    )


def log_step_loss(module: L.LightningModule, loss: Tensor) -> None:
    """``train/loss`` of this step, on the steps whose figures are shown or written."""
    if shows_step_figures(module):
        bar = has_progress_bar(module)
        module.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=bar)


def data_of(batch: Tensor | tuple | list) -> Tensor:
    """The data tensor of a batch: the batch itself, or the first item of ``(data, labels)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


class LikelihoodModel(CheckedArguments, L.LightningModule):
    """Trains by maximum likelihood and reports it per data dimension.

    Subclasses implement ``log_prob(x) -> Tensor[B]`` in nats. This class logs
    ``train/loss`` (nats/dim, on the steps the logger writes or a progress bar shows)
    and ``{val,test}/{nats,bits}_per_dim`` (exact means over the whole split, weighted
    by example), and uses Adam at ``learning_rate``.

    Under DDP the split means are torchmetrics objects, reduced across processes at the
    end of the split; ``train/loss`` is this process's batch, not reduced, to spare a
    collective per step (the loss averaged over processes is what the gradients follow).
    Models logging epoch means of plain tensors pass ``sync_dist=True``.
    """

    name = "model"
    dims_per_token = 1  # models whose token covers several dims also log */nats_per_token

    def __init__(self, learning_rate: float = 1e-3) -> None:
        super().__init__()
        self.learning_rate = learning_rate
        self.nats_per_dim = torch.nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        self.bits_per_dim = torch.nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        self.nats_per_token = torch.nn.ModuleDict(
            {stage: MeanMetric() for stage in ("val", "test")}
        )

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def batch_nats(self, batch: Tensor | tuple) -> Tensor:
        """Nats per dim of a batch as a flat tensor whose mean is the batch's figure:
        here each example's negative log-likelihood over its number of dimensions; a
        model of variable-length sequences gives one entry per token instead, so that
        means weight every dim alike."""
        x = data_of(batch)
        return -self.log_prob(x) / x[0].numel()

    def training_step(self, batch: Tensor | tuple, batch_idx: int) -> Tensor:
        loss = self.batch_nats(batch).mean()
        log_step_loss(self, loss)
        return loss

    def validation_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self._log_nats("val", self.batch_nats(batch))

    def test_step(self, batch: Tensor | tuple, batch_idx: int) -> None:
        self._log_nats("test", self.batch_nats(batch))

    def _log_nats(self, stage: str, nats: Tensor) -> None:
        """Accumulate nats per dim (each entry one example, or one token for models that
        average over tokens) into the stage's running means and log them."""
        self.nats_per_dim[stage].update(nats)
        self.bits_per_dim[stage].update(nats / math.log(2))
        self.log(f"{stage}/nats_per_dim", self.nats_per_dim[stage], prog_bar=True)
        self.log(f"{stage}/bits_per_dim", self.bits_per_dim[stage])
        if self.dims_per_token > 1:
            self.nats_per_token[stage].update(nats * self.dims_per_token)
            self.log(f"{stage}/nats_per_token", self.nats_per_token[stage])

    def predict_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """Sample one image per requested index; the first index seeds the generator,
        so a prediction run is reproducible batch by batch."""
        generator = torch.Generator().manual_seed(int(batch[0]))
        return self.sample(len(batch), generator=generator)

    def sample(
        self,
        num_samples: int,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        raise NotImplementedError

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class ImageAutoregressiveModel(LikelihoodModel):
    """A likelihood model whose network ``self.net`` maps integer images
    ``[B, C, H, W]`` to causal logits ``[B, C, K, H, W]``: entry ``[b, c, :, i, j]`` is
    the distribution of subpixel ``(c, i, j)`` given every subpixel before it.
    Subclasses set ``net``, ``image_shape`` and ``num_levels``, implement ``sample``,
    and name in ``cached_sampler`` the function that draws from ``net`` with every layer
    computed once per position (``genlab.nn.cached_pixelcnn.sample_cached``'s
    signature).
    """

    net: torch.nn.Module
    image_shape: tuple[int, int, int]
    num_levels: int
    cached_sampler: Callable[..., Tensor | tuple[Tensor, Tensor]]

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, C, K, H, W]``. ``x`` holds levels ``0..K-1``, as integers, or as
        floats when gradients with respect to the image are wanted (receptive fields)."""
        check_discrete_data(x, self.image_shape, self.num_levels, "images", allow_float=True)
        return self.net(x)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact log-likelihood of each image, in nats: the sum of every subpixel's
        conditional log-probability."""
        check_discrete_data(x, self.image_shape, self.num_levels, "images")
        return categorical_log_prob(self.net(x), x, dim=2)

    def complete(
        self,
        images: Tensor,
        drawn: range,
        *,
        generator: torch.Generator | None = None,
        return_logits: bool = False,
        stop: int | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Copies of ``images`` ``[B, C, H, W]`` whose pixels at the raster positions
        ``drawn`` (``row * W + col``) are drawn in order from the model, each given every
        pixel before it; the other pixels keep their values. Exact ancestral sampling of
        those pixels given the ones before ``drawn.start``, at the cost of one cached pass
        as far as the last drawn pixel. ``return_logits`` also returns the logits
        ``[B, C, K, H, W]`` of every pixel given those before it in the returned images
        (one forward pass of them); the pass then runs to the end of the image, or
        to raster position ``stop``, after which the logits are zero."""
        check_discrete_data(images, self.image_shape, self.num_levels, "images")
        with evaluating(self):
            return self.cached_sampler(
                self.net,
                len(images),
                generator=generator,
                given=images.to(self.device, torch.long),
                drawn=drawn,
                return_logits=return_logits,
                stop=stop,
            )
