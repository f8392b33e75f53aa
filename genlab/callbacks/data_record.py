"""The data module's class, written into every checkpoint beside its arguments."""

from __future__ import annotations

from typing import Any

import lightning as L

from genlab.provenance import DATA_CLASS_KEY, class_path


class DataRecord(L.Callback):
    """Writes the data module's class path into each checkpoint (Lightning keeps only its
    arguments), so a later command can tell whether it feeds the weights the data they
    were trained on (see ``genlab.provenance``)."""

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.datamodule is not None:
            checkpoint[DATA_CLASS_KEY] = class_path(type(trainer.datamodule))
