"""The training loss of a model whose loss is not a likelihood (diffusion's noise MSE)."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt

from genlab.callbacks.io import log_figure


class LossCurves(L.Callback):
    """Records ``train/loss`` at every step and ``val/loss`` after every validation and,
    at the end of ``fit``, draws both against the optimiser step on a log scale
    (``loss.png``, TensorBoard's ``loss``). ``TrainingCurves`` would label such a loss as
    a negative log-likelihood; this one names the metric it plots."""

    def __init__(self, ylabel: str = "loss (mean squared error of the predicted noise)") -> None:
        super().__init__()
        self.ylabel = ylabel
        self.train_points: list[tuple[float, float]] = []
        self.val_points: list[tuple[float, float]] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.train_points.append((float(trainer.global_step), float(loss)))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/loss")
        if not trainer.sanity_checking and value is not None:
            self.val_points.append((float(trainer.global_step), float(value)))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero or not self.train_points:
            return
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(
            *zip(*self.train_points, strict=True), lw=0.8, alpha=0.7, label="train (per step)"
        )
        if self.val_points:
            axes.plot(*zip(*self.val_points, strict=True), "o-", label="validation")
        axes.set_yscale("log")
        axes.set_xlabel("training step")
        axes.set_ylabel(self.ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        log_figure(trainer, "loss", figure, "loss.png")

    def state_dict(self) -> dict:
        return {"train_points": self.train_points, "val_points": self.val_points}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train_points = list(state_dict["train_points"])
        self.val_points = list(state_dict["val_points"])
