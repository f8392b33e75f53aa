"""The sections of a write-up, found in the folders ``genlab report`` is given.

A folder that ``genlab course`` ran (it holds ``course.yaml``, the manifest copy, and
``course.json``, what became of each run) gives one section per question of the
manifest, in its order, with the figures the manifest asks for; runs of a course run
at its quick size say so, and whether they were still improving when they stopped. Any
other folder is searched for run folders, one section each, showing every picture they
hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genlab.course.manifest import load_manifest
from genlab.course.runner import FAILED, MANIFEST_COPY, STATUS_FILE
from genlab.report.runs import RunRecord, is_run_folder, read_run


@dataclass
class Section:
    """One question of a course (or one plain run) and its runs."""

    course: str | None
    id: str | None
    title: str
    description: str
    runs: list[RunRecord]

    @property
    def heading(self) -> str:
        return f"{self.id}. {self.title}" if self.id else self.title


def collect_sections(paths: list[Path]) -> list[Section]:
    """The sections of every course and run folder under ``paths``, in the order given;
    a path that holds neither is an error naming it."""
    sections = []
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such folder")
        found = sections_under(path, path)
        if not found:
            raise ValueError(
                f"{path}: no course ({MANIFEST_COPY}) and no run folder (metrics.json, "
                "checkpoints/ or fit_config.yaml) in it"
            )
        sections += found
    return sections


def is_course_folder(path: Path) -> bool:
    return (path / MANIFEST_COPY).is_file() and (path / STATUS_FILE).is_file()


def sections_under(path: Path, base: Path) -> list[Section]:
    """The course in ``path``, the run that ``path`` is, or those found below it; runs
    are named by their path from ``base``, the folder given on the command line."""
    if is_course_folder(path):
        return course_sections(path)
    if is_run_folder(path):
        return [run_section(path, base)]
    return [
        section
        for child in sorted(path.iterdir())
        if child.is_dir()
        for section in sections_under(child, base)
    ]


def run_section(folder: Path, base: Path) -> Section:
    """A plain run folder as a section of its own, titled by its path."""
    name = str(folder.relative_to(base)) if folder != base else folder.name
    return Section(None, None, f"Run {folder}", "", [read_run(folder, name)])


def course_sections(root: Path) -> list[Section]:
    """One section per question of the course run in ``root``, each run read from
    ``root/<question>/<run>`` and failures taken from ``course.json``."""
    manifest = load_manifest(root / MANIFEST_COPY)
    status_file = json.loads((root / STATUS_FILE).read_text(encoding="utf-8"))
    runs, quick = status_file.get("runs", {}), bool(status_file.get("quick"))
    sections = []
    for question in manifest.questions:
        records = []
        for run in question.runs:
            key = f"{question.id}/{run.name}"
            record = read_run(
                root / key, f"{question.id} {run.name}", config=run.config, figures=run.figures
            )
            status = runs.get(key, {})
            if status.get("state") == FAILED:
                record.notes.insert(0, f"failed at {status['stage']}: {status['error']}")
            record.quick_size = quick
            records.append(record)
        sections.append(
            Section(manifest.title, question.id, question.title, question.description, records)
        )
    return sections
