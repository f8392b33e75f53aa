"""``genlab course``: run a course's questions one after another, resumably.

Every run of a question is a ``genlab fit`` then a ``genlab test`` (the same
``run_cli`` the command line calls), logged into its own folder,
``<root>/<question>/<run>/``, so the next call finds it: a run with ``metrics.json`` is
done and skipped, a fit that stopped goes on from its ``checkpoints/last.ckpt``, and a
run whose fit ended but whose test did not is only tested. A run that fails is recorded
with its one-line error in ``<root>/course.json`` and the course goes on. The root also
keeps a copy of the manifest, ``course.yaml``, from which ``genlab report`` lays out the
write-up.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genlab.cli import run_cli
from genlab.course.manifest import Manifest, Question, RunSpec, substituted
from genlab.course.progress import Estimate, format_duration
from genlab.errors import error_line

STATUS_FILE = "course.json"
MANIFEST_COPY = "course.yaml"
TESTED, FITTED, FAILED = "tested", "fitted", "failed"


def default_root(manifest_path: Path, quick: bool) -> Path:
    """``runs/course/<topic>``, or ``runs/course/<topic>-quick`` for the quick sizes, so
    the two sizes never mistake each other's runs for their own."""
    return Path("runs", "course", manifest_path.stem + ("-quick" if quick else ""))


def as_spelled_from_here(path: Path) -> Path:
    """``path`` relative to the working folder when it lies inside it. A resumed fit
    names its run folder that way (see ``genlab.cli.run_folder_of``), and the checkpoint
    callback keeps its best score only when the folder is spelled as when it saved."""
    resolved, here = path.resolve(), Path.cwd().resolve()
    return resolved.relative_to(here) if resolved.is_relative_to(here) else resolved


def command_line_value(value: Any) -> str:
    """A manifest value as ``genlab fit`` reads it after ``--key=``: strings as they
    are, anything else (numbers, booleans, null, lists, mappings) as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def run_arguments(run: RunSpec, folder: Path, variables: dict[str, Any], quick: bool) -> list[str]:
    """The arguments of ``genlab fit``/``test`` for one run (without the subcommand):
    its config, its overrides (and quick ones), and a TensorBoard logger writing into
    ``folder``."""
    course_root = folder.parent.parent
    settings = {**run.overrides, **(run.quick if quick else {})}
    logger = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {
            "save_dir": str(folder.parent),
            "name": "",
            "version": folder.name,
            "default_hp_metric": False,
        },
    }
    return [
        f"--config={run.config}",
        *(
            f"--{key}={command_line_value(substituted(value, variables, course_root))}"
            for key, value in settings.items()
        ),
        f"--trainer.logger={json.dumps(logger)}",
    ]


def checkpoint_to_test(folder: Path) -> Path:
    """The run's ``best.ckpt``, or its ``last.ckpt`` when it kept no best one."""
    for name in ("best.ckpt", "last.ckpt"):
        path = folder / "checkpoints" / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{folder}: the fit left no checkpoints/best.ckpt or last.ckpt")


class CourseStatus:
    """What became of each run (``tested``, ``fitted`` or ``failed`` with its error),
    kept in ``<root>/course.json`` and rewritten after every change."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        previous = json.loads(path.read_text()) if path.is_file() else {}
        self.runs: dict[str, dict[str, Any]] = previous.get("runs", {})
        self.header = header

    def fit_ended(self, key: str) -> bool:
        """Whether the run's fit ran to its end (only its test is left, or failed)."""
        run = self.runs.get(key, {})
        return run.get("state") == FITTED or run.get("stage") == "test"

    def record(self, key: str, state: str, **details: Any) -> None:
        self.runs[key] = {"state": state, **details}
        self.save()

    def save(self) -> None:
        """Write to a temporary file and rename, so a killed course leaves a whole file."""
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps({**self.header, "runs": self.runs}, indent=2) + "\n")
        os.replace(temporary, self.path)


