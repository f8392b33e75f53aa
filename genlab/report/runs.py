"""What one run folder holds, read for a write-up; nothing here trains or writes.

A run folder is what ``genlab fit`` (and ``test``) leave: ``fit_config.yaml``,
``checkpoints/{best,last}.ckpt``, ``metrics.json``, TensorBoard event files and the
callbacks' pictures. Every part may be missing; the record then says so instead of
failing, so a write-up of half-finished work still shows what is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

from genlab.checkpoints import read_checkpoint
from genlab.course.figures import FIGURE_KINDS, caption_of
from genlab.errors import first_line
from genlab.report.measures import Measure, measures_of

LONGEST_TEXT = 2000  # characters of a text figure shown (the last samples drawn)
TEXT_BLOCK_HEADER = "===== step"  # how TextSamples heads each block of samples.txt
CURVE_TAGS = ("val/nats_per_dim", "val/recon_nats_per_dim")  # judged for convergence
STILL_FALLING = 0.01  # a last validation this much (relative) below the one before


@dataclass(frozen=True)
class Picture:
    """One figure file of a run: a PNG, a text (``samples.txt``), or missing (no path)."""

    caption: str
    file: str
    path: Path | None
    text: str | None = None


@dataclass
class RunRecord:
    """Everything a write-up says about one run (model and data are empty for a run
    whose folder does not exist yet)."""

    name: str
    folder: Path
    model: str
    data: str
    config: str
    metrics: dict[str, float]
    measures: list[Measure]
    parameters: int | None
    epochs: int | None
    steps: int | None
    training_seconds: float | None
    pictures: list[Picture]
    notes: list[str] = field(default_factory=list)
    validation: tuple[str, list[float]] | None = None
    quick_size: bool = False

    @property
    def ran(self) -> bool:
        return self.folder.is_dir()

    @property
    def caveats(self) -> list[str]:
        """What the write-up says beside the figures of a run trained at a course's quick
        size (nothing for other runs)."""
        return [quick_size_caveat(self.validation)] if self.quick_size and self.ran else []

    @property
    def status(self) -> str:
        """``tested``, or the first note (``not run``, ``not tested``, a failure)."""
        return self.notes[0] if self.notes else "tested"


def is_run_folder(path: Path) -> bool:
    """A folder that ``genlab fit`` or ``test`` wrote."""
    return (
        (path / "metrics.json").is_file()
        or (path / "checkpoints").is_dir()
        or (path / "fit_config.yaml").is_file()
    )


def read_run(
    folder: Path, name: str, config: str | None = None, figures: tuple[str, ...] | None = None
) -> RunRecord:
    """The record of the run in ``folder``. ``config`` is the config it was made from
    (default: its ``fit_config.yaml``); ``figures`` the figure kinds to show (default:
    every picture the folder holds)."""
    fit = read_yaml(folder / "fit_config.yaml")
    if config is None:
        config = str(folder / "fit_config.yaml") if fit else "unknown"
    if not folder.is_dir():
        return not_run(folder, name, config)
    notes: list[str] = []
    tested = read_metrics_file(folder / "metrics.json", notes)
    if tested is None:
        notes.append("not tested")
    metrics = (tested or {}).get("metrics", {})
    model = short_class(fit.get("model"))
    parameters, epochs, steps = checkpoint_facts(folder, notes)
    events = fit_events(folder)
    return RunRecord(
        name=name,
        folder=folder,
        model=model,
        data=data_label((tested or {}).get("data") or fit.get("data")),
        config=config,
        metrics=metrics,
        measures=measures_of(metrics, model),
        parameters=parameters,
        epochs=epochs,
        steps=steps,
        training_seconds=events.training_seconds,
        pictures=pictures_of(folder, figures),
        notes=notes,
        validation=events.validation,
    )


def not_run(folder: Path, name: str, config: str) -> RunRecord:
    """The record of a run whose folder does not exist (yet): its name and config."""
    return RunRecord(
        name=name,
        folder=folder,
        model="",
        data="",
        config=config,
        metrics={},
        measures=[],
        parameters=None,
        epochs=None,
        steps=None,
        training_seconds=None,
        pictures=[],
        notes=["not run"],
    )


def read_yaml(path: Path) -> dict:
    """A YAML mapping, or an empty one when the file is missing or is not one."""
    try:
        contents = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return contents if isinstance(contents, dict) else {}


def read_metrics_file(path: Path, notes: list[str]) -> dict | None:
    """``metrics.json`` as ``genlab test`` wrote it, or None (with a note when the file
    is there but unreadable)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        notes.append(f"{path} unreadable ({first_line(error)})")
        return None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        notes.append(f"{path} holds no metrics mapping")
        return None
    return record


def short_class(section: Any) -> str:
    """``genlab.lightning_modules.PixelCNN`` of a config section as ``PixelCNN``."""
    if not isinstance(section, dict) or not section.get("class_path"):
        return "unknown"
    return str(section["class_path"]).rsplit(".", 1)[-1]


