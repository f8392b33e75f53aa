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
