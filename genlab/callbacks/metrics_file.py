"""The final test figures, printed and kept as ``metrics.json`` in the run folder."""

from __future__ import annotations

import json

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from genlab.callbacks.io import run_dir
from genlab.provenance import class_path


def data_description(datamodule: L.LightningDataModule | None) -> dict | None:
    """The data module's class path and arguments, as a config names them."""
    if datamodule is None:
        return None
    arguments = dict(getattr(datamodule, "hparams", {}))
    return {"class_path": class_path(type(datamodule)), "init_args": arguments}


class MetricsFile(L.Callback):
    """After ``test``, prints every ``test/*`` metric and writes them, with the checkpoint
    they came from and the data they were scored on (class and arguments), to
    ``metrics.json`` in the run folder."""

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith("test/")
        }
        record = {
            "ckpt_path": trainer.ckpt_path,
            "data": data_description(trainer.datamodule),
            "metrics": metrics,
        }
        path = run_dir(trainer) / "metrics.json"
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
        summary = ", ".join(f"{name} = {value:.4f}" for name, value in sorted(metrics.items()))
        rank_zero_info(f"{summary}  (written to {path})")
