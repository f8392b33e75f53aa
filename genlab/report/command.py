"""``genlab report RUN_OR_COURSE_DIR ... --out DIR``: the command line of the write-up."""

from __future__ import annotations

from pathlib import Path

from genlab.course.parser import CommandParser
from genlab.report.write import write_report


def report_parser() -> CommandParser:
    """The parser of ``genlab report`` (mistakes raise ``ArgumentError``)."""
    parser = CommandParser(
        prog="genlab report",
        description="Write up finished runs as report.html (one self-contained file), "
        "report.pdf and report.md (pictures in figures/ beside it): a summary table, "
        "then each course question (or each run folder) with its test figures, "
        "training curve and pictures. Reads run folders only; trains nothing.",
    )
    parser.add_argument(
        "folders",
        nargs="+",
        type=Path,
        metavar="RUN_OR_COURSE_DIR",
        help="a folder 'genlab course' ran, a run folder, or a folder holding run folders",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/report"), help="where to write (runs/report)"
    )
    parser.add_argument("--title", help="the write-up's title (default: the course's)")
    return parser


def report_command(argv: list[str]) -> None:
    """``genlab report``: writes the files and says where they are."""
    args = report_parser().parse_args(argv)
    files = write_report(args.folders, args.out, args.title)
    for path in files.values():
        print(f"genlab report: wrote {path}")
