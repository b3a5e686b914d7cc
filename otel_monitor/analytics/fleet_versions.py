"""``/versions`` under ``analytics_source=prometheus``: the fleet's requests per ``service_version``.

Each scrape target's ``target_info`` carries its resource's ``service.version`` as the label
``service_version``; the request histograms are joined to it on ``(job, instance)``. What this
gives: per version, its requests, errors and error rate, p50 and p95 over the window, and how
many targets run it now. What it does not (yet): per-endpoint figures, first and last seen and
regressions -- those need the history file (``analytics_source=memory``).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .prometheus_source import DURATION, FleetState

__all__ = ["fleet_versions"]

EMPTY = '""'


def _delta(series: str, seconds: float | None) -> str:
    if seconds is None:
        return series
    offset = f"offset {int(math.ceil(seconds))}s"
    return f"(({series} - {series} {offset}) >= 0) or {series}"


def _number(text: object) -> float | None:
    """A sample value of a Prometheus JSON answer (``"1.5"``, ``"NaN"``); None for anything else."""
    if not isinstance(text, (str, int, float)):
        return None  # what float() of any other JSON value (null, a list, an object) raised
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def fleet_versions(fleet: FleetState, seconds: float | None) -> dict[str, Any]:
    """``versions``: one row per ``service_version`` of the selected targets (no regressions)."""
    sel, requests_sel = fleet.selector, fleet.request_selector
    info = f"max by (job, instance, service_version) (target_info{{{sel}}})"

    def by_version(series: str, extra: str = "", by: str = "job, instance") -> str:
        inner = _delta(f"{series}{{{requests_sel}{extra}}}", seconds)
        return f"sum by ({by}) ({inner}) * on (job, instance) group_left (service_version) {info}"

    queries = {
        "requests": f"sum by (service_version) ({by_version(DURATION + '_count')})",
        "errors": f"sum by (service_version) ({by_version(DURATION + '_count', ',error_type!=' + EMPTY)})",
        "targets": f"count by (service_version) (target_info{{{sel}}})",
    }
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        buckets = by_version(DURATION + "_bucket", by="job, instance, le")
        queries[name] = f"histogram_quantile({q}, sum by (service_version, le) ({buckets}))"
    now = fleet.clock()
    deadline = time.monotonic() + fleet.client.timeout  # one deadline for all the queries of this request
    rows: dict[str, dict[str, Any]] = {}
    for name, expr in queries.items():
        for item in fleet.client.query(expr, now, deadline):
            version = item.get("metric", {}).get("service_version") or "unknown"
            value = _number(item.get("value", [None, None])[1])
            rows.setdefault(version, {})[name] = value
    versions = []
    for version, values in sorted(rows.items()):
        count = round(values.get("requests") or 0)
        errors = round(values.get("errors") or 0)
        p50, p95 = values.get("p50"), values.get("p95")
        versions.append(
            {
                "version": version,
                "requests": count,
                "errors": errors,
                "error_rate_pct": round(100.0 * errors / count, 3) if count else None,
                "p50_ms": None if p50 is None else round(p50 * 1000.0, 3),
                "p95_ms": None if p95 is None else round(p95 * 1000.0, 3),
                "targets": round(values.get("targets") or 0),
            }
        )
    return {
        "current": None,
        "versions": versions,
        "regressions": [],
        "note": "from Prometheus: per-version totals only; endpoints and regressions need analytics_source=memory",
    }
