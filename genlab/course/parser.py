"""The argparse parser of genlab's own commands (``course``, ``report``)."""

from __future__ import annotations

import argparse


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose mistakes raise ``ArgumentError``, which
    ``genlab.errors.one_line_errors`` reports in one line with exit status 2, instead
    of printing the usage and exiting."""

    def error(self, message: str) -> None:
        raise argparse.ArgumentError(None, message)
