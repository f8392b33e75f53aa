"""``report.html``: the write-up as one self-contained page (pictures embedded as
base64 PNG, styles inline), which any browser opens without the run folders."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from genlab.report.runs import Picture, RunRecord
from genlab.report.sections import Section
from genlab.report.summary import (
    SUMMARY_COLUMNS,
    SUMMARY_NOTE,
    fact_lines,
    group_headings,
    measure_lines,
    metrics_line,
    missing_line,
    run_heading,
    summary_rows,
)

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; }
td.number { text-align: right; font-family: monospace; font-size: 1.15em; white-space: nowrap; }
figure { display: inline-block; max-width: 48%; margin: 0.5em 1em 1em 0;
         vertical-align: top; }
img { max-width: 100%; max-height: 480px; image-rendering: pixelated; }
figcaption, .facts { color: #555; font-size: 0.9em; }
.note, .missing { color: #a40000; }
pre { background: #f4f4f4; padding: 0.5em; white-space: pre-wrap; }
"""
NUMBER_COLUMNS = {"nats", "bits"}


def write_html(sections: list[Section], title: str, path: Path) -> None:
    """Write the write-up of ``sections`` as one HTML file at ``path``."""
    body = [f"<h1>{escape(title)}</h1>", summary_table(sections)]
    for heading, section in zip(group_headings(sections), sections, strict=True):
        if heading:
            body.append(f"<h1>{escape(heading)}</h1>")
        body.append(section_html(section))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    path.write_text(page, encoding="utf-8")


def summary_table(sections: list[Section]) -> str:
    header = "".join(f"<th>{escape(name)}</th>" for name in SUMMARY_COLUMNS)
    rows = []
    for row in summary_rows(sections):
        cells = (
            f'<td class="number">{escape(value)}</td>'
            if column in NUMBER_COLUMNS
            else f"<td>{escape(value)}</td>"
            for column, value in zip(SUMMARY_COLUMNS, row, strict=True)
        )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    body = "\n".join(rows)
    return (
        '<h2>Summary</h2>\n<div class="wide"><table>\n'
        f"<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>\n"
        f'<p class="facts">{escape(SUMMARY_NOTE)}</p>'
    )


def section_html(section: Section) -> str:
    parts = [f"<section>\n<h2>{escape(section.heading)}</h2>"]
    if section.description:
        parts.append(f"<p>{escape(section.description)}</p>")
    parts += [run_html(run) for run in section.runs]
    return "\n".join(parts) + "\n</section>"


def run_html(run: RunRecord) -> str:
    parts = [f"<h3>{escape(run_heading(run))}</h3>"]
    parts += [f'<p class="note">{escape(note)}</p>' for note in [*run.notes, *run.caveats]]
    if run.measures:
        items = "".join(f"<li>{escape(line)}</li>" for line in measure_lines(run))
        parts.append(f"<ul>{items}</ul>")
    parts += [f'<p class="facts">{escape(line)}</p>' for line in fact_lines(run)]
    if run.metrics:
        parts.append(f'<p class="facts">{escape(metrics_line(run))}</p>')
    parts += [picture_html(picture, run) for picture in run.pictures]
    return "\n".join(parts)


def picture_html(picture: Picture, run: RunRecord) -> str:
    """A figure: the PNG inline, a text in a ``pre`` block, or a line naming it missing."""
    if picture.path is None:
        return f'<p class="missing">{escape(missing_line(picture, run))}</p>'
    caption = f"<figcaption>{escape(picture.caption)} ({escape(picture.file)})</figcaption>"
    if picture.text is not None:
        return f"<figure><pre>{escape(picture.text)}</pre>{caption}</figure>"
    encoded = base64.b64encode(picture.path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{escape(picture.caption)}" '
        f'src="data:image/png;base64,{encoded}">{caption}</figure>'
    )
