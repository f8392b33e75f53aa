"""Course manifests, ``courses/<topic>.yaml``: a course's questions, the runs each one
needs, their quick sizes and the figures its write-up shows.

The schema (every other key is an error that names the key and the file)::

    title: Autoregressive models            # required
    description: ...                        # optional
    variables:                              # optional; ``genlab course --set NAME=VALUE``
      mnist: ../shared/datasets/mnist_10k.npz
    questions:                              # required, in the order they run
      - id: 2a                              # a folder name: letters, digits, _ . -
        title: PixelCNN on shapes and MNIST
        description: ...                    # optional
        figures: [training_curve, samples]  # kinds of genlab.course.figures.FIGURE_KINDS
        overrides: {trainer.max_epochs: 10} # optional, for every run of the question
        quick: {trainer.max_epochs: 1}      # optional, added under --quick
        runs:                               # one per dataset, a folder name each
          shapes:
            config: configs/pixelcnn/shapes.yaml
            overrides: {...}                # optional, over the question's
            quick: {...}                    # optional, over the question's
            figures: [...]                  # optional, instead of the question's

An override is ``--KEY=VALUE`` on the ``genlab fit``/``test`` command line. A string
value may name a variable, ``{mnist}``, or the folder of an earlier run of the course,
``{run:4a/colored_mnist}`` (a token prior needs its VQ-VAE's checkpoint). A value that
is exactly one ``{variable}`` takes the variable's value, ``null`` included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genlab.course.figures import FIGURE_KINDS

FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
PLACEHOLDER = re.compile(r"\{(run:)?([A-Za-z0-9_./-]+)\}")
COURSE_KEYS = {"title": True, "description": False, "variables": False, "questions": True}
QUESTION_KEYS = {
    "id": True,
    "title": True,
    "description": False,
    "figures": False,
    "overrides": False,
    "quick": False,
    "runs": True,
}
RUN_KEYS = {"config": True, "overrides": False, "quick": False, "figures": False}


class ManifestError(ValueError):
    """A manifest that does not follow the schema; the message names the file."""


@dataclass(frozen=True)
class RunSpec:
    """One dataset of a question: its config and the overrides of the question and the
    run merged (the run's win)."""

    name: str
    config: str
    overrides: dict[str, Any]
    quick: dict[str, Any]
    figures: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    """One question of a course and the runs that answer it."""

    id: str
    title: str
    description: str
    runs: tuple[RunSpec, ...]


@dataclass(frozen=True)
class Manifest:
    """A validated course manifest."""

    path: Path
    title: str
    description: str
    variables: dict[str, Any]
    questions: tuple[Question, ...]


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate the manifest in ``path``; a ``ManifestError`` names the file and
    what is wrong (an unknown or missing key, a value of the wrong type, an unknown
    figure, variable or run)."""
    path = Path(path)
    try:
        contents = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ManifestError(f"{path}: cannot read the manifest ({error.strerror})") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0]
        raise ManifestError(f"{path}: not a YAML manifest ({reason})") from None
    checker = Checker(path)
    manifest = checker.course(contents)
    checker.placeholders(manifest)
    return manifest


class Checker:
    """Validates the parts of one manifest file, naming the file in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.path}: {where}: {problem}")

    def mapping(self, value: Any, where: str, keys: dict[str, bool] | None = None) -> dict:
        """``value`` as a mapping, with only the allowed ``keys`` and every required one."""
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, found {type(value).__name__}")
        if keys is None:
            return value
        for key in value:
            if key not in keys:
                raise self.fail(where, f"unknown key {key!r} (known: {', '.join(keys)})")
        for key, required in keys.items():
            if required and key not in value:
                raise self.fail(where, f"missing key {key!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, found {value!r}")
        return value

    def folder_name(self, value: Any, where: str) -> str:
        """A question id or run name, which becomes a folder of the course."""
        name = str(value) if isinstance(value, (str, int)) else None
        if name is None or not FOLDER_NAME.fullmatch(name):
            raise self.fail(where, f"{value!r} is not a folder name (letters, digits, _ . -)")
        return name

    def overrides(self, value: Any, where: str) -> dict[str, Any]:
        """A mapping of command-line keys (``trainer.max_epochs``) to values."""
        mapping = self.mapping(value if value is not None else {}, where)
        for key in mapping:
            if not isinstance(key, str) or not key or key.startswith("-"):
                raise self.fail(where, f"{key!r} is not a key such as trainer.max_epochs")
        return dict(mapping)

    def figures(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of figures, found {value!r}")
        for name in value:
            if name not in FIGURE_KINDS:
                known = ", ".join(FIGURE_KINDS)
                raise self.fail(where, f"unknown figure {name!r} (known: {known})")
        return tuple(value)

    def course(self, contents: Any) -> Manifest:
        course = self.mapping(contents, "the file", COURSE_KEYS)
        questions = course["questions"]
        if not isinstance(questions, list) or not questions:
            raise self.fail("questions", "expected a non-empty list of questions")
        variables = self.mapping(course.get("variables") or {}, "variables")
        parsed = tuple(self.question(item, index) for index, item in enumerate(questions))
        ids = [question.id for question in parsed]
        for question_id in ids:
            if ids.count(question_id) > 1:
                raise self.fail("questions", f"question id {question_id!r} is used twice")
        return Manifest(
            path=self.path,
            title=self.text(course["title"], "title"),
            description=str(course.get("description") or ""),
            variables=dict(variables),
            questions=parsed,
        )

    def question(self, item: Any, index: int) -> Question:
        where = f"question {index + 1}"
        question = self.mapping(item, where, QUESTION_KEYS)
        question_id = self.folder_name(question["id"], f"{where}: id")
        where = f"question {question_id}"
        figures = self.figures(question.get("figures", []), f"{where}: figures")
        overrides = self.overrides(question.get("overrides"), f"{where}: overrides")
        quick = self.overrides(question.get("quick"), f"{where}: quick")
        runs = self.mapping(question["runs"], f"{where}: runs")
        if not runs:
            raise self.fail(f"{where}: runs", "expected at least one run")
        return Question(
            id=question_id,
            title=self.text(question["title"], f"{where}: title"),
            description=str(question.get("description") or ""),
            runs=tuple(
                self.run(name, value, f"{where}: run {name}", figures, overrides, quick)
                for name, value in runs.items()
            ),
        )

    def run(
        self,
        name: Any,
        value: Any,
        where: str,
        figures: tuple[str, ...],
        overrides: dict[str, Any],
        quick: dict[str, Any],
    ) -> RunSpec:
        run = self.mapping(value, where, RUN_KEYS)
        own_figures = run.get("figures")
        return RunSpec(
            name=self.folder_name(name, where),
            config=self.text(run["config"], f"{where}: config"),
            overrides={**overrides, **self.overrides(run.get("overrides"), f"{where}: overrides")},
            quick={**quick, **self.overrides(run.get("quick"), f"{where}: quick")},
            figures=figures if own_figures is None else self.figures(own_figures, where),
        )

    def placeholders(self, manifest: Manifest) -> None:
        """Every ``{variable}`` is defined and every ``{run:QUESTION/RUN}`` names a run
        of an earlier question."""
        earlier: set[str] = set()
        for question in manifest.questions:
            for run in question.runs:
                where = f"question {question.id}: run {run.name}"
                for value in [*run.overrides.values(), *run.quick.values()]:
                    self.check_placeholders(value, where, manifest.variables, earlier)
            earlier.update(f"{question.id}/{run.name}" for run in question.runs)

    def check_placeholders(
        self, value: Any, where: str, variables: dict[str, Any], earlier: set[str]
    ) -> None:
        if not isinstance(value, str):
            return
        for is_run, name in PLACEHOLDER.findall(value):
            if is_run and name not in earlier:
                raise self.fail(where, f"{{run:{name}}} is not a run of an earlier question")
            if not is_run and name not in variables:
                raise self.fail(where, f"{{{name}}} is not one of the variables")


def substituted(value: Any, variables: dict[str, Any], course_root: Path) -> Any:
    """``value`` with its ``{variable}`` and ``{run:QUESTION/RUN}`` placeholders filled
    in; a string that is one placeholder alone becomes the placeholder's value."""
    if not isinstance(value, str):
        return value

    def fill(match: re.Match) -> Any:
        is_run, name = match.groups()
        return str(course_root / name) if is_run else variables[name]

    whole = PLACEHOLDER.fullmatch(value)
    if whole:
        return fill(whole)
    return PLACEHOLDER.sub(lambda match: str(fill(match)), value)
