"""Courses: manifests of questions (``courses/<topic>.yaml``) and ``genlab course``,
which fits and tests their runs resumably for ``genlab report`` to write up."""

from genlab.course.manifest import Manifest, ManifestError, Question, RunSpec, load_manifest
from genlab.course.runner import run_course

__all__ = ["Manifest", "ManifestError", "Question", "RunSpec", "load_manifest", "run_course"]
