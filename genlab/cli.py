"""The ``genlab`` command: ``genlab fit|validate|test|predict --config CONFIG``.

A LightningCLI that wires a model to a data module: data properties reach the model
through argument links, every run logs to TensorBoard under
``runs/<model>/<dataset>/version_N``, checkpoints keep the best ``val/nats_per_dim`` and
``last.ckpt``, and any command given ``--ckpt_path`` of a fit's checkpoint (resuming,
``validate``, ``test``, ``predict``) works in the run folder that checkpoint came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

import genlab.datamodules  # noqa: F401  (registers the data modules for short class names)
import genlab.lightning_modules  # noqa: F401  (registers the models for short class names)
from genlab.callbacks.metrics_file import MetricsFile
from genlab.callbacks.sample_writer import SampleWriter

RUNS_DIR = "runs"
LIGHTNING_CKPT_ALIASES = ("best", "last", "hpc", "registry")


def run_folder_of(ckpt_path: str | None) -> Path | None:
    """The run folder of a checkpoint saved by ``fit`` (``.../version_N/checkpoints/x.ckpt``)."""
    if not ckpt_path or ckpt_path in LIGHTNING_CKPT_ALIASES:
        return None
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
    return path.parent.parent if path.parent.name == "checkpoints" else None


class GenlabCLI(LightningCLI):
    """LightningCLI with genlab's links, callbacks and run folders."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data.image_shape", "model.init_args.image_shape", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.num_levels", "model.init_args.num_levels", apply_on="instantiate"
        )
        parser.link_arguments("data.num_bins", "model.init_args.num_bins", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/nats_per_dim",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(RichProgressBar, "progress_bar")
        parser.add_lightning_class_args(SampleWriter, "sample_writer")
        parser.add_lightning_class_args(MetricsFile, "metrics_file")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            kwargs["logger"] = self._default_logger()
        self.save_config_kwargs["config_filename"] = f"{self.subcommand}_config.yaml"
        return super().instantiate_trainer(**kwargs)

    def _default_logger(self) -> TensorBoardLogger:
        """TensorBoard under ``runs/<model>/<dataset>``, or, when the command starts from
        a checkpoint written by ``fit``, that checkpoint's own run folder: a resumed fit
        goes on where it stopped, and test figures and samples land beside the model."""
        run = run_folder_of(self._get(self.config, "ckpt_path"))
        if run is not None:
            return TensorBoardLogger(
                save_dir=str(run.parent), name="", version=run.name, default_hp_metric=False
            )
        model_name = getattr(self.model, "name", type(self.model).__name__.lower())
        data_name = getattr(self.datamodule, "name", type(self.datamodule).__name__.lower())
        return TensorBoardLogger(
            save_dir=RUNS_DIR, name=f"{model_name}/{data_name}", default_hp_metric=False
        )


def run_cli(args: list[str] | None = None) -> GenlabCLI:
    """Parse ``args`` (the command line when None), run the subcommand, return the CLI
    with its model, data module and trainer for inspection."""
    return GenlabCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


def main() -> None:
    """Entry point of the ``genlab`` console script."""
    run_cli()


if __name__ == "__main__":
    main()
