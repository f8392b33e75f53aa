"""The words and numbers every format of the write-up shows the same way: the summary
table's rows and each run's lines. Figures are given to four decimals."""

from __future__ import annotations

import re

from genlab.course.progress import format_duration
from genlab.report.runs import Picture, RunRecord
from genlab.report.sections import Section

SUMMARY_COLUMNS = (
    "question",
    "model",
    "data",
    "test figure",
    "nats",
    "bits",
    "parameters",
    "epochs",
    "training time",
    "run folder",
    "config",
)

SUMMARY_NOTE = (
    "nats and bits: each run's headline test figure (its section lists them all); "
    "parameters: every tensor of the checkpoint's state_dict; epochs: completed epochs "
    "(and optimiser steps) in last.ckpt, and whether it is a course's quick size, "
    "not its own; training time: wall time of the fit's "
    "TensorBoard events, summed over resumed sessions."
)


def four_decimals(value: float) -> str:
    return f"{value:.4f}"


def count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def epochs_text(run: RunRecord) -> str:
    """``3 (120 steps)``, or ``?`` when no checkpoint says."""
    if run.epochs is None:
        return "?"
    quick = ", quick size" if run.quick_size else ""
    return f"{run.epochs} ({count(run.steps)} steps{quick})"


def time_text(run: RunRecord) -> str:
    return "?" if run.training_seconds is None else format_duration(run.training_seconds)


def summary_row(run: RunRecord) -> list[str]:
    """One run's row of the summary table (``SUMMARY_COLUMNS``); a run without test
    figures shows its status (not run, not tested, failed) in their place."""
    if not run.ran:
        return [run.name, "", "", run.status, *[""] * 5, str(run.folder), run.config]
    headline = run.measures[0] if run.measures else None
    return [
        run.name,
        run.model,
        run.data,
        headline.label if headline else run.status,
        four_decimals(headline.nats) if headline else "",
        four_decimals(headline.bits) if headline else "",
        count(run.parameters),
        epochs_text(run),
        time_text(run),
        str(run.folder),
        run.config,
    ]


def summary_rows(sections: list[Section]) -> list[list[str]]:
    return [summary_row(run) for section in sections for run in section.runs]


def group_headings(sections: list[Section]) -> list[str | None]:
    """For each section, the heading of its course ("Run folders" for plain runs) when
    it starts a new one; None throughout when the write-up covers one group only."""
    groups = [section.course or "Run folders" for section in sections]
    if len(set(groups)) == 1:
        return [None] * len(groups)
    return [
        group if index == 0 or group != groups[index - 1] else None
        for index, group in enumerate(groups)
    ]


def run_heading(run: RunRecord) -> str:
    """``2a shapes: PixelCNN on Shapes (20x20)``; the name alone for a run not run."""
    return f"{run.name}: {run.model} on {run.data}" if run.ran else run.name


def measure_lines(run: RunRecord) -> list[str]:
    """``NLL per dim: 0.6270 nats/dim = 0.9046 bits/dim``, one per test figure."""
    return [
        f"{measure.label}: {four_decimals(measure.nats)} nats = "
        f"{four_decimals(measure.bits)} bits ({measure.metric})"
        for measure in run.measures
    ]


def fact_lines(run: RunRecord) -> list[str]:
    """Size and length of training (for a run that ran), and where the run and its
    config are."""
    where = f"run folder: {run.folder}; config: {run.config}"
    if not run.ran:
        return [where]
    epochs = "epochs unknown" if run.epochs is None else f"{run.epochs} epoch{plural(run.epochs)}"
    return [
        f"{count(run.parameters)} parameters; {epochs} ({count(run.steps)} steps); "
        f"trained for {time_text(run)}",
        where,
    ]


def metrics_line(run: RunRecord) -> str:
    """Every test metric of ``metrics.json``, so that none is left out of the write-up."""
    if not run.metrics:
        return ""
    values = ", ".join(f"{name} = {four_decimals(value)}" for name, value in run.metrics.items())
    return f"all test metrics: {values}"


def missing_line(picture: Picture, run: RunRecord) -> str:
    return f"missing picture: {picture.file} ({picture.caption}) is not in {run.folder}"


def file_slug(text: str) -> str:
    """``2a shapes`` as ``2a_shapes``: a safe part of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def plural(number: int) -> str:
    return "" if number == 1 else "s"
