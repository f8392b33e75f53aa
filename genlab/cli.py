"""The ``genlab`` command: ``genlab fit|validate|test|predict --config CONFIG``.

A LightningCLI that wires a model to a data module: data properties reach the model
through argument links, every run logs to TensorBoard under
``runs/<model>/<dataset>/version_N``, checkpoints keep the best ``val/nats_per_dim`` and
``last.ckpt``, and any command given ``--ckpt_path`` of a fit's checkpoint (resuming,
``validate``, ``test``, ``predict``) works in the run folder that checkpoint came from.

Every fit stops at the first non-finite training loss, writes its checkpoints
atomically, and draws each epoch's shuffling and noise from the seed and the epoch, so
a resumed fit repeats the epochs it missed exactly. An error ends the command with one
line, ``genlab: error: <message>``; ``GENLAB_TRACEBACK=1`` shows the full traceback.
"""

from __future__ import annotations

import inspect
from argparse import ArgumentError
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, _InstantiatorFn
from lightning.pytorch.loggers import TensorBoardLogger

import genlab.datamodules  # noqa: F401  (registers the data modules for short class names)
import genlab.lightning_modules  # noqa: F401  (registers the models for short class names)
from genlab.callbacks.compile import CompileNetworks
from genlab.callbacks.epoch_seeds import EpochSeeds
from genlab.callbacks.finite_loss import FiniteLoss
from genlab.callbacks.metrics_file import MetricsFile
from genlab.callbacks.sample_writer import SampleWriter
from genlab.checkpoints import (
    LIGHTNING_CKPT_ALIASES,
    check_checkpoint,
    checkpoint_file,
    read_checkpoint,
    with_atomic_checkpoints,
)
from genlab.errors import condensed, one_line_errors

RUNS_DIR = "runs"


def run_folder_of(ckpt_path: str | None) -> Path | None:
    """The run folder of a checkpoint saved by ``fit`` (``.../version_N/checkpoints/x.ckpt``),
    relative to the working folder when it lies in it, as ``fit`` names its runs: the
    checkpoint callback keeps its best score and file names on resuming only when its
    folder is spelled as it was when saved."""
    if not ckpt_path or ckpt_path in LIGHTNING_CKPT_ALIASES:
        return None
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
    if path.parent.name != "checkpoints":
        return None
    run, here = path.parent.parent.resolve(), Path.cwd().resolve()
    return run.relative_to(here) if run.is_relative_to(here) else run


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
        parser.add_lightning_class_args(EpochSeeds, "epoch_seeds")
        parser.add_lightning_class_args(FiniteLoss, "finite_loss")
        parser.add_argument(
            "--compile",
            type=bool,
            default=False,
            help="torch.compile the model's networks (eager mode, with a warning, where "
            "compilation is unavailable); see genlab.callbacks.CompileNetworks",
        )

    def _parse_ckpt_path(self) -> None:
        """Lightning takes the model's class and arguments from ``--ckpt_path``; a file
        that is not a readable checkpoint, or whose arguments this command's model does
        not take, stops here with one line that names it."""
        subcommand = self.config.get("subcommand")
        path = checkpoint_file(self.config[subcommand].get("ckpt_path") if subcommand else None)
        try:
            super()._parse_ckpt_path()
        except ArgumentError as error:
            reason = condensed(str(error))
            raise ValueError(
                f"--ckpt_path {path}: its model arguments do not fit ({reason})"
            ) from error
        except Exception:
            if path is not None:
                read_checkpoint(path, weights_only=True)  # as Lightning read it: says why
            raise

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
        weights_only = self._get(self.config, "weights_only")
        check_checkpoint(self._get(self.config, "ckpt_path"), self.model, weights_only)
        config = self._get(self.config_init, "trainer", default={})
        kwargs["plugins"] = with_atomic_checkpoints(config.get("plugins"))
        logger = config.get("logger")
        from_a_run = run_folder_of(self._get(self.config, "ckpt_path")) is not None
        if logger in (None, True) or (from_a_run and isinstance(logger, TensorBoardLogger)):
            kwargs["logger"] = self._default_logger()
        self.save_config_kwargs["config_filename"] = f"{self.subcommand}_config.yaml"
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> L.Trainer:
        """``--trainer.enable_progress_bar false`` also drops the default rich bar, which
        Lightning would otherwise reject as a contradiction; ``--compile true`` adds
        ``CompileNetworks``."""
        if self._get(self.config_init, "compile", default=False):
            callbacks = [*callbacks, CompileNetworks()]
        if config.get("enable_progress_bar") is False:
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        return super()._instantiate_trainer(config, callbacks)

    def _default_logger(self) -> TensorBoardLogger:
        """TensorBoard under ``runs/<model>/<dataset>``, or, when the command starts from
        a checkpoint written by ``fit``, that checkpoint's own run folder (also in place
        of a TensorBoard logger the config names): a resumed fit goes on where it
        stopped, and test figures and samples land beside the model."""
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


def run_cli(args: list[str] | None = None, exit_on_error: bool = True) -> GenlabCLI:
    """Parse ``args`` (the command line when None), run the subcommand, return the CLI
    with its model, data module and trainer for inspection. A bad command line exits
    with argparse's usage and message, or with ``exit_on_error=False`` raises
    ``argparse.ArgumentError``."""
    return GenlabCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": exit_on_error},
        args=args,
    )


def main() -> None:
    """Entry point of the ``genlab`` console script: any error ends it with one line
    (``GENLAB_TRACEBACK=1`` shows the traceback instead)."""
    with one_line_errors():
        run_cli(exit_on_error=False)


if __name__ == "__main__":
    main()