class Course:
    """One session of ``genlab course``: the manifest, where its runs go, and how far
    they got."""

    def __init__(
        self,
        manifest: Manifest,
        root: Path,
        quick: bool,
        variables: dict[str, Any],
        announce: Callable[[str], None],
    ) -> None:
        self.manifest = manifest
        self.root = as_spelled_from_here(root)
        self.quick = quick
        self.variables = {**manifest.variables, **variables}
        self.announce = announce
        self.root.mkdir(parents=True, exist_ok=True)
        self.status = CourseStatus(
            self.root / STATUS_FILE,
            {"manifest": str(manifest.path), "quick": quick, "variables": self.variables},
        )

    def folder(self, question: Question, run: RunSpec) -> Path:
        return self.root / question.id / run.name

    def is_done(self, question: Question, run: RunSpec) -> bool:
        return (self.folder(question, run) / "metrics.json").is_file()

    def run(self, questions: list[Question]) -> list[str]:
        """Run every run of ``questions`` that is not done; the keys of those that failed."""
        (self.root / MANIFEST_COPY).write_text(self.manifest.path.read_text(encoding="utf-8"))
        self.status.save()
        estimate = Estimate(sum(not self.is_done(q, r) for q in questions for r in q.runs))
        failed = []
        for number, question in enumerate(questions, start=1):
            self.announce(
                f"question {question.id} ({number} of {len(questions)}): {question.title}; "
                f"{estimate.line()}"
            )
            failed += [
                f"{question.id}/{run.name}"
                for run in question.runs
                if not self.run_unless_done(question, run, estimate)
            ]
        self.announce(
            f"{len(failed)} of the runs failed ({', '.join(failed)}); see {self.status.path}"
            if failed
            else f"every run is tested; write-up: genlab report {self.root}"
        )
        return failed

    def run_unless_done(self, question: Question, run: RunSpec, estimate: Estimate) -> bool:
        """Fit and test one run unless it is done; False when it failed. Says how it went."""
        key = f"{question.id}/{run.name}"
        if self.is_done(question, run):
            self.announce(f"  {key}: done before (metrics.json), skipped")
            return True
        started = time.monotonic()
        ok = self.fit_and_test(self.folder(question, run), run, key)
        seconds = time.monotonic() - started
        estimate.finished(seconds)
        outcome = "tested" if ok else f"FAILED: {self.status.runs[key]['error']}"
        self.announce(f"  {key}: {outcome} ({format_duration(seconds)})")
        return ok

    def fit_and_test(self, folder: Path, run: RunSpec, key: str) -> bool:
        """Fit (or resume, or skip a fit that ended) and test one run; False when either
        failed, which the status file then records with its one-line error."""
        arguments = run_arguments(run, folder, self.variables, self.quick)
        stage = "fit"
        try:
            if not self.status.fit_ended(key):
                self.fit(folder, arguments)
                self.status.record(key, FITTED)
            stage = "test"
            run_cli(
                ["test", *arguments, f"--ckpt_path={checkpoint_to_test(folder)}"],
                exit_on_error=False,
            )
        except Exception as error:
            self.status.record(key, FAILED, stage=stage, error=error_line(error))
            return False
        self.status.record(key, TESTED)
        return True

    def fit(self, folder: Path, arguments: list[str]) -> None:
        """``genlab fit``, from the run's ``last.ckpt`` when an earlier fit left one."""
        last = folder / "checkpoints" / "last.ckpt"
        resume = [f"--ckpt_path={last}"] if last.is_file() else []
        if resume:
            self.announce(f"  resuming from {last}")
        run_cli(["fit", *arguments, *resume], exit_on_error=False)


def selected_questions(manifest: Manifest, only: list[str] | None) -> list[Question]:
    """The questions named in ``only`` (all of them when None), in manifest order."""
    if only is None:
        return list(manifest.questions)
    unknown = [name for name in only if name not in {q.id for q in manifest.questions}]
    if unknown:
        known = ", ".join(q.id for q in manifest.questions)
        raise ValueError(
            f"--only {','.join(unknown)}: not a question of {manifest.path} (questions: {known})"
        )
    return [question for question in manifest.questions if question.id in only]


def check_configs_exist(questions: list[Question], manifest: Manifest) -> None:
    """Stop before anything trains when a config of the selected questions is missing
    (read, like every path of a command line, from the working folder)."""
    for question in questions:
        for run in question.runs:
            if not Path(run.config).is_file():
                raise FileNotFoundError(
                    f"{manifest.path}: question {question.id}, run {run.name}: no config "
                    f"file {run.config} (paths are read from the working folder)"
                )


def check_variables(manifest: Manifest, variables: dict[str, Any]) -> None:
    """``--set`` names only variables the manifest has."""
    unknown = sorted(set(variables) - set(manifest.variables))
    if unknown:
        known = ", ".join(manifest.variables) or "none"
        raise ValueError(
            f"--set {', '.join(unknown)}: not a variable of {manifest.path} (variables: {known})"
        )


def run_course(
    manifest: Manifest,
    root: Path | None = None,
    *,
    quick: bool = False,
    only: list[str] | None = None,
    variables: dict[str, Any] | None = None,
    announce: Callable[[str], None] = print,
) -> list[str]:
    """Fit and test every run of the selected questions that is not done yet, into
    ``root`` (``default_root`` when None); return the ``question/run`` keys that failed.
    Progress lines go to ``announce``."""
    variables = variables or {}
    check_variables(manifest, variables)
    questions = selected_questions(manifest, only)
    check_configs_exist(questions, manifest)
    root = root if root is not None else default_root(manifest.path, quick)
    course = Course(manifest, root, quick, variables, announce)
    return course.run(questions)
