"""Training curves: per-step train NLL and validation NLL, in nats/dim, against steps."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt

from genlab.analysis import mean_nats_per_dim
from genlab.callbacks.io import log_figure, tensorboard_of


class TrainingCurves(L.Callback):
    """Records ``train/loss`` at every step and ``val/nats_per_dim`` after every
    validation, plus the validation value before any training (computed with
    ``model.batch_nats`` over the validation set), and at the end of ``fit`` draws both
    against the optimiser step into ``curves.png`` and TensorBoard's ``curves`` (steps,
    not epochs, so runs that validate every N steps read the same way).
    """

    def __init__(self, initial_validation: bool = True) -> None:
        super().__init__()
        self.initial_validation = initial_validation
        self.train_points: list[tuple[float, float]] = []
        self.val_points: list[tuple[float, float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        if self.initial_validation and not self.val_points:
            value = mean_nats_per_dim(pl_module, validation_batches(trainer))
            if value is not None:
                self.val_points.append((float(trainer.global_step), value))
                writer = tensorboard_of(trainer)
                if writer is not None:
                    writer.add_scalar("val/nats_per_dim", value, global_step=trainer.global_step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.train_points.append((float(trainer.global_step), float(loss)))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/nats_per_dim")
        if trainer.sanity_checking or value is None:
            return
        self.val_points.append((float(trainer.global_step), float(value)))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        if self.train_points or self.val_points:
            log_figure(trainer, "curves", self.figure(), "curves.png")

    def figure(self) -> plt.Figure:
        figure, axes = plt.subplots(figsize=(6, 4))
        if self.train_points:
            steps, losses = zip(*self.train_points, strict=True)
            axes.plot(steps, losses, lw=0.8, alpha=0.7, label="train (per step)")
        if self.val_points:
            steps, values = zip(*self.val_points, strict=True)
            axes.plot(steps, values, "o-", label="validation")
        axes.set_xlabel("training step")
        axes.set_ylabel("negative log-likelihood (nats/dim)")
        axes.grid(alpha=0.3)
        axes.legend()
        return figure

    def state_dict(self) -> dict:
        return {"train_points": self.train_points, "val_points": self.val_points}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train_points = list(state_dict["train_points"])
        self.val_points = list(state_dict["val_points"])


def validation_batches(trainer: L.Trainer):
    """The validation loader of the run: the data module's, else the trainer's."""
    datamodule = trainer.datamodule
    return datamodule.val_dataloader() if datamodule is not None else trainer.val_dataloaders
