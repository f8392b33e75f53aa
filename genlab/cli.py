"""The ``genlab`` command: ``genlab fit|validate|test|predict --config CONFIG``.

A LightningCLI that wires a model to a data module: data properties reach the model
through argument links, every run logs to TensorBoard under
``runs/<model>/<dataset>/version_N``, checkpoints keep the best ``val/nats_per_dim`` and
``last.ckpt``, and any command given ``--ckpt_path`` of a fit's checkpoint (resuming,
``validate``, ``test``, ``predict``) works in the run folder that checkpoint came from.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, _InstantiatorFn
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


DATA_PROPERTIES = (
    "image_shape",
    "num_levels",
    "num_bins",
    "vocabulary",
    "context_length",
    "num_classes",
)


def accepted_links(class_type: type, links: dict[str, Any]) -> dict[str, Any]:
    """The applied links whose target is an argument of ``class_type``'s constructor."""
    accepted = inspect.signature(class_type).parameters
    return {key: value for key, value in links.items() if key.rsplit(".", 1)[-1] in accepted}


class LinkAwareInstantiator(_InstantiatorFn):
    """Lightning's instantiator records every applied link as a hyperparameter of the
    model, even a data property the model has no argument for (jsonargparse skips that
    link when it builds the model). Rebuilding the model from its checkpoint would then
    pass an unexpected keyword, so only the links the model accepts are recorded."""

    def __call__(
        self, class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any
    ) -> Any:
        links = accepted_links(class_type, applied_instantiation_links)
        return super().__call__(class_type, *args, applied_instantiation_links=links, **kwargs)


class GenlabCLI(LightningCLI):
    """LightningCLI with genlab's links, callbacks and run folders.

    Every data module property named in ``DATA_PROPERTIES`` that exists is passed to the
    model argument of the same name when the model has one; a model without that argument
    simply does not receive it.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in DATA_PROPERTIES:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
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

    def _add_instantiators(self) -> None:
        """The model records its parsed arguments through ``LinkAwareInstantiator``.
        Data modules get no instantiator: they save the arguments they actually use
        (a preset or a file may fix the number of bins), and Lightning insists that a
        key shared with the model, such as ``num_bins``, has the same value in both."""
        self.parser.add_instantiator(
            LinkAwareInstantiator(cli=self, key="model"),
            self._model_class,
            subclasses=self.subclass_mode_model,
        )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            kwargs["logger"] = self._default_logger()
        self.save_config_kwargs["config_filename"] = f"{self.subcommand}_config.yaml"
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> L.Trainer:
        """``--trainer.enable_progress_bar false`` also drops the default rich bar, which
        Lightning would otherwise reject as a contradiction."""
        if config.get("enable_progress_bar") is False:
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        return super()._instantiate_trainer(config, callbacks)

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
