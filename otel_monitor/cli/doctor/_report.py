"""The doctor's report: one line per check (``ok``, ``warn``, ``skip``, ``FAIL``), problems counted."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

__all__ = ["Report", "shown_path"]


class Report:
    """Prints each finding to ``out`` as it is made; :attr:`problems` counts the failures."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ok(self, text: str) -> None:
        self.line(f"  ok    {text}")

    def warn(self, text: str) -> None:
        self.line(f"  warn  {text}")

    def skip(self, text: str) -> None:
        self.line(f"  skip  {text}")

    def fail(self, text: str) -> None:
        self.problems += 1
        self.line(f"  FAIL  {text}")


def shown_path(path: Path) -> str:
    """``path`` relative to the current directory when it is under it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
