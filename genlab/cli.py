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
import yaml
from jsonargparse import ActionConfigFile
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, _InstantiatorFn
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

import genlab.datamodules  # noqa: F401  (registers the data modules for short class names)
import genlab.lightning_modules  # noqa: F401  (registers the models for short class names)
from genlab import pretrained
from genlab.callbacks.compile import CompileNetworks
from genlab.callbacks.data_record import DataRecord
from genlab.callbacks.epoch_seeds import EpochSeeds
from genlab.callbacks.finite_loss import FiniteLoss
from genlab.callbacks.metrics_file import MetricsFile
from genlab.callbacks.preemption import SaveOnSigterm
from genlab.callbacks.sample_writer import SampleWriter
from genlab.checkpoints import (
    LIGHTNING_CKPT_ALIASES,
    check_fits,
    read_checkpoint,
    with_atomic_checkpoints,
)
from genlab.errors import condensed, one_line_errors
from genlab.provenance import (
    check_data_properties,
    check_requested_model,
    check_same_data_for_fit,
    class_path,
    data_differences,
    recorded_data,
)

RUNS_DIR = "runs"


def run_folder_of(ckpt_path: str) -> Path | None:
    """The run folder of a checkpoint saved by ``fit`` (``.../version_N/checkpoints/x.ckpt``),
    relative to the working folder when it lies in it, as ``fit`` names its runs: the
    checkpoint callback keeps its best score and file names on resuming only when its
    folder is spelled as it was when saved."""
    path = Path(ckpt_path)
    if path.parent.name != "checkpoints":
        return None
    run, here = path.parent.parent.resolve(), Path.cwd().resolve()
    return run.relative_to(here) if run.is_relative_to(here) else run


def check_weights_are_named(subcommand: str, ckpt_path: str | None, untrained: bool) -> None:
    """Every command but ``fit`` needs weights: a checkpoint file, or ``--untrained true``
    to run on freshly initialised ones on purpose. Lightning's aliases name checkpoints
    of the same process, and every ``genlab`` command is a new one."""
    if ckpt_path in LIGHTNING_CKPT_ALIASES:
        raise ValueError(
            f"--ckpt_path {ckpt_path}: this command has no '{ckpt_path}' checkpoint of its "
            f"own; name the file, e.g. runs/<model>/<data>/version_N/checkpoints/last.ckpt"
        )
    if ckpt_path and not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
    if subcommand == "fit":
        if untrained:
            raise ValueError(
                "--untrained is for validate, test and predict; fit starts "
                "from freshly initialised weights unless given --ckpt_path"
            )
        return
    if ckpt_path and untrained:
        raise ValueError(f"--untrained true and --ckpt_path {ckpt_path}: choose one")
    if not ckpt_path and not untrained:
        raise ValueError(
            f"genlab {subcommand} needs trained weights: --ckpt_path <file.ckpt>, or "
            "--untrained true to run on freshly initialised ones"
        )


def check_config_file(value: Any) -> None:
    """An ``ArgumentError`` (a bad command line: exit status 2) naming a ``--config``
    file that is not UTF-8 YAML, is empty or holds something other than a mapping of
    sections; inline YAML strings and missing files are left to jsonargparse, which
    names them."""
    path = Path(str(value))
    if not path.is_file():
        return
    try:
        contents = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ArgumentError(None, f"--config {value}: not a UTF-8 text file") from None
    except yaml.YAMLError as error:
        raise ArgumentError(
            None, f"--config {value}: not valid YAML ({yaml_problem(error)})"
        ) from None
    if contents is None:
        raise ArgumentError(
            None,
            f"--config {value}: the file holds no settings (empty or only comments); "
            "expected sections such as model:, data: and trainer:",
        )
    if not isinstance(contents, dict):
        raise ArgumentError(
            None,
            f"--config {value}: expected a mapping of sections (model:, data:, trainer:, "
            f"...), found a {type(contents).__name__}",
        )


