"""Durations as people read them, and the estimate of what is left of a course."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2 h 05 min``: whole units, precise enough to plan by."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Estimate:
    """Runs left to train and the time they may take, at the mean duration of the runs
    trained so far in this session (runs differ, so it is a rough guide)."""

    def __init__(self, runs_left: int) -> None:
        self.runs_left = runs_left
        self.durations: list[float] = []

    def finished(self, seconds: float) -> None:
        """One run ended (trained, tested or failed) after ``seconds``."""
        self.runs_left -= 1
        self.durations.append(seconds)

    def line(self) -> str:
        """``3 runs left, about 2 min (41 s per run so far)``."""
        if self.runs_left <= 0:
            return "no runs left"
        runs = f"{self.runs_left} run{'s' if self.runs_left != 1 else ''} left"
        if not self.durations:
            return f"{runs}, time unknown until the first one ends"
        mean = sum(self.durations) / len(self.durations)
        left = format_duration(mean * self.runs_left)
        return f"{runs}, about {left} ({format_duration(mean)} per run so far)"
