"""The commands genlab adds to Lightning's: ``genlab course`` and ``genlab report``, and
the overview that ``genlab``, ``genlab -h`` and ``genlab --help`` print.

``genlab.cli.main`` hands them the command line before LightningCLI sees it, so they
keep their own argparse parsers; a mistake in them is an ``ArgumentError`` that
``genlab.errors.one_line_errors`` reports in one line with exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.course.manifest import load_manifest
from genlab.course.parser import CommandParser
from genlab.course.runner import run_course
from genlab.report.command import report_command

OVERVIEW = """\
genlab: a PyTorch Lightning lab of deep generative models (autoregressive models,
VAEs and adversarial autoencoders, diffusion) for people who teach, learn and
prototype them. Every model trains from one command, reports its test likelihood in
nats/dim and bits/dim, and draws what it learned into its run folder.

usage: genlab <command> [options]

commands:
  fit       train a model            genlab fit --config configs/pixelcnn/shapes.yaml
  validate  score a checkpoint on the validation split (--ckpt_path FILE)
  test      score a checkpoint on the test split, write metrics.json (--ckpt_path FILE)
  predict   draw samples from a checkpoint (--ckpt_path FILE)
  course    fit and test a course's questions, resumably
                                     genlab course courses/autoregressive.yaml --quick
  report    write up finished runs as HTML, PDF and Markdown
                                     genlab report runs/course/autoregressive-quick

'genlab <command> --help' lists a command's options; GENLAB_TRACEBACK=1 shows the full
traceback of an error instead of its one line."""


def genlab_command(argv: list[str]) -> bool:
    """Run ``argv`` when it is the overview, ``course`` or ``report``, and say whether
    it was; Lightning's commands (fit, validate, test, predict) are left to the caller."""
    if not argv or argv[0] in ("-h", "--help"):
        print(OVERVIEW)
        return True
    if argv[0] == "course":
        course_command(argv[1:])
        return True
    if argv[0] == "report":
        report_command(argv[1:])
        return True
    return False


def course_parser() -> CommandParser:
    parser = CommandParser(
        prog="genlab course",
        description="Fit and test every run of a course manifest (courses/<topic>.yaml), "
        "one after another, each in <root>/<question>/<run>/. Runs with metrics.json are "
        "skipped, a stopped fit resumes from its last.ckpt, and a failing run is recorded "
        "in <root>/course.json while the others go on (exit status 1 if any failed).",
    )
    parser.add_argument("manifest", type=Path, help="the course manifest, a YAML file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the quick sizes (fewer epochs, less data), for 2 CPU cores",
    )
    parser.add_argument(
        "--only", help="comma-separated question ids to run, e.g. 2a,3b (default: all)"
    )
    parser.add_argument(
        "--root",
        type=Path,
        help="folder of the course's runs (default runs/course/<topic>, or "
        "runs/course/<topic>-quick with --quick)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a manifest variable, e.g. --set mnist=data/mnist.npz (repeatable)",
    )
    return parser


def variable_settings(settings: list[str]) -> dict[str, str]:
    """``["mnist=a.npz"]`` as ``{"mnist": "a.npz"}``."""
    variables = {}
    for setting in settings:
        name, equals, value = setting.partition("=")
        if not equals or not name:
            raise argparse.ArgumentError(None, f"--set {setting}: expected NAME=VALUE")
        variables[name] = value
    return variables


def course_command(argv: list[str]) -> None:
    """``genlab course``: exits with status 1 when a run failed."""
    args = course_parser().parse_args(argv)
    failed = run_course(
        load_manifest(args.manifest),
        args.root,
        quick=args.quick,
        only=args.only.split(",") if args.only else None,
        variables=variable_settings(args.set),
        announce=lambda line: print(f"genlab course: {line}", flush=True),
    )
    if failed:
        raise SystemExit(1)
