"""Stop at the first training loss that is NaN or infinite."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from genlab.errors import NonFiniteLossError


class FiniteLoss(L.Callback):
    """Checks every loss before its backward pass (the automatic step's, and each of a
    manually optimised model's) and stops ``fit`` at the first that is not finite, with
    a message naming the global step, the epoch and the batch.

    The check comes before the backward pass and the optimiser step, so the weights are
    still those of the last good step, and the error ends ``fit`` before any checkpoint
    of the bad state is written (a checkpoint's ``save_on_exception`` is switched off
    for it): ``last.ckpt`` stays the last good one. Lightning's ``detect_anomaly``
    checks every operation and is many times slower; ``EarlyStopping(check_finite)``
    looks only at validation metrics. Under distributed training every process stops
    together, on any process's non-finite loss.
    """

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback.save_on_exception = False
        value = loss.detach().float().cpu()
        shown = value.item() if value.numel() == 1 else "not finite"
        raise NonFiniteLossError(
            f"the training loss is {shown} at global step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}); "
            "fit stopped before its backward pass, the checkpoints written before are kept"
        )