def yaml_problem(error: yaml.YAMLError) -> str:
    """What a YAML parser complains of, and where, in the file's own line numbers."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


class ConfigFile(ActionConfigFile):
    """``--config`` that names the file in every complaint about its contents."""

    def __call__(self, parser, cfg, values, option_string=None) -> None:
        check_config_file(values)
        super().__call__(parser, cfg, values, option_string)


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

    source_checkpoint: dict | None = None
    source_run: Path | None = None

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Lightning's parser, whose ``--config`` names a bad file (see ``ConfigFile``)."""
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={L.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument(
            "-c", "--config", action=ConfigFile, help="Path to a configuration file in YAML."
        )
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse as Lightning does, and keep ``args`` to tell later what was asked for
        explicitly (see ``requested_model``)."""
        self.given_args = args
        super().parse_arguments(parser, args)

    def requested_model(self, subcommand: str) -> Any:
        """The ``model`` section as the config files and command line give it, without
        the defaults of its class."""
        if isinstance(self.given_args, dict):
            given = self.parser.parse_object(self.given_args, defaults=False)
        else:
            given = self.parser.parse_args(self.given_args, defaults=False)
        return given.get(subcommand, {}).get("model")

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
        parser.add_lightning_class_args(DataRecord, "data_record")
        parser.add_lightning_class_args(SaveOnSigterm, "save_on_sigterm")
        parser.add_argument(
            "--untrained",
            type=bool,
            default=False,
            help="validate, test or predict with freshly initialised weights, on purpose "
            "(otherwise these commands need --ckpt_path)",
        )
        parser.add_argument(
            "--compile",
            type=bool,
            default=False,
            help="torch.compile the model's networks (eager mode, with a warning, where "
            "compilation is unavailable); see genlab.callbacks.CompileNetworks",
        )

    def _parse_ckpt_path(self) -> None:
        """Lightning takes the model's class and arguments from ``--ckpt_path``. Before
        that, the checkpoint is read once (a file that is not a readable checkpoint stops
        here with one line naming it) and held against the model the command asks for:
        another class, or an argument set to another value, stops the command before
        anything is written (see ``genlab.provenance``)."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        settings = self.config[subcommand]
        path = pretrained.resolve(settings.get("ckpt_path"))
        settings["ckpt_path"] = path
        check_weights_are_named(subcommand, path, settings.get("untrained"))
        if not path:
            return
        self.source_checkpoint = read_checkpoint(path, settings.get("weights_only"))
        check_requested_model(self.source_checkpoint, path, self.requested_model(subcommand))
        self.apply_checkpoint_arguments(subcommand, path)

    def apply_checkpoint_arguments(self, subcommand: str, path: str) -> None:
        """The model arguments the command does not set come from the checkpoint, as
        Lightning's own ``_parse_ckpt_path`` does, from the checkpoint already read."""
        hparams = dict(self.source_checkpoint.get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except ArgumentError as error:
            reason = condensed(str(error))
            raise ValueError(
                f"--ckpt_path {path}: its model arguments do not fit ({reason})"
            ) from error

    def source_run_folder(self) -> Path | None:
        """The run folder this command works in: the checkpoint's, when the checkpoint's
        weights fit the model and its run saw the data the command feeds it; None for a
        fresh one under ``runs/``. Data with other properties, and a ``fit`` that would
        resume a run on other data, stop the command here, before anything is written."""
        path = self._get(self.config, "ckpt_path")
        if self.source_checkpoint is None:
            return None
        check_data_properties(self.source_checkpoint, path, self.model.hparams, DATA_PROPERTIES)
        check_fits(self.source_checkpoint, self.model, path)
        differences = None
        if self.datamodule is not None:
            differences = data_differences(
                *recorded_data(self.source_checkpoint, path),
                class_path(type(self.datamodule)),
                dict(getattr(self.datamodule, "hparams", {})),
            )
        if self.subcommand == "fit":
            check_same_data_for_fit(path, differences)
            return run_folder_of(path)
        if differences == []:
            return run_folder_of(path)
        rank_zero_info(
            f"{path} comes from a run on other data ({'; '.join(differences or ['unknown'])}); "
            f"this {self.subcommand} writes into a new run folder, not that run's"
        )
        return None

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
        self.source_run = self.source_run_folder()
        config = self._get(self.config_init, "trainer", default={})
        kwargs["plugins"] = with_atomic_checkpoints(config.get("plugins"))
        logger = config.get("logger")
        from_a_run = self.source_run is not None
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
        a checkpoint written by ``fit`` and feeds it that run's data, that checkpoint's own
        run folder (also in place of a TensorBoard logger the config names): a resumed
        fit goes on where it stopped, and test figures and samples land beside the
        model."""
        run = self.source_run
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
    (``GENLAB_TRACEBACK=1`` shows the traceback instead). The overview (``genlab``,
    ``-h``, ``--help``), ``course`` and ``report`` are genlab's own commands; the rest
    go to LightningCLI."""
    import sys

    from genlab.course.commands import genlab_command  # imports this module: not at the top

    with one_line_errors():
        if not genlab_command(sys.argv[1:]):
            run_cli(exit_on_error=False)


if __name__ == "__main__":
    main()
