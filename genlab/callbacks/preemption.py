"""A fit stopped by SIGTERM (a scheduler pre-empting the job) saves ``last.ckpt`` first."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class SaveOnSigterm(L.Callback):
    """When SIGTERM stops ``fit``, saves the state of the step it stopped at to the
    checkpoint callback's ``last.ckpt`` and records that path on the exception as
    ``checkpoint_path``, so the command can say where to resume from. Lightning alone
    would stop at the end of the current step without saving and exit with status 0."""

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        checkpoint = trainer.checkpoint_callback
        fitting = trainer.state.fn == "fit"
        if not (isinstance(exception, SIGTERMException) and fitting):
            return
        if not isinstance(checkpoint, ModelCheckpoint) or not checkpoint.save_last:
            return
        name = checkpoint.CHECKPOINT_NAME_LAST + checkpoint.FILE_EXTENSION
        path = str(Path(checkpoint.dirpath) / name)
        checkpoint.last_model_path = path
        trainer.save_checkpoint(path)
        exception.checkpoint_path = path
