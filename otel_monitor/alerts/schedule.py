"""When the digest is due: ``daily HH:MM`` or ``weekly <day> HH:MM``, in local time.

Imports nothing of the package: :mod:`otel_monitor.settings` validates ``alerts_digest`` with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Schedule", "parse_schedule", "latest_due"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SCHEDULE = re.compile(r"(daily|weekly\s+(mon|tue|wed|thu|fri|sat|sun)[a-z]*)\s+([01]?\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Schedule:
    #: 0 = Monday; None: every day
    weekday: int | None
    hour: int
    minute: int

    @property
    def period_s(self) -> float:
        return 86400.0 if self.weekday is None else 7 * 86400.0

    @property
    def name(self) -> str:
        return "daily" if self.weekday is None else "weekly"


def parse_schedule(text: str) -> Schedule:
    """``daily HH:MM`` or ``weekly <day> HH:MM`` (raises ValueError)."""
    match = _SCHEDULE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError("expected 'daily HH:MM' or 'weekly mon HH:MM' (a day from mon to sun)")
    weekday = _DAYS.index(match.group(2)[:3]) if match.group(2) else None
    return Schedule(weekday, int(match.group(3)), int(match.group(4)))


def latest_due(schedule: Schedule, now: float) -> float:
    """The latest scheduled time at or before ``now`` (Unix seconds), in local time."""
    local = datetime.fromtimestamp(now).astimezone()
    candidate = local.replace(hour=schedule.hour, minute=schedule.minute, second=0, microsecond=0)
    if schedule.weekday is not None:
        candidate -= timedelta(days=(candidate.weekday() - schedule.weekday) % 7)
    while candidate.timestamp() > now:
        candidate -= timedelta(days=1 if schedule.weekday is None else 7)
    return candidate.timestamp()
