"""Requests per app version (``service.version``) and the regressions between consecutive versions.

Where the figures come from: with a history file (``MONITORING_DB``), its per-minute rows (each
carries the version of the process that wrote it) plus what every live worker counted since its
last write (shared through ``pipeline.share``/``gather`` like the recent traces); without one,
the in-memory window, all of it the running version's.

Versions are ordered by when they were first seen; each is compared with the one before it,
endpoint by endpoint. An endpoint *regressed* when (all of):

* latency: both versions have at least :data:`~.stats.MIN_REQUESTS` requests; the one-sided
  Mann-Whitney U test on the two histograms gives p below :data:`ALPHA` divided by the number of
  endpoints compared (Bonferroni: with 50 endpoints, noise would otherwise flag one in two
  deploys); the effect size A = P(new > old) is at least :data:`MIN_EFFECT`; and the median or
  the p95 grew by at least :data:`MIN_LATENCY_GROWTH` (relative) and :data:`MIN_LATENCY_DELTA_MS`.
* error rate: as many requests; the one-sided two-proportion z-test (Fisher's exact test for
  small counts) below the same corrected level; and the rate grew by at least
  :data:`MIN_ERROR_RATE_DELTA_PCT` percentage points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from .stats import MIN_REQUESTS, error_rate_test, mann_whitney
from .summary import Key, Series, add, is_error, series_quantile

__all__ = [
    "ALPHA",
    "MIN_EFFECT",
    "MIN_LATENCY_GROWTH",
    "MIN_LATENCY_DELTA_MS",
    "MIN_ERROR_RATE_DELTA_PCT",
    "VersionData",
    "versions_report",
    "unwritten_entries",
    "parse_entries",
]

#: family-wise significance level of one comparison of two versions
ALPHA = 0.01
#: smallest probability of superiority flagged (0.5: none; 0.64 is a "medium" effect)
MIN_EFFECT = 0.6
#: smallest relative growth of the median or p95 flagged
MIN_LATENCY_GROWTH = 0.10
#: smallest absolute growth of the median or p95 flagged, milliseconds
MIN_LATENCY_DELTA_MS = 1.0
#: smallest growth of the error rate flagged, percentage points
MIN_ERROR_RATE_DELTA_PCT = 1.0


class VersionData(TypedDict):
    """One version's requests in a window and when it was seen (Unix seconds)."""

    requests: dict[Key, Series]
    first_seen: float
    last_seen: float


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _endpoints(requests: Mapping[Key, Series]) -> dict[tuple[str, str], tuple[Series, int]]:
    result: dict[tuple[str, str], tuple[Series, int]] = {}
    for key, s in requests.items():
        merged, errors = result.get((key[0], key[1]), (None, 0))
        result[(key[0], key[1])] = (add(merged, s), errors + (s.count if is_error(key) else 0))
    return result


def _figures(s: Series | None, errors: int, bounds: tuple[float, ...]) -> dict[str, Any]:
    count = s.count if s is not None else 0
    return {
        "requests": count,
        "errors": errors,
        "error_rate_pct": round(100.0 * errors / count, 3) if count else None,
        "p50_ms": _ms(series_quantile(0.5, s, bounds)),
        "p95_ms": _ms(series_quantile(0.95, s, bounds)),
    }


def versions_report(
    data: Mapping[str, VersionData], bounds: tuple[float, ...], current: str, endpoint_limit: int = 500
) -> dict[str, Any]:
    """``versions`` (oldest first, each with its endpoints) and ``regressions`` (see the module)."""
    ordered = sorted(data.items(), key=lambda item: (item[1]["first_seen"], item[0]))
    versions = []
    per_version: dict[str, dict[tuple[str, str], tuple[Series, int]]] = {}
    for version, d in ordered:
        endpoints = _endpoints(d["requests"])
        per_version[version] = endpoints
        total: Series | None = None
        errors = 0
        for s, e in endpoints.values():
            total = add(total, s)
            errors += e
        rows = [
            {"route": route, "method": method, **_figures(s, e, bounds)}
            for (route, method), (s, e) in sorted(endpoints.items(), key=lambda item: (-item[1][0].count, item[0]))
        ]
        versions.append(
            {
                "version": version,
                "current": version == current,
                "first_seen": round(d["first_seen"], 3),
                "last_seen": round(d["last_seen"], 3),
                **_figures(total, errors, bounds),
                "endpoints": rows[:endpoint_limit],
            }
        )
    regressions: list[dict[str, Any]] = []
    for (old, _), (new, _) in zip(ordered, ordered[1:], strict=False):
        regressions.extend(_regressions(old, per_version[old], new, per_version[new], bounds))
    return {
        "current": current,
        "versions": versions,
        "regressions": regressions,
        "criteria": {
            "latency_test": "one-sided Mann-Whitney U on the latency histograms (ties per bucket)",
            "error_rate_test": "one-sided two-proportion z-test, Fisher's exact test for small counts",
            "alpha": ALPHA,
            "correction": "Bonferroni over the endpoints compared",
            "min_requests": MIN_REQUESTS,
            "min_effect": MIN_EFFECT,
            "min_latency_growth_pct": MIN_LATENCY_GROWTH * 100,
            "min_latency_delta_ms": MIN_LATENCY_DELTA_MS,
            "min_error_rate_delta_pct": MIN_ERROR_RATE_DELTA_PCT,
        },
    }


