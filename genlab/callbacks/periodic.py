"""The schedule shared by pictures drawn during step-based training."""

from __future__ import annotations

import lightning as L


class EveryNValidations(L.Callback):
    """Calls ``draw(trainer, pl_module)`` after every ``every_n_validations``-th
    validation (never when it is 0 or less; sanity checks do not count) and at the end
    of ``fit``. Counting validations rather than epochs suits runs that validate every
    N steps inside one long epoch (text windows)."""

    def __init__(self, every_n_validations: int) -> None:
        super().__init__()
        self.every_n_validations = every_n_validations
        self.validations = 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.every_n_validations <= 0:
            return
        self.validations += 1
        if self.validations % self.every_n_validations == 0:
            self.draw(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer, pl_module)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError


class EveryNEpochs(L.Callback):
    """Calls ``draw(trainer, pl_module, filename)`` with ``{picture}/epoch_NNN.png``
    after every ``every_n_epochs``-th validation (never when it is 0 or less, nor after
    the last epoch, which ``fit``'s end covers), with ``{picture}/epoch_000.png`` before
    the first training step when ``at_train_start`` (not again when a fit resumes), and
    with ``{picture}.png`` at the end of ``fit``. NNN counts the epochs trained, so a
    series of pictures shows the model improving. Nothing is drawn in dry runs
    (``fast_dev_run``) or on processes other than rank 0."""

    picture = "picture"

    def __init__(self, every_n_epochs: int, at_train_start: bool) -> None:
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.at_train_start = at_train_start

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_train_start and trainer.global_step == 0:
            self.draw_if_rank_zero(trainer, pl_module, f"{self.picture}/epoch_000.png")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.every_n_epochs <= 0:
            return
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs == 0 and epoch < trainer.max_epochs:
            filename = f"{self.picture}/epoch_{epoch:03d}.png"
            self.draw_if_rank_zero(trainer, pl_module, filename)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw_if_rank_zero(trainer, pl_module, f"{self.picture}.png")

    def draw_if_rank_zero(
        self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str
    ) -> None:
        if not trainer.fast_dev_run and trainer.is_global_zero:
            self.draw(trainer, pl_module, filename)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, filename: str) -> None:
        raise NotImplementedError
