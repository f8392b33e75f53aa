"""Small trained weights that ship with genlab, to explore a model without training it.

Each file ``genlab/pretrained/<family>/<data>.ckpt`` is a Lightning checkpoint of a fit
made by a config in ``configs/``, cut down to what loading needs (weights, model and data
arguments, no optimiser state); ``genlab/pretrained/README.md`` gives for each the
command that made it, its test figure, its md5 and the data it saw.

    from genlab import pretrained
    model = pretrained.load("gated_pixelcnn/mnist")

and on the command line ``--ckpt_path pretrained:gated_pixelcnn/mnist`` (``test`` and
``predict``; the output goes to a new run folder).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import lightning as L
import torch

from genlab.provenance import DATA_CLASS_KEY

FOLDER = Path(__file__).resolve().parent
PREFIX = "pretrained:"
# What loading a module, and holding a command against it, needs of a checkpoint.
KEPT_KEYS = (
    "state_dict",
    "hyper_parameters",
    "hparams_name",
    "datamodule_hyper_parameters",
    "datamodule_hparams_name",
    DATA_CLASS_KEY,
    "pytorch-lightning_version",
    "epoch",
    "global_step",
)


def available() -> list[str]:
    """The names of the shipped weights, such as ``gated_pixelcnn/mnist``."""
    return sorted(
        path.relative_to(FOLDER).with_suffix("").as_posix() for path in FOLDER.rglob("*.ckpt")
    )


def path_of(name: str) -> Path:
    """The file of the weights called ``name``; a ``ValueError`` listing the names there
    are when there is none of that name."""
    path = FOLDER / f"{name}.ckpt"
    if not path.is_file():
        names = ", ".join(available()) or "none"
        raise ValueError(f"no pretrained weights called {name!r} (available: {names})")
    return path


def resolve(ckpt_path: str | None) -> str | None:
    """``--ckpt_path`` with ``pretrained:<name>`` replaced by the file of those weights."""
    if ckpt_path is None or not ckpt_path.startswith(PREFIX):
        return ckpt_path
    return str(path_of(ckpt_path.removeprefix(PREFIX)))


def load(name: str, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """The module of the weights called ``name``, in eval mode."""
    path = path_of(name)
    hparams = torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"]
    module_name, _, class_name = hparams["_class_path"].rpartition(".")
    module_class = getattr(importlib.import_module(module_name), class_name)
    return module_class.load_from_checkpoint(path, map_location=map_location).eval()


def md5_of(path: str | Path) -> str:
    """The md5 of a file, as the README lists it."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def export(checkpoint_path: str | Path, name: str, folder: Path = FOLDER) -> Path:
    """Write the weights of a fit's checkpoint as ``<folder>/<name>.ckpt``, without the
    optimiser and loop states a resumed fit needs; returns the new file."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    if "hyper_parameters" not in checkpoint or "_class_path" not in checkpoint["hyper_parameters"]:
        raise ValueError(f"{checkpoint_path}: not a checkpoint written by genlab fit")
    kept = {key: checkpoint[key] for key in KEPT_KEYS if key in checkpoint}
    target = folder / f"{name}.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(kept, target)
    return target
