"""What each rule measures, from the same cumulative snapshots the analytics serve.

:class:`Readings` keeps the evaluator's own short history of those snapshots (one per evaluation,
bounded by the longest rule window), so a rule's window is ``now - the snapshot at the window's
start``, exactly as the analytics make their windows (:func:`~otel_monitor.analytics.summary.diff`);
percentiles come from the merged buckets, Apdex from the same buckets, error rate from the
``error.type`` of the series. System gauges are their latest reading (``for`` makes a breach a
sustained one). A custom counter is its increase over the window, a custom histogram its mean
over the window, a custom gauge or up/down counter its latest value (summed over attributes).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..analytics.summary import Key, Sample, Series, apdex, diff, is_error, merge, series_quantile
from .rules import CUSTOM_PREFIX, Rule

__all__ = ["Snapshot", "Readings", "measure", "custom_totals"]

#: custom instrument name -> (kind, total, count): counters and gauges use total, histograms total/count
CustomTotals = dict[str, tuple[str, float, float]]
_QUANTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}


@dataclass(frozen=True)
class Snapshot:
    """One evaluation's reading: the analytics sample (requests, system gauges) and the custom totals."""

    sample: Sample
    custom: CustomTotals


def custom_totals(metrics: Iterable[Mapping[str, Any]]) -> CustomTotals:
    """``reports.metrics_json`` entries -> per instrument (kind, total, count), summed over attributes."""
    totals: CustomTotals = {}
    for metric in metrics:
        kind = str(metric.get("type"))
        total = count = 0.0
        for point in metric.get("points", ()):
            if kind == "histogram":
                total += float(point.get("sum") or 0.0)
                count += float(point.get("count") or 0.0)
            else:
                value = point.get("value")
                if isinstance(value, (int, float)):
                    total += float(value)
        totals[str(metric.get("name"))] = (kind, total, count)
    return totals


class Readings:
    """The snapshots of the last ``span_s`` seconds (at most ``max_kept``), oldest first."""

    def __init__(self, span_s: float, max_kept: int = 4096) -> None:
        self.span_s = span_s
        self._kept: deque[Snapshot] = deque(maxlen=max_kept)

    def add(self, snapshot: Snapshot) -> None:
        self._kept.append(snapshot)
        while len(self._kept) > 1 and self._kept[1].sample.t <= snapshot.sample.t - self.span_s:
            self._kept.popleft()

    def base(self, t: float) -> Snapshot | None:
        """The newest snapshot taken at or before ``t`` (None when there is none)."""
        found = None
        for snapshot in self._kept:
            if snapshot.sample.t <= t:
                found = snapshot
            else:
                break
        return found

    def oldest(self) -> Snapshot | None:
        return self._kept[0] if self._kept else None

    def __len__(self) -> int:
        return len(self._kept)


def _select(requests: Mapping[Key, Series], rule: Rule) -> dict[Key, Series]:
    return {
        k: s
        for k, s in requests.items()
        if (rule.route is None or k[0] == rule.route) and (rule.method is None or k[1] == rule.method)
    }


def _request_value(
    rule: Rule, window: Mapping[Key, Series], seconds: float, bounds: tuple[float, ...], apdex_t: float
) -> float | None:
    selected = _select(window, rule)
    total = merge(selected.values())
    count = total.count if total is not None else 0
    if rule.metric == "requests_per_s":
        return count / seconds if seconds > 0 else None
    if total is None or count == 0:
        return None  # no requests in the window: no latency, error rate or Apdex to judge
    if rule.metric == "error_rate_pct":
        return 100.0 * sum(s.count for k, s in selected.items() if is_error(k)) / count
    if rule.metric == "avg_ms":
        return total.sum / count * 1000.0
    if rule.metric == "apdex":
        return apdex(total.buckets, bounds, apdex_t)
    q = series_quantile(_QUANTILES[rule.metric], total, bounds)
    return None if q is None else q * 1000.0


def _custom_value(rule: Rule, now: CustomTotals, base: CustomTotals | None) -> float | None:
    name = rule.metric[len(CUSTOM_PREFIX) :]
    found = now.get(name)
    if found is None:
        return None
    kind, total, count = found
    before = base.get(name) if base is not None else None
    if kind == "counter":
        return total - before[1] if before is not None and total >= before[1] else total
    if kind == "histogram":
        if before is not None and count >= before[2]:
            total, count = total - before[1], count - before[2]
        return total / count if count > 0 else None
    return total


def measure(
    rule: Rule,
    now: Snapshot,
    readings: Readings,
    bounds: tuple[float, ...],
    apdex_t: float,
    started: float,
) -> float | None:
    """The value of ``rule``'s metric now (None: nothing to judge, e.g. no requests in the window).

    ``readings`` are the earlier snapshots; ``started`` is when counting began (a window reaching
    before it counts everything since).
    """
    if not rule.is_custom and not rule.is_request_metric:
        value = now.sample.system.get(rule.metric)
        return _finite(float(value)) if isinstance(value, (int, float)) else None
    start = now.sample.t - rule.window_s
    base = readings.base(start)
    if base is None and started < start:
        # The evaluator is younger than the window but the counting is older (it took over from
        # another worker): the window it has, from its oldest snapshot.
        base = readings.oldest()
    if rule.is_custom:
        return _finite(_custom_value(rule, now.custom, base.custom if base is not None else None))
    if base is not None:
        window = diff(now.sample.requests, base.sample.requests, bounds)
        seconds = now.sample.t - base.sample.t
    else:
        window, seconds = dict(now.sample.requests), now.sample.t - started  # all since counting began
    if seconds <= 0:
        return None
    return _finite(_request_value(rule, window, seconds, bounds, apdex_t))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


#: what the evaluator calls for a reading: () -> Snapshot
Read = Callable[[], Snapshot]
