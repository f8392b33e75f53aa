"""Checkpoints that are never half written, and that are read with one clear error.

Lightning's ``TorchCheckpointIO`` writes a checkpoint through fsspec into a temporary
file in the system's temporary folder and then moves it over the target; when that
folder is on another file system (a tmpfs ``/tmp``, a mounted run folder) the move is a
copy that truncates the target first, and the data is never synced. A run killed during
the copy loses its last good ``last.ckpt``. ``AtomicCheckpointIO`` writes beside the
target and renames, which replaces the file in one step on every POSIX file system.
"""

from __future__ import annotations

import glob
import io
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


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, file size limit, no permission)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves a local checkpoint to a temporary file in the target's folder, syncs it to
    disk and renames it over the target, so the target is always either the old
    checkpoint or the complete new one. Temporary files that a killed run left beside
    the target are removed on the next save. A write that fails ends with
    ``CheckpointWriteError`` naming the file and the system's reason; the old checkpoint
    stays. Remote paths go through Lightning as before."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        temporary = target.with_name(f"{temporary_prefix(target)}{uuid.uuid4().hex}.tmp")
        try:
            write_synced(serialized(checkpoint), temporary)
            os.replace(temporary, target)
        except OSError as error:
            reason = error.strerror or first_line(error)
            raise CheckpointWriteError(f"could not write checkpoint {target}: {reason}") from error
        finally:
            temporary.unlink(missing_ok=True)


def serialized(checkpoint: dict[str, Any]) -> memoryview:
    """The bytes of ``torch.save(checkpoint)``. Serialising in memory first lets a
    failing write report the system's reason (torch's own file writer reports only an
    "unexpected pos")."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getbuffer()


def write_synced(data: memoryview, path: Path) -> None:
    """Write ``data`` to ``path`` and make sure it is on disk."""
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def temporary_prefix(target: Path) -> str:
    """How the temporary files of ``target`` begin: ``.last.ckpt.``."""
    return f".{target.name}."


def remove_stale_temporaries(target: Path) -> None:
    """Remove the temporary files of ``target`` that an interrupted save left behind."""
    for stale in target.parent.glob(f"{glob.escape(temporary_prefix(target))}*.tmp"):
        stale.unlink(missing_ok=True)


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
    page of missing, unexpected and resized tensors). The model's ``on_load_checkpoint``
    runs first, as Lightning runs it before loading (it may convert an older layout)."""
    model.on_load_checkpoint(checkpoint)
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
