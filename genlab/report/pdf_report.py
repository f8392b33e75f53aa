"""``report.pdf``: the write-up drawn page by page with matplotlib (no LaTeX): the
summary table first, then one page or more per question, its numbers at the top and its
pictures in a grid below (six to a page)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

from genlab.callbacks.io import use_file_backend

use_file_backend()

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from genlab.report.runs import Picture, RunRecord  # noqa: E402
from genlab.report.sections import Section  # noqa: E402
from genlab.report.summary import (  # noqa: E402
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

PAGE = (11.69, 8.27)  # A4 landscape, inches
ROWS_PER_PAGE = 18  # summary table rows
COLUMNS = 3  # pictures side by side
WIDE = 2.5  # a picture wider than this many heights is a strip, given a row of its own
LINE_HEIGHT = 0.021  # of the page, for 8-point text
WRAP = 160  # characters per line of text
TABLE_FONT_SIZES = (9, 8, 7, 6.5, 6, 5.5, 5)  # tried in turn until the summary fits the width
FILLED_WIDTH = 0.9  # of the table's axes: what text measured on screen may fill on paper
# the page's summary leaves out the run folder, which each question's page gives in full
TABLE_COLUMNS = tuple(column for column in SUMMARY_COLUMNS if column != "run folder")
LONGEST_PATH = 34  # characters of a path in the summary table; longer ones keep their end
MARGIN = 0.04
SLOT_TEXT_WIDTH = 70  # characters per line of a text figure in its slot
TEXT_POINTS = 5  # font size of a text figure; its lines are 1.25 times as tall


def write_pdf(sections: list[Section], title: str, path: Path) -> None:
    """Write the write-up of ``sections`` as a PDF at ``path``."""
    with PdfPages(path, metadata={"Title": title, "Creator": "genlab report"}) as pdf:
        for figure in [*summary_pages(sections, title), *all_section_pages(sections)]:
            pdf.savefig(figure)
            plt.close(figure)


def all_section_pages(sections: list[Section]) -> Iterator[Figure]:
    """Every section's pages, headed by its course too when the write-up has several."""
    several = any(group_headings(sections))
    for section in sections:
        group = section.course or "Run folders"
        yield from section_pages(section, f"{group}: {section.heading}" if several else None)


def shortened(text: str) -> str:
    """A path short enough for a table cell: its end is what tells runs apart."""
    return text if len(text) <= LONGEST_PATH else "..." + text[-(LONGEST_PATH - 3) :]


def table_cells(row: list[str]) -> list[str]:
    """A summary row for the page (``TABLE_COLUMNS``), its config path shortened."""
    cells = dict(zip(SUMMARY_COLUMNS, row, strict=True))
    return [
        shortened(cells[column]) if column == "config" else cells[column]
        for column in TABLE_COLUMNS
    ]


def chunks(items: list, size: int) -> list[list]:
    """``items`` in consecutive lists of ``size``."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def summary_pages(sections: list[Section], title: str) -> Iterator[Figure]:
    """The summary table, ``ROWS_PER_PAGE`` runs to a page, under the title and a note
    on where its numbers come from."""
    rows = [table_cells(row) for row in summary_rows(sections)]
    for number, rows_of_page in enumerate(chunks(rows, ROWS_PER_PAGE)):
        figure = plt.figure(figsize=PAGE)
        heading = title if number == 0 else f"{title}: summary (continued)"
        figure.text(MARGIN, 0.95, heading, fontsize=16, weight="bold", va="top")
        note = "\n".join(textwrap.wrap(SUMMARY_NOTE, WRAP))
        figure.text(MARGIN, 0.9, note, fontsize=7, color="0.35", va="top")
        axes = figure.add_axes((MARGIN, MARGIN, 1 - 2 * MARGIN, 0.8))
        axes.axis("off")
        draw_table(figure, axes, rows_of_page)
        yield figure


def draw_table(figure: Figure, axes: plt.Axes, rows: list[list[str]]) -> None:
    """The summary table at the largest font size whose measured columns fit the page
    (the smallest size when none does)."""
    columns = list(range(len(TABLE_COLUMNS)))
    for fontsize in TABLE_FONT_SIZES:
        table = axes.table(cellText=rows, colLabels=TABLE_COLUMNS, loc="upper left")
        table.auto_set_font_size(False)
        table.set_fontsize(fontsize)
        table.auto_set_column_width(columns)
        table.scale(1, 1.4)
        figure.canvas.draw()
        if sum(table[0, column].get_width() for column in columns) <= FILLED_WIDTH:
            return
        table.remove()
    axes.add_table(table)


def section_lines(section: Section) -> list[tuple[str, str]]:
    """The text of a section's first page as (line, weight) pairs, wrapped."""
    lines = [(line, "normal") for line in textwrap.wrap(section.description, WRAP)]
    for run in section.runs:
        lines.append((run_heading(run), "bold"))
        texts = [*run.notes, *run.caveats, *measure_lines(run), *fact_lines(run)]
        texts += [metrics_line(run)] if run.metrics else []
        texts += [missing_line(p, run) for p in run.pictures if p.path is None]
        lines += [(wrapped, "normal") for text in texts for wrapped in textwrap.wrap(text, WRAP)]
    return lines


