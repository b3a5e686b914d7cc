"""Reports: ``alerts_report_schedule`` (``daily 08:00``, ``weekly mon 08:00``) and the digest it sends.

The schedule is in the app's time zone (the process's local time: ``TZ``). A report is due when
the latest scheduled time is after the last report sent; the first start only remembers "now", so
deploying at 09:00 does not send yesterday's digest.

The digest: traffic, error rate and p95 of the period against the previous one, the slowest and
the most failing endpoints, the error groups first seen in the period, and version regressions
when a source provides them (:class:`DigestSource.version_regressions`, empty until then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..analytics.summary import Key, Series, endpoint_rows, stats
from .schedule import Schedule, latest_due, parse_schedule

__all__ = ["Schedule", "parse_schedule", "latest_due", "DigestSource", "digest_lines"]


class DigestSource(Protocol):
    """What a digest reads (the analytics state through an adapter)."""

    bounds: tuple[float, ...]

    def requests_between(self, start: float, end: float) -> Mapping[Key, Series] | None:
        """The requests of ``[start, end]``, None when nothing covers that period."""
        ...

    def error_groups(self) -> list[dict[str, Any]]: ...

    def version_regressions(self) -> Sequence[str]:
        """One line per version that made things worse (empty when there is no version data)."""
        ...


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{unit}" if not float(value).is_integer() else f"{int(value):,}{unit}"


def _change(now: float | None, before: float | None, unit: str) -> str:
    if now is None:
        return "-"
    if before is None:
        return _fmt(now, unit)
    delta = now - before
    sign = "+" if delta >= 0 else ""
    return f"{_fmt(now, unit)} (previous {_fmt(before, unit)}, {sign}{_fmt(delta, unit)})"


def digest_lines(source: DigestSource, schedule: Schedule, end: float, apdex_t: float) -> list[str]:
    """The digest's lines for the period ending at ``end``."""
    period = schedule.period_s
    start = end - period
    current = source.requests_between(start, end)
    previous = source.requests_between(start - period, start)
    since, until = datetime.fromtimestamp(start).astimezone(), datetime.fromtimestamp(end).astimezone()
    lines: list[str] = [f"{schedule.name.capitalize()} report: {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M %Z}"]
    if current is None:
        lines.append("No request figures for the period.")
        return lines
    now_stats = stats(current, source.bounds, period, apdex_t)
    before_stats = stats(previous, source.bounds, period, apdex_t) if previous is not None else None

    def pick(s: dict[str, Any] | None, *path: str) -> float | None:
        value: Any = s
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return float(value) if isinstance(value, (int, float)) else None

    lines.append(f"Requests: {_change(pick(now_stats, 'requests'), pick(before_stats, 'requests'), '')}")
    lines.append(
        f"Error rate: {_change(pick(now_stats, 'error_rate_pct'), pick(before_stats, 'error_rate_pct'), ' %')}"
    )
    lines.append(
        f"p95 latency: {_change(pick(now_stats, 'latency', 'p95_ms'), pick(before_stats, 'latency', 'p95_ms'), ' ms')}"
    )
    if previous is None:
        lines.append("(no figures for the previous period: set analytics_db to keep history)")
    rows = endpoint_rows(current, source.bounds, period)
    slowest = sorted((r for r in rows if r["p95_ms"] is not None), key=lambda r: -r["p95_ms"])[:5]
    failing = sorted((r for r in rows if r["errors"]), key=lambda r: (-r["errors"], r["route"]))[:5]
    if slowest:
        lines.append("Slowest endpoints (p95):")
        lines.extend(
            f"  {r['method']} {r['route']}: {_fmt(r['p95_ms'], ' ms')} over {r['count']:,} requests" for r in slowest
        )
    if failing:
        lines.append("Most failing endpoints:")
        lines.extend(
            f"  {r['method']} {r['route']}: {r['errors']:,} errors ({_fmt(r['error_rate_pct'], ' %')})" for r in failing
        )
    new_groups = [
        g for g in source.error_groups() if isinstance(g.get("first_seen"), (int, float)) and g["first_seen"] >= start
    ]
    if new_groups:
        lines.append("New errors:")
        lines.extend(
            f"  {g.get('exception_type')} on {g.get('method') or ''} {g.get('route')}: {g.get('count')} times"
            for g in new_groups[:10]
        )
    regressions = list(source.version_regressions())
    if regressions:
        lines.append("Version regressions:")
        lines.extend(f"  {line}" for line in regressions)
    return lines
