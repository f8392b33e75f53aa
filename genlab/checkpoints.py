"""Checkpoints that are never half written, and that are read with one clear error.

Lightning's ``TorchCheckpointIO`` writes a checkpoint through fsspec into a temporary
file in the system's temporary folder and then moves it over the target; when that
folder is on another file system (a tmpfs ``/tmp``, a mounted run folder) the move is a
copy that truncates the target first, and the data is never synced. A run killed during
the copy loses its last good ``last.ckpt``. ``AtomicCheckpointIO`` writes beside the
target and renames, which replaces the file in one step on every POSIX file system.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins.io import CheckpointIO, TorchCheckpointIO

from genlab.errors import first_line

LIGHTNING_CKPT_ALIASES = ("best", "last", "hpc", "registry")
SHOWN_NAMES = 2  # parameter names quoted in a mismatch message


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves a local checkpoint to a temporary file in the target's folder, syncs it to
    disk and renames it over the target, so the target is always either the old
    checkpoint or the complete new one. Remote paths go through Lightning as before."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)


def with_atomic_checkpoints(plugins: Any) -> list:
    """The trainer's ``plugins`` with ``AtomicCheckpointIO`` added, unless they already
    choose a checkpoint IO."""
    if plugins is None:
        plugins = []
    elif not isinstance(plugins, (list, tuple)):
        plugins = [plugins]
    if any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        return list(plugins)
    return [*plugins, AtomicCheckpointIO()]


def checkpoint_file(ckpt_path: str | None) -> str | None:
    """``--ckpt_path`` when it names an existing file; None for no path, for Lightning's
    aliases ("best", "last", ...) and for a missing file (reported elsewhere)."""
    if not ckpt_path or ckpt_path in LIGHTNING_CKPT_ALIASES or not Path(ckpt_path).is_file():
        return None
    return ckpt_path


def check_checkpoint(
    ckpt_path: str | None, model: L.LightningModule, weights_only: bool | None = None
) -> None:
    """Stop with one line, before Lightning loads it, when the file ``--ckpt_path``
    names is not a readable checkpoint or its weights do not fit ``model``."""
    path = checkpoint_file(ckpt_path)
    if path is not None:
        check_fits(read_checkpoint(path, weights_only), model, path)


def read_checkpoint(path: str | Path, weights_only: bool | None = None) -> dict:
    """The checkpoint dictionary in ``path``, or a ``ValueError`` naming the file when it
    is truncated, corrupted or not a Lightning checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:
        reason = first_line(error).split(". ")[0].rstrip(".")
        raise ValueError(f"--ckpt_path {path}: not a readable checkpoint ({reason})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"--ckpt_path {path}: not a Lightning checkpoint (no state_dict in it)")
    return checkpoint


def check_fits(checkpoint: dict, model: L.LightningModule, path: str | Path) -> None:
    """A ``ValueError`` naming the file, the model it holds and the differences when the
    checkpoint's weights do not load into ``model`` (what Lightning would report as a
    page of missing, unexpected and resized tensors)."""
    saved, own = checkpoint["state_dict"], model.state_dict()
    resized = [name for name in own if name in saved and saved[name].shape != own[name].shape]
    missing = [name for name in own if name not in saved] if model.strict_loading else []
    unexpected = [name for name in saved if name not in own] if model.strict_loading else []
    if not (resized or missing or unexpected):
        return
    problems = []
    if resized:
        problems.append(f"{len(resized)} tensors of other shapes ({shapes(resized, saved, own)})")
    if missing:
        problems.append(f"{len(missing)} missing ({quoted(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({quoted(unexpected)})")
    raise ValueError(f"--ckpt_path {path}: {origin(checkpoint, model)}: {'; '.join(problems)}")


def origin(checkpoint: dict, model: L.LightningModule) -> str:
    """Whose weights the checkpoint holds, said against ``model``: another class's, or
    the same class's with other arguments (a data module may link other sizes)."""
    hparams = checkpoint.get("hyper_parameters", {})
    own_class = type(model).__name__
    saved_class = str(hparams.get("_class_path", "")).rsplit(".", 1)[-1]
    if saved_class and saved_class != own_class:
        return f"weights of {saved_class}, not of {own_class}"
    changed = [
        f"{name} {hparams[name]!r} there, {value!r} here"
        for name, value in model.hparams.items()
        if name in hparams and not name.startswith("_") and plain(hparams[name]) != plain(value)
    ]
    if changed:
        return f"{own_class} weights saved with other arguments ({'; '.join(changed)})"
    return f"weights that do not fit {own_class}"


def plain(value: Any) -> Any:
    """A hyperparameter for comparison: tuples and lists alike (YAML makes lists)."""
    return list(value) if isinstance(value, tuple) else value


def shapes(names: list[str], saved: dict, own: dict) -> str:
    """``name: [checkpoint shape] vs [model shape]`` for the first few names."""
    shown = [f"{n}: {list(saved[n].shape)} there, {list(own[n].shape)} here" for n in names]
    return quoted(shown, quote=False)


def quoted(items: list[str], quote: bool = True) -> str:
    """The first ``SHOWN_NAMES`` items, and how many more."""
    shown = ", ".join(item if not quote else f"'{item}'" for item in items[:SHOWN_NAMES])
    more = len(items) - SHOWN_NAMES
    return f"{shown}, and {more} more" if more > 0 else shown
