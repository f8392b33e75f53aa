"""Write the three formats of a write-up from run and course folders."""

from __future__ import annotations

from pathlib import Path

from genlab.report.html_report import write_html
from genlab.report.markdown_report import write_markdown
from genlab.report.pdf_report import write_pdf
from genlab.report.sections import Section, collect_sections


def default_title(sections: list[Section]) -> str:
    """The course's title when the write-up covers one course, else a plain one."""
    courses = {section.course for section in sections}
    return courses.pop() if len(courses) == 1 and None not in courses else "genlab write-up"


def write_report(paths: list[Path], out: Path, title: str | None = None) -> dict[str, Path]:
    """Write ``report.html``, ``report.pdf`` and ``report.md`` (pictures in
    ``figures/``) into ``out`` from the finished runs under ``paths``; trains nothing.
    Returns the files by format."""
    sections = collect_sections(paths)
    title = title or default_title(sections)
    out.mkdir(parents=True, exist_ok=True)
    files = {"html": out / "report.html", "pdf": out / "report.pdf", "md": out / "report.md"}
    write_html(sections, title, files["html"])
    write_pdf(sections, title, files["pdf"])
    write_markdown(sections, title, files["md"])
    return files