def section_pages(section: Section, heading: str | None = None) -> Iterator[Figure]:
    """The pages of one section: heading (``section.heading`` unless given) and numbers,
    then its pictures six to a page (fewer on the first page when the text leaves less
    room)."""
    heading = heading or section.heading
    lines = section_lines(section)
    pictures = [(run, p) for run in section.runs for p in run.pictures if p.path is not None]
    rows = picture_rows(pictures)
    text_bottom = 0.9 - LINE_HEIGHT * len(lines)
    first_rows = 2 if text_bottom > 0.6 else 1 if text_bottom > 0.3 else 0
    first, rest = rows[:first_rows], rows[first_rows:]
    figure = page_with_heading(heading)
    for number, (line, weight) in enumerate(lines):
        y = 0.9 - LINE_HEIGHT * number
        figure.text(MARGIN, y, line, fontsize=8, weight=weight, va="top")
    draw_pictures(figure, first, top=text_bottom - 0.02, rows=max(first_rows, 1))
    yield figure
    for rows_of_page in chunks(rest, 2):
        figure = page_with_heading(f"{heading} (continued)")
        draw_pictures(figure, rows_of_page, top=0.88, rows=2)
        yield figure


def is_wide(picture: Picture) -> bool:
    """Whether a picture is a strip (wider than ``WIDE`` times its height), too thin to
    read in one slot: a query panel's row of plots, for example."""
    if picture.text is not None:
        return False
    height, width = mpimg.imread(picture.path).shape[:2]
    return width > WIDE * height


def picture_rows(pictures: list[tuple[RunRecord, Picture]]) -> list[tuple[list, bool]]:
    """The pictures in rows of up to ``COLUMNS``, in order, each strip on a row of its
    own; with each row, whether it is a strip."""
    rows, row = [], []
    for item in pictures:
        if is_wide(item[1]):
            rows.extend([(row, False), ([item], True)] if row else [([item], True)])
            row = []
            continue
        row.append(item)
        if len(row) == COLUMNS:
            rows.append((row, False))
            row = []
    return rows + [(row, False)] if row else rows


def page_with_heading(heading: str) -> Figure:
    """A blank page with ``heading`` at its top."""
    figure = plt.figure(figsize=PAGE)
    figure.text(MARGIN, 0.96, heading, fontsize=14, weight="bold", va="top")
    return figure


def draw_pictures(figure: Figure, lines: list[tuple[list, bool]], top: float, rows: int) -> None:
    """Lay ``lines`` of pictures (``picture_rows``) out in a grid of ``rows`` x
    ``COLUMNS`` between ``top`` and the bottom margin (a strip alone on its line spans
    it), each titled by its run and caption."""
    height = (top - MARGIN) / rows
    for row, (pictures, strip) in enumerate(lines):
        width = (1 - 2 * MARGIN) / (1 if strip else COLUMNS)
        for column, (run, picture) in enumerate(pictures):
            left = MARGIN + column * width
            bottom = top - (row + 1) * height
            box = (left + 0.01, bottom + 0.01, width - 0.02, height - 0.05)
            draw_picture(figure.add_axes(box), run, picture, height)


def draw_picture(axes: plt.Axes, run: RunRecord, picture: Picture, height: float) -> None:
    """One picture (or text figure) in its slot's axes, titled by its run and caption;
    ``height`` is the slot's, in page fractions."""
    axes.axis("off")
    title = "\n".join(textwrap.wrap(f"{run.name}: {picture.caption}", 60)[:2])
    axes.set_title(title, fontsize=7)
    if picture.text is not None:
        lines = int((height - 0.05) * PAGE[1] * 72 / (1.25 * TEXT_POINTS))
        text = text_for_slot(picture.text, lines)
        axes.text(0, 1, text, family="monospace", fontsize=TEXT_POINTS, va="top")
    else:
        axes.imshow(mpimg.imread(picture.path), interpolation="nearest")


def text_for_slot(text: str, height: int) -> str:
    """A text figure wrapped and cut to ``height`` lines, what one picture slot holds."""
    lines = [
        part for line in text.splitlines() for part in textwrap.wrap(line, SLOT_TEXT_WIDTH) or [""]
    ]
    return "\n".join(lines[:height] + (["[...]"] if len(lines) > height else []))