def _regressions(
    old: str,
    before: Mapping[tuple[str, str], tuple[Series, int]],
    new: str,
    after: Mapping[tuple[str, str], tuple[Series, int]],
    bounds: tuple[float, ...],
) -> list[dict[str, Any]]:
    compared = [
        endpoint
        for endpoint in sorted(set(before) & set(after))
        if before[endpoint][0].count >= MIN_REQUESTS and after[endpoint][0].count >= MIN_REQUESTS
    ]
    if not compared:
        return []
    level = ALPHA / len(compared)
    found: list[dict[str, Any]] = []
    for route, method in compared:
        (a, errors_a), (b, errors_b) = before[(route, method)], after[(route, method)]
        base = {"route": route, "method": method, "from_version": old, "to_version": new}
        sizes = {"from": a.count, "to": b.count}
        rank = mann_whitney(a.buckets, b.buckets)
        if rank is not None and rank.p_value < level and rank.effect >= MIN_EFFECT:
            grown = []
            for q, name in ((0.5, "p50_ms"), (0.95, "p95_ms")):
                was, now = _ms(series_quantile(q, a, bounds)), _ms(series_quantile(q, b, bounds))
                if was is not None and now is not None:
                    delta = now - was
                    if delta >= MIN_LATENCY_DELTA_MS and delta >= MIN_LATENCY_GROWTH * was:
                        grown.append(name)
            if grown:
                found.append(
                    {
                        **base,
                        "metric": "latency",
                        "from": _figures(a, errors_a, bounds),
                        "to": _figures(b, errors_b, bounds),
                        "grew": grown,
                        "test": {
                            "name": "mann-whitney-u",
                            "u": round(rank.u, 1),
                            "p_value": rank.p_value,
                            "level": level,
                            "effect_size": round(rank.effect, 4),
                            "effect_size_name": "probability of superiority P(new > old)",
                        },
                        "requests": sizes,
                    }
                )
        proportion = error_rate_test(errors_a, a.count, errors_b, b.count)
        if proportion is not None and proportion.p_value < level:
            rate_a, rate_b = 100.0 * errors_a / a.count, 100.0 * errors_b / b.count
            if rate_b - rate_a >= MIN_ERROR_RATE_DELTA_PCT:
                found.append(
                    {
                        **base,
                        "metric": "error_rate",
                        "from": _figures(a, errors_a, bounds),
                        "to": _figures(b, errors_b, bounds),
                        "grew": ["error_rate_pct"],
                        "test": {
                            "name": "two-proportion-z" if proportion.test == "z" else "fisher-exact",
                            "statistic": proportion.statistic,
                            "p_value": proportion.p_value,
                            "level": level,
                            "effect_size": round(rate_b - rate_a, 3),
                            "effect_size_name": "error rate difference, percentage points",
                        },
                        "requests": sizes,
                    }
                )
    return found


# -- the live part not yet in the history: shared by each worker as JSON ---------------------------


def unwritten_entries(requests: Mapping[Key, Series]) -> list[list[Any]]:
    """``{Key: Series}`` as JSON-able rows (what a worker shares)."""
    return [[k[0], k[1], k[2], k[3], s.count, s.sum, s.max, list(s.buckets)] for k, s in requests.items()]


def parse_entries(rows: object) -> dict[Key, Series]:
    """The inverse of :func:`unwritten_entries`; malformed rows are skipped."""
    result: dict[Key, Series] = {}
    if not isinstance(rows, list):
        return result
    for row in rows:
        try:
            route, method, status, error, count, total, upper, buckets = row
            key = (str(route), str(method), int(status), str(error))
            top = None if upper is None else float(upper)
            s = Series(int(count), float(total), top, tuple(int(b) for b in buckets))
        except (TypeError, ValueError):
            continue
        result[key] = add(result.get(key), s)
    return result
