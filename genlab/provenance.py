"""Which run a checkpoint belongs to, and whether a command may use it.

A checkpoint records the model class and arguments it was trained with and the data
module it saw (its class, its arguments and the data properties linked into the model).
A command given ``--ckpt_path`` is held against that record *before* anything is
written: a checkpoint of another model class, of data with other properties (image
shape, levels, vocabulary, ...), or whose arguments contradict what the config or the
command line asks for stops the command with one line naming both sides. Lightning would
otherwise swap the checkpoint's class and arguments in silently.

``fit`` from a checkpoint resumes that run, so it must also see the same data (same data
class and data arguments; loader settings such as ``batch_size`` may change).
``validate``/``test``/``predict`` may score a run's weights on other data whose
properties match; their output then goes to a fresh run folder, never into the source
run's.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import yaml

DATA_CLASS_KEY = "genlab_data_class_path"
# Data module arguments that change how batches are served, not which data they hold.
LOADER_ARGUMENTS = frozenset({"batch_size", "num_workers", "pin_memory", "predict_samples"})


def class_path(cls: type) -> str:
    """``module.Class``, as configs and checkpoints name classes."""
    return f"{cls.__module__}.{cls.__qualname__}"


def same_class(first: str, second: str) -> bool:
    """Whether two class paths name one class (``genlab.datamodules.ShapesDataModule``
    and ``genlab.datamodules.shapes.ShapesDataModule`` do)."""
    if first == second:
        return True
    try:
        return imported(first) is imported(second)
    except (ImportError, AttributeError, ValueError):
        return False


def imported(path: str) -> Any:
    """The object a dotted ``module.name`` path names."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def short(path: str | None) -> str:
    """The class name of a class path."""
    return str(path).rsplit(".", 1)[-1]


def plain(value: Any) -> Any:
    """A value as YAML would give it back, for comparison: tuples as lists, namespaces
    and mappings as plain dicts, recursively."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def same_value(saved: Any, asked: Any) -> bool:
    """Whether two argument values agree; two spellings of one existing file agree."""
    saved, asked = plain(saved), plain(asked)
    if saved == asked:
        return True
    paths = isinstance(saved, str) and isinstance(asked, str)
    return (
        paths and os.path.exists(saved) and os.path.exists(asked) and os.path.samefile(saved, asked)
    )


def check_requested_model(checkpoint: dict, path: str, requested: Any) -> None:
    """A ``ValueError`` when the model the config or command line asks for (``requested``:
    the explicitly given ``model`` section, defaults left out) is of another class than
    the checkpoint's weights, or sets an argument to another value than they were
    trained with."""
    saved = checkpoint.get("hyper_parameters", {})
    saved_class = saved.get("_class_path")
    requested = plain(requested) or {}
    if isinstance(requested, str):
        requested = {"class_path": requested}
    asked_class = requested.get("class_path")
    if saved_class and asked_class and not same_class(saved_class, asked_class):
        raise ValueError(
            f"--ckpt_path {path}: weights of {short(saved_class)}, "
            f"the config asks for {short(asked_class)}"
        )
    asked = requested.get("init_args") or {}
    differences = [
        f"{name} {saved[name]!r} there, {value!r} asked"
        for name, value in asked.items()
        if name in saved and not same_value(saved[name], value)
    ]
    if differences:
        raise ValueError(
            f"--ckpt_path {path}: {short(saved_class or asked_class)} weights trained with "
            f"other arguments than the config asks for ({'; '.join(differences)}); "
            "give the same arguments, or the run's own fit_config.yaml as --config"
        )


def check_data_properties(
    checkpoint: dict, path: str, model_hparams: dict, data_properties: tuple[str, ...]
) -> None:
    """A ``ValueError`` when the data the command feeds the model has other properties
    (linked into ``model_hparams``) than the data the checkpoint's weights saw."""
    saved = checkpoint.get("hyper_parameters", {})
    differences = [
        f"{name} {plain(saved[name])!r} there, {plain(model_hparams[name])!r} here"
        for name in data_properties
        if name in saved and name in model_hparams
        if plain(saved[name]) != plain(model_hparams[name])
    ]
    if differences:
        raise ValueError(
            f"--ckpt_path {path}: weights trained on data with other properties than the "
            f"config's data ({'; '.join(differences)})"
        )


def recorded_data(checkpoint: dict, path: str | Path) -> tuple[str | None, dict | None]:
    """The data class path and data arguments the checkpoint's run trained on: from the
    checkpoint itself, or for checkpoints written before it recorded its data class, from
    the ``fit_config.yaml`` of the run folder it lies in. ``(None, None)`` when unknown."""
    arguments = checkpoint.get("datamodule_hyper_parameters")
    arguments = dict(arguments) if arguments is not None else None
    data_class = checkpoint.get(DATA_CLASS_KEY)
    if data_class is None:
        data_class, config_arguments = data_section_of_run(Path(path))
        arguments = arguments if arguments is not None else config_arguments
    return data_class, arguments


def data_section_of_run(path: Path) -> tuple[str | None, dict | None]:
    """The ``data`` class path and arguments in the ``fit_config.yaml`` beside a fit's
    ``checkpoints`` folder, or ``(None, None)``."""
    config = path.parent.parent / "fit_config.yaml"
    if path.parent.name != "checkpoints" or not config.is_file():
        return None, None
    try:
        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    return data.get("class_path"), data.get("init_args") or {}


def data_differences(
    saved_class: str | None, saved_args: dict | None, own_class: str, own_args: dict
) -> list[str] | None:
    """How the command's data differs from the run's, loader settings left out; an empty
    list when they agree, None when the run's data is not known."""
    if saved_class is None or saved_args is None:
        return None
    if not same_class(saved_class, own_class):
        return [f"{short(saved_class)} there, {short(own_class)} here"]
    return [
        f"{name} {plain(saved_args[name])!r} there, {plain(own_args[name])!r} here"
        for name in sorted(saved_args.keys() & own_args.keys())
        if name not in LOADER_ARGUMENTS and not same_value(saved_args[name], own_args[name])
    ]


def check_same_data_for_fit(path: str, differences: list[str] | None) -> None:
    """``fit --ckpt_path`` resumes a run: a ``ValueError`` when it would go on with other
    data than that run trained on."""
    if differences:
        raise ValueError(
            f"--ckpt_path {path}: fit resumes that run, which trained on other data "
            f"({'; '.join(differences)}); give its data arguments, or start a new fit"
        )
