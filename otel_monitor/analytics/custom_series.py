"""Custom metrics over time: the app's own instruments, sampled with the rest of the analytics.

The 10-second analytics sample already reads the pipeline (all workers merged); :class:`CustomSeries`
keeps, for each custom instrument (a name outside ``http.``, ``system.``, ``process.``, ``otel.``),
its total over attribute sets in a ring as long as the in-memory windows (15 minutes). Bounded:
``MAX_METRICS`` instruments, the ring's length. :meth:`CustomSeries.window` turns the totals into
what a chart shows: a counter's rate per second, an up-down counter's or gauge's value, a
histogram's observations per second.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["CustomSeries", "BUILTIN_PREFIXES", "MAX_METRICS", "is_custom"]

BUILTIN_PREFIXES = ("http.", "system.", "process.", "otel.")
MAX_METRICS = 50


def is_custom(name: str) -> bool:
    return not name.startswith(BUILTIN_PREFIXES) and name != "target_info"


#: one metric in a sample: type, unit, total (count or value), sum (histograms)
_Totals = tuple[Any, Any, float, "float | None"]


class CustomSeries:
    """A ring of ``(t, {name: (type, unit, total, sum)})`` samples."""

    def __init__(self, size: int) -> None:
        self.samples: deque[tuple[float, dict[str, _Totals]]] = deque(maxlen=size)

    def add(self, t: float, metrics: list[dict[str, Any]]) -> None:
        """One sample from ``metrics`` (the ``/metrics`` JSON of the pipeline's data)."""
        totals: dict[str, _Totals] = {}
        for m in metrics:
            name = m.get("name")
            if not isinstance(name, str) or not is_custom(name) or len(totals) >= MAX_METRICS:
                continue
            points = m.get("points") or []
            if m.get("type") == "histogram":
                count = sum(p.get("count") or 0 for p in points)
                total_sum = sum(p.get("sum") or 0 for p in points)
                totals[name] = ("histogram", m.get("unit"), count, total_sum)
            else:
                totals[name] = (m.get("type"), m.get("unit"), sum(p.get("value") or 0 for p in points), None)
        self.samples.append((t, totals))

    def window(self, now: float, length: float) -> dict[str, Any]:
        """Per instrument: ``{"type", "unit", "label", "t": [...], "values": [...]}`` over the last ``length`` s."""
        samples = [s for s in self.samples if s[0] >= now - length]
        series: dict[str, dict[str, Any]] = {}
        for (t0, before), (t1, after) in zip(samples, samples[1:], strict=False):
            dt = t1 - t0
            for name, (kind, unit, total, _sum) in after.items():
                entry = series.setdefault(
                    name, {"type": kind, "unit": unit, "label": _label(kind, unit), "t": [], "values": []}
                )
                old = before.get(name)
                value: float | None
                if kind in ("updowncounter", "gauge"):
                    value = total
                elif old is None or dt <= 0 or total < old[2]:
                    value = None  # new, or reset (a worker restarted)
                else:  # counters and histograms (their count): per second
                    value = (total - old[2]) / dt
                entry["t"].append(t1)
                entry["values"].append(round(value, 6) if isinstance(value, float) else value)
        oldest = self.samples[0][0] if self.samples else now
        return {
            "step_s": round(samples[1][0] - samples[0][0], 3) if len(samples) > 1 else None,
            "window_available": oldest <= now - length + 10,
            "covered_s": round(now - max(oldest, now - length), 3),
            "series": series,
        }


def _label(kind: object, unit: object) -> str:
    if kind in ("updowncounter", "gauge"):
        return "value"
    return "per second"
