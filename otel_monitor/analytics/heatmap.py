"""A week at a glance: requests, errors or p95 latency per hour of day and day.

:func:`heatmap` places per-minute request figures (the history's rows, plus what the running
processes counted since their last write) into cells of (local date, hour of day) in one time
zone (UTC unless asked otherwise; the answer names it). ``requests`` and ``errors`` are counts,
``p95`` is milliseconds from the cell's merged latency histogram (exact buckets, not an average
of percentiles). A cell without requests is ``null``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from .summary import Key, Series, add, is_error, series_quantile

__all__ = ["METRICS", "heatmap"]

METRICS = ("requests", "errors", "p95")


def heatmap(
    per_minute: Mapping[int, Mapping[Key, Series]],
    start: float,
    end: float,
    zone: dt.tzinfo,
    zone_name: str,
    metric: str,
    bounds: tuple[float, ...],
) -> dict[str, Any]:
    """``days`` (ISO dates, oldest first), ``hours`` (0-23), ``cells[day][hour]`` and ``max``."""
    first = dt.datetime.fromtimestamp(start, zone).date()
    last = dt.datetime.fromtimestamp(end, zone).date()
    days = [(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)]
    index = {day: i for i, day in enumerate(days)}
    totals: list[list[Series | None]] = [[None] * 24 for _ in days]
    errors: list[list[int]] = [[0] * 24 for _ in days]
    for minute, requests in per_minute.items():
        if minute + 60 <= start or minute > end:
            continue
        local = dt.datetime.fromtimestamp(minute, zone)
        row = index.get(local.date())
        if row is None:
            continue
        hour = local.hour
        for key, s in requests.items():
            totals[row][hour] = add(totals[row][hour], s)
            if is_error(key):
                errors[row][hour] += s.count
    cells: list[list[float | int | None]] = []
    for row, day_totals in enumerate(totals):
        values: list[float | int | None] = []
        for hour, total in enumerate(day_totals):
            if total is None or total.count == 0:
                values.append(None)
            elif metric == "requests":
                values.append(total.count)
            elif metric == "errors":
                values.append(errors[row][hour])
            else:
                p95 = series_quantile(0.95, total, bounds)
                values.append(None if p95 is None else round(p95 * 1000.0, 3))
        cells.append(values)
    present = [v for row in cells for v in row if v is not None]
    return {
        "metric": metric,
        "unit": "ms" if metric == "p95" else "requests",
        "timezone": zone_name,
        "days": [day.isoformat() for day in days],
        "hours": list(range(24)),
        "cells": cells,
        "max": max(present) if present else None,
    }
