"""``report.md``: the write-up in Markdown, its pictures copied into ``figures/`` beside
it so that the folder can be moved or committed as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

from genlab.report.runs import Picture, RunRecord
from genlab.report.sections import Section
from genlab.report.summary import (
    SUMMARY_COLUMNS,
    SUMMARY_NOTE,
    fact_lines,
    file_slug,
    group_headings,
    measure_lines,
    metrics_line,
    missing_line,
    run_heading,
    summary_rows,
)

FIGURES_FOLDER = "figures"


def write_markdown(sections: list[Section], title: str, path: Path) -> None:
    """Write ``path`` (``report.md``) and copy the PNGs into ``figures/`` beside it."""
    figures = path.parent / FIGURES_FOLDER
    figures.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", "## Summary", "", *summary_table(sections), "", SUMMARY_NOTE]
    number = 0
    for heading, section in zip(group_headings(sections), sections, strict=True):
        if heading:
            lines += ["", f"# {heading}"]
        lines += ["", f"## {section.heading}"]
        if section.description:
            lines += ["", section.description]
        for run in section.runs:
            number += 1
            lines += run_lines(run, figures, prefix=f"{number:02d}-{file_slug(run.name)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def summary_table(sections: list[Section]) -> list[str]:
    lines = [
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in SUMMARY_COLUMNS) + "|",
    ]
    lines += [
        "| " + " | ".join(cell(value) for value in row) + " |" for row in summary_rows(sections)
    ]
    return lines


def run_lines(run: RunRecord, figures: Path, prefix: str) -> list[str]:
    lines = ["", f"### {run_heading(run)}", ""]
    lines += [f"**{note}**  " for note in [*run.notes, *run.caveats]]
    lines += [f"- {line}" for line in measure_lines(run)]
    lines += ["", *(f"{line}  " for line in fact_lines(run))]
    if run.metrics:
        lines.append(metrics_line(run))
    for picture in run.pictures:
        lines += ["", *picture_lines(picture, run, figures, prefix)]
    return lines


def picture_lines(picture: Picture, run: RunRecord, figures: Path, prefix: str) -> list[str]:
    """A figure: an image link to its copy in ``figures/``, a text in a fenced block, or
    a line naming it missing."""
    if picture.path is None:
        return [f"*{missing_line(picture, run)}*"]
    if picture.text is not None:
        return [f"{picture.caption} ({picture.file}):", "", "```text", picture.text, "```"]
    copy = figures / f"{prefix}-{picture.file}"
    shutil.copyfile(picture.path, copy)
    return [f"![{picture.caption}]({FIGURES_FOLDER}/{copy.name})", "", f"*{picture.caption}*"]
