"""One line for an error that ends the ``genlab`` command, instead of a traceback page.

``genlab: error: <message>`` goes to stderr and the command exits with 2 for a bad
command line or config (an unknown key, a value of the wrong type) and 1 for anything
else (a bad value, an unreadable or mismatched checkpoint, a non-finite loss). Set
``GENLAB_TRACEBACK=1`` to get the exception with its full traceback instead.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentError
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.exceptions import SIGTERMException


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (raised by ``FiniteLoss``)."""


TRACEBACK_VARIABLE = "GENLAB_TRACEBACK"
# Errors that say what is wrong with the input; anything else is shown with its type
# and the hint to get the traceback, since it may be a bug.
INPUT_ERRORS = (ValueError, TypeError, OSError, MisconfigurationException, NonFiniteLossError)
UNION_REPORT = "Does not validate against any of the Union subtypes"
# Lines of jsonargparse's reports that say nothing about the problem itself.
ARGUMENT_NOISE = (
    UNION_REPORT,
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value: NestedArg",
    "Expected a <class 'NoneType'>",
)
LONGEST_VALUE_SHOWN = 60  # a "Given value:" line longer than this is a dump, left out
SIGTERM_STATUS = 143  # 128 + 15: how shells and schedulers tell a job ended by SIGTERM


@contextmanager
def one_line_errors(program: str = "genlab") -> Iterator[None]:
    """Run the block; an exception from it ends the program with one line on stderr
    (unless ``GENLAB_TRACEBACK`` is set). A run stopped by SIGTERM says so and exits with
    143, the status of a pre-empted job; ``SystemExit`` and ``KeyboardInterrupt``
    otherwise pass through."""
    try:
        yield
    except SIGTERMException as stop:
        print(f"{program}: {sigterm_line(stop)}", file=sys.stderr)
        raise SystemExit(SIGTERM_STATUS) from None
    except Exception as error:
        if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            raise
        code = 2 if isinstance(error, ArgumentError) else 1
        print(f"{program}: error: {error_line(error, program)}", file=sys.stderr)
        raise SystemExit(code) from None


def sigterm_line(stop: SIGTERMException) -> str:
    """What a run stopped by SIGTERM left behind, and how to go on."""
    path = getattr(stop, "checkpoint_path", None)
    if path is None:
        return "stopped by SIGTERM"
    return f"stopped by SIGTERM; saved {path}, resume with --ckpt_path {path}"


def error_line(error: Exception, program: str = "genlab") -> str:
    """The one line that reports ``error``."""
    if isinstance(error, ArgumentError):
        return f"{condensed(str(error))} (see {program} <command> --help)"
    while isinstance(error.__cause__, Exception) and str(error).startswith(UNION_REPORT):
        error = error.__cause__  # what a constructor raised, under jsonargparse's report
    lines = message_lines(error)
    message = lines[0] if lines else type(error).__name__
    if isinstance(error, INPUT_ERRORS) and len(lines) <= 1:
        return message
    if not isinstance(error, INPUT_ERRORS):
        message = f"{type(error).__name__}: {message}"
    return f"{message} ({TRACEBACK_VARIABLE}=1 shows the traceback)"


def message_lines(error: BaseException) -> list[str]:
    """The non-empty lines of an exception's message, stripped."""
    return [line.strip() for line in str(error).splitlines() if line.strip()]


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name."""
    lines = message_lines(error)
    return lines[0] if lines else type(error).__name__


def condensed(message: str) -> str:
    """jsonargparse's several-line report of a bad argument as one line: the key, the
    class it belongs to and what is wrong, without the lines about union subtypes."""
    parts = []
    for line in message.splitlines():
        text = line.strip().removeprefix("- ").strip()
        long_value = text.startswith("Given value:") and len(text) > LONGEST_VALUE_SHOWN
        if text and not text.startswith(ARGUMENT_NOISE) and not long_value:
            parts.append(text)
    joined = "".join(part + (" " if part.endswith(":") else "; ") for part in parts)
    return joined.rstrip("; ")