def data_label(section: Any) -> str:
    """A data section (class path and arguments) in a few words:
    ``Shapes (12x12)``, ``MNIST (mnist_10k.npz, coloured, 4 levels)``."""
    if not isinstance(section, dict):
        return "unknown"
    name = short_class(section).removesuffix("DataModule")
    arguments = section.get("init_args") or {}
    details = [str(arguments[key]) for key in ("preset", "dataset") if arguments.get(key)]
    if arguments.get("path"):
        details.append(Path(str(arguments["path"])).name)
    if arguments.get("image_size"):
        details.append(f"{arguments['image_size']}x{arguments['image_size']}")
    if arguments.get("colored"):
        details.append("coloured")
    if arguments.get("num_levels"):
        details.append(f"{arguments['num_levels']} levels")
    return f"{name} ({', '.join(details)})" if details else name


def checkpoint_facts(folder: Path, notes: list[str]) -> tuple[int | None, int | None, int | None]:
    """Parameters (every tensor of the state_dict), epochs and optimiser steps trained,
    from ``last.ckpt`` (``best.ckpt`` when there is no last)."""
    for name in ("last.ckpt", "best.ckpt"):
        path = folder / "checkpoints" / name
        if path.is_file():
            break
    else:
        return None, None, None
    try:
        checkpoint = read_checkpoint(path)
    except ValueError as error:
        notes.append(str(error).removeprefix("--ckpt_path "))
        return None, None, None
    parameters = sum(value.numel() for value in checkpoint["state_dict"].values())
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    epochs = progress.get("total", {}).get("processed")
    return parameters, epochs, checkpoint.get("global_step")


@dataclass(frozen=True)
class FitEvents:
    """What a run's TensorBoard events say of its fits: the wall time of training (None
    without fit events), and its validation figure (the first of ``CURVE_TAGS`` it
    logged) with the values in order of step (None when it logged none)."""

    training_seconds: float | None
    validation: tuple[str, list[float]] | None


def fit_events(folder: Path) -> FitEvents:
    """Read every event file of ``folder`` once. Training time sums, over the files a
    fit wrote (one per session, so a resumed fit counts each part), the time from the
    first event to the last; files without ``train/`` or ``val/`` figures (test,
    predict) are left out. A validation step logged twice (a resume) keeps its last
    value."""
    total = None
    curves: dict[str, dict[int, float]] = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        times, stages = [], set()
        for event in EventFileLoader(str(events)).Load():
            times.append(event.wall_time)
            for value in event.summary.value:
                stages.add(value.tag.split("/")[0])
                if value.tag in CURVE_TAGS:
                    curves.setdefault(value.tag, {})[event.step] = scalar_of(value)
        if times and stages & {"train", "val"}:
            total = (total or 0.0) + max(times) - min(times)
    tag = next((tag for tag in CURVE_TAGS if tag in curves), None)
    validation = None if tag is None else (tag, [curves[tag][s] for s in sorted(curves[tag])])
    return FitEvents(total, validation)


def scalar_of(value: Any) -> float:
    """A logged scalar, stored as ``simple_value`` or as a one-number tensor."""
    if value.HasField("simple_value"):
        return value.simple_value
    return float(tensor_util.make_ndarray(value.tensor))


def quick_size_caveat(curve: tuple[str, list[float]] | None) -> str:
    """What a run trained at a course's quick size says beside its figures: whether its
    validation ``curve`` (figure name and values) was still falling when it stopped."""
    if curve is None:
        return "quick size, not the course's: no validation curve to judge convergence by"
    tag, values = curve
    if len(values) < 2:
        return f"quick size, not the course's: one validation of {tag} only, convergence unknown"
    before, last = values[-2:]
    change = (before - last) / abs(before) if before else 0.0
    if change > STILL_FALLING:
        return (
            f"quick size, not converged: {tag} still fell {change:.1%} at its last "
            f"validation ({before:.4f} to {last:.4f})"
        )
    if abs(change) < 0.0005:
        return f"quick size, not the course's: {tag} changed less than 0.1% at its last validation"
    return f"quick size, not the course's: {tag} changed {-change:+.1%} at its last validation"


def pictures_of(folder: Path, figures: tuple[str, ...] | None) -> list[Picture]:
    """The files of the figure kinds ``figures``, present or missing; with None, every
    known figure file the folder holds and then any other PNG in it."""
    if figures is not None:
        files = [file for kind in figures for file in FIGURE_KINDS[kind].files]
    else:
        known = [file for kind in FIGURE_KINDS.values() for file in kind.files]
        others = sorted(path.name for path in folder.glob("*.png") if path.name not in known)
        files = [file for file in known if (folder / file).is_file()] + others
    return [picture(folder / file) for file in files]


def picture(path: Path) -> Picture:
    """A figure file, with its text when it is one, or missing."""
    if not path.is_file():
        return Picture(caption_of(path.name), path.name, None)
    text = last_text_block(path) if path.suffix == ".txt" else None
    return Picture(caption_of(path.name), path.name, path, text)


def last_text_block(path: Path) -> str:
    """The last samples of a text file that ``TextSamples`` appends to after every
    validation (the whole file when it has no step headers), cut to ``LONGEST_TEXT``."""
    text = path.read_text(encoding="utf-8", errors="replace")
    start = text.rfind(TEXT_BLOCK_HEADER)
    block = text[max(start, 0) :]
    return block if len(block) <= LONGEST_TEXT else block[:LONGEST_TEXT] + "\n[...]"
