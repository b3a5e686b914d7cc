"""What the analytics endpoints report, as typed objects the views turn into JSON.

Each function reads a state source -- this process's :class:`~otel_monitor.analytics.AnalyticsState`
or the fleet's :class:`~otel_monitor.analytics.prometheus_source.FleetState` -- and returns a
TypedDict (or a small dataclass) with the exact keys of the JSON answer (docs/analytics-api.md).
The figures are the source's current tick's, computed once per tick and shared through
``st.summaries`` (:mod:`.summaries`): a second caller of the same tick costs a dictionary lookup.
No Flask here: the request parsing and the responses are the blueprint's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from opentelemetry.sdk.metrics.export import Gauge, Histogram, HistogramDataPoint, MetricsData, Sum

from ..metrics._metrics_data import iter_metrics
from ..telemetry._export_accounting import ExportStatus
from .prometheus_source import FleetState
from .summaries import Summaries, Tick, WindowSummary
from .summary import (
    WINDOWS,
    Key,
    Sample,
    Series,
    Window,
    apdex,
    diff,
    health_checks,
    is_error,
    merge,
    overall_status,
    series_quantile,
    stats,
)

if TYPE_CHECKING:
    from ..settings import Settings
    from . import AnalyticsState
    from .history import History

__all__ = [
    "StateSource",
    "HEALTH_WINDOW",
    "PERFORMANCE_WINDOWS",
    "MAX_SPARKLINES",
    "HealthReport",
    "health_report",
    "DegradedMode",
    "degraded_modes",
    "system_block",
    "performance",
    "summary_figures",
    "EndpointWindow",
    "endpoint_window",
    "timeseries",
    "metrics_json",
]


class StateSource(Protocol):
    """What the views and reports read of an analytics source: this process's
    (:class:`~otel_monitor.analytics.AnalyticsState`) or the fleet's (:class:`.prometheus_source.FleetState`,
    the same figures from Prometheus). Both implement it; mypy checks that they do."""

    @property
    def summaries(self) -> Summaries: ...
    @property
    def bounds(self) -> tuple[float, ...]: ...
    @property
    def started(self) -> float: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def history(self) -> History | None: ...
    @property
    def source(self) -> str:
        """Where the figures come from without the history: ``memory`` or ``prometheus``."""
        ...

    def steps(self, length: float, now: Sample) -> list[tuple[Sample, Sample]]: ...

    def step_s(self, length: float) -> float:
        """The seconds between two points of a chart ``length`` seconds long."""
        ...

    def history_minutes(
        self, since: float, until: float
    ) -> tuple[dict[int, dict[Key, Series]], dict[int, dict[str, Any]]]: ...


def _implements(local: AnalyticsState, fleet: FleetState) -> tuple[StateSource, StateSource]:
    return local, fleet  # type-checked only: both sources satisfy StateSource


#: ``summary.stats()``: requests, rps, errors, error_rate_pct, latency, apdex
Figures = dict[str, Any]
#: one row of ``summary.endpoint_rows()``
EndpointRow = dict[str, Any]
Requests = Mapping[Key, Series]

#: the windows /performance always shows
PERFORMANCE_WINDOWS = ("1m", "5m", "15m", "all")
HEALTH_WINDOW = "5m"
#: per-route series in /timeseries (the busiest)
MAX_SPARKLINES = 20


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _shown(value: object) -> object:
    return round(value, 3) if isinstance(value, float) else value


# -- /health ---------------------------------------------------------------------------------------


class Telemetry(TypedDict):
    spans_lost: dict[str, int]
    logs_lost: dict[str, int]


class _DegradedMode(TypedDict):
    #: one of :data:`DEGRADED_MODES`
    mode: str
    #: one sentence for people (no path, no exception text: /health may be public)
    detail: str


class DegradedMode(_DegradedMode, total=False):
    #: ``exports_failing``: signal (``traces``, ``metrics``, ``logs``) -> the reason its last export failed
    signals: dict[str, str]
    #: ``history_not_written``: why (``unusable``, or the class of the error the last write raised)
    reason: str


#: the modes in which this instance serves requests normally but its monitoring is impaired
DEGRADED_MODES = ("metrics_this_worker_only", "history_not_written", "exports_failing")
#: an export failure older than this (with no export since) no longer makes /health degraded
EXPORTS_FAILING_WINDOW_S = 300.0


def degraded_modes(st: AnalyticsState) -> list[DegradedMode]:
    """This instance's degraded modes (``/health``'s ``degraded``): what the monitoring cannot
    do right now, while requests are served as usual."""
    modes: list[DegradedMode] = []
    pipeline = st.pipeline
    # a pre-fork worker that could not set up its group's directory, or whose last publish failed
    if getattr(pipeline.view, "own_only", False) is True:
        modes.append(
            {
                "mode": "metrics_this_worker_only",
                "detail": "metrics merged from this worker only: the worker-file directory cannot be written "
                "(totals through other workers may step back)",
            }
        )
    history = st.history
    if history is not None:
        error = history.write_error
        if error is not None:
            modes.append(
                {
                    "mode": "history_not_written",
                    "detail": "history not written: "
                    + ("the history file cannot be used" if error == "unusable" else "the last write to it failed")
                    + " (windows beyond 15 minutes miss those minutes)",
                    "reason": error,
                }
            )
    exports: ExportStatus = pipeline.exports
    failing = exports.failing(EXPORTS_FAILING_WINDOW_S)
    if failing:
        modes.append(
            {
                "mode": "exports_failing",
                "detail": "exports failing: the last export of " + ", ".join(sorted(failing)) + " failed",
                "signals": failing,
            }
        )
    return modes


class _HealthBody(TypedDict):
    status: str
    time: float
    uptime_s: float
    window: str
    window_available: bool
    requests: int
    checks: list[dict[str, Any]]
    degraded: list[DegradedMode]
    telemetry: Telemetry


class HealthBody(_HealthBody, total=False):
    system: SystemBlock  # only for a caller allowed to see the host


@dataclass(frozen=True)
class HealthReport:
    body: HealthBody
    #: the gauges read for it (``summary.system_values``), for :func:`system_block`
    system: Mapping[str, Any]

    def failing(self) -> list[str]:
        return [c["name"] for c in self.body["checks"] if c["status"] == "fail"]


def health_report(
    st: StateSource, settings: Settings, apdex_t: float, degraded: list[DegradedMode] | None = None
) -> HealthReport:
    """The health checks over the last :data:`HEALTH_WINDOW` of ``st`` (its current tick's);
    ``degraded`` (the answering instance's :func:`degraded_modes`) turns ``healthy`` into
    ``degraded``, never into ``unhealthy``: the instance serves requests, its monitoring is what
    is impaired."""
    summaries = st.summaries
    tick = summaries.tick()
    now = tick.sample
    summary = summaries.window(HEALTH_WINDOW, tick)
    window = summary.window
    totals = summary.figures
    system = now.system
    readings = {
        "latency_avg_ms": totals["latency"]["avg_ms"],
        "latency_p95_ms": totals["latency"]["p95_ms"],
        "error_rate_pct": totals["error_rate_pct"],
        "memory_pct": system.get("memory_pct"),
        "cpu_pct": system.get("cpu_pct"),
        "disk_pct": system.get("disk_pct"),
        "process_rss_max_bytes": system.get("process_rss_max_bytes"),
    }
    fractions = summaries.memo(("over_fraction",), lambda t: over_fraction(st, t.sample, settings), tick)
    checks = health_checks(readings, settings, fractions, totals["requests"])
    status = overall_status(checks)
    degraded = list(degraded or [])
    if degraded and status == "healthy":
        status = "degraded"
    body: HealthBody = {
        "status": status,
        "time": now.t,
        "uptime_s": round(now.t - st.started, 3),
        "window": HEALTH_WINDOW,
        "window_available": window["available"],
        "requests": totals["requests"],
        "checks": checks,
        "degraded": degraded,
        # Spans and log records dropped or not exported since start, by reason (all workers): the
        # SDK-style otel.sdk.processor.*.processed / otel.sdk.exporter.*.exported error counts.
        "telemetry": {
            "spans_lost": dict(system.get("spans_lost") or {}),
            "logs_lost": dict(system.get("logs_lost") or {}),
        },
    }
    return HealthReport(body, system)


def over_fraction(st: StateSource, now: Sample, settings: Settings) -> dict[str, float]:
    """Per request check: the share of the window's 10 s steps (with requests) over the threshold."""
    over = {"latency_avg_ms": 0, "latency_p95_ms": 0, "error_rate_pct": 0}
    steps = 0
    length = WINDOWS[HEALTH_WINDOW]
    assert length is not None
    for earlier, later in st.steps(length, now):
        d = diff(later.requests, earlier.requests, st.bounds)
        total = merge(d.values())
        if total is None or total.count == 0:
            continue
        steps += 1
        errors = sum(s.count for k, s in d.items() if is_error(k))
        p95 = series_quantile(0.95, total, st.bounds)
        over["latency_avg_ms"] += total.sum / total.count * 1000 > settings.health_latency_avg_ms
        over["latency_p95_ms"] += p95 is not None and p95 * 1000 > settings.health_latency_p95_ms
        over["error_rate_pct"] += 100.0 * errors / total.count > settings.health_error_rate_pct
    if steps < 2:
        return {}
    return {name: count / steps for name, count in over.items()}


class MemoryBlock(TypedDict):
    total_bytes: Any
    used_bytes: Any
    available_bytes: Any
    used_pct: Any


class CpuBlock(TypedDict):
    system_pct: Any
    process_pct: Any


class DiskBlock(TypedDict):
    mountpoint: Any
    total_bytes: Any
    used_bytes: Any
    free_bytes: Any
    used_pct: Any


class NetworkBlock(TypedDict):
    bytes_sent: Any
    bytes_recv: Any
    packets_sent: Any
    packets_recv: Any


class ProcessBlock(TypedDict):
    pid: int
    rss_bytes: Any
    vms_bytes: Any
    threads: Any
    cpu_pct: Any
    workers: Any


class SystemBlock(TypedDict):
    memory: MemoryBlock
    cpu: CpuBlock
    disk: DiskBlock
    network: NetworkBlock
    process: ProcessBlock


def system_block(s: Mapping[str, Any]) -> SystemBlock:
    """The host and process gauges of a health report, grouped as ``/health`` shows them."""
    return {
        "memory": {
            "total_bytes": _shown(s.get("memory_total_bytes")),
            "used_bytes": _shown(s.get("memory_used_bytes")),
            "available_bytes": _shown(s.get("memory_available_bytes")),
            "used_pct": _shown(s.get("memory_pct")),
        },
        "cpu": {"system_pct": _shown(s.get("cpu_pct")), "process_pct": _shown(s.get("process_cpu_pct"))},
        "disk": {
            "mountpoint": s.get("disk_mountpoint"),
            "total_bytes": _shown(s.get("disk_total_bytes")),
            "used_bytes": _shown(s.get("disk_used_bytes")),
            "free_bytes": _shown(s.get("disk_free_bytes")),
            "used_pct": _shown(s.get("disk_pct")),
        },
        "network": {
            "bytes_sent": _shown(s.get("net_bytes_sent")),
            "bytes_recv": _shown(s.get("net_bytes_recv")),
            "packets_sent": _shown(s.get("net_packets_sent")),
            "packets_recv": _shown(s.get("net_packets_recv")),
        },
        "process": {
            "pid": os.getpid(),
            "rss_bytes": _shown(s.get("process_rss_bytes")),
            "vms_bytes": _shown(s.get("process_vms_bytes")),
            "threads": _shown(s.get("process_threads")),
            "cpu_pct": _shown(s.get("process_cpu_pct")),
            "workers": s.get("workers", 1),
        },
    }


# -- /performance ----------------------------------------------------------------------------------


class WindowFigures(TypedDict):
    requests: int
    rps: float | None
    errors: int
    error_rate_pct: float | None
    latency: dict[str, float | None]
    apdex: float | None
    window_available: bool
    covered_s: float
    source: str


class SlowEndpoint(TypedDict):
    route: str
    method: str
    p95_ms: float
    count: int


class FailingEndpoint(TypedDict):
    route: str
    method: str
    errors: int
    error_rate_pct: float | None


class PerformanceBody(TypedDict):
    time: float
    apdex_t_ms: float
    windows: dict[str, WindowFigures]
    ranked_window: str
    slowest_endpoints: list[SlowEndpoint]
    most_failing_endpoints: list[FailingEndpoint]


def window_figures(st: StateSource, window: Window, apdex_t: float) -> WindowFigures:
    return _figures(stats(window["requests"], st.bounds, window["seconds"], apdex_t), window)


def summary_figures(summary: WindowSummary) -> WindowFigures:
    """A window's totals as ``/performance`` shows them."""
    return _figures(summary.figures, summary.window)


def _figures(figures: Figures, window: Window) -> WindowFigures:
    return {
        "requests": figures["requests"],
        "rps": figures["rps"],
        "errors": figures["errors"],
        "error_rate_pct": figures["error_rate_pct"],
        "latency": figures["latency"],
        "apdex": figures["apdex"],
        "window_available": window["available"],
        "covered_s": round(window["seconds"], 3),
        "source": window["source"],
    }


def performance(st: StateSource, settings: Settings, apdex_t: float, ranked: str) -> PerformanceBody:
    """Totals of :data:`PERFORMANCE_WINDOWS` and ``ranked``; the slowest and most failing endpoints of ``ranked``.

    One body per tick and ``ranked``, shared by every caller (read-only).
    """
    return st.summaries.memo(("performance", ranked), lambda tick: _performance(st, settings, ranked, tick))


def _performance(st: StateSource, settings: Settings, ranked: str, tick: Tick) -> PerformanceBody:
    windows: dict[str, WindowFigures] = {}
    # The asked-for window too (1 h and more from the history): its percentiles come from the
    # buckets merged over the whole window, never from averaging per-minute percentiles.
    for name in dict.fromkeys((*PERFORMANCE_WINDOWS, ranked)):
        windows[name] = summary_figures(st.summaries.window(name, tick))
    rows = st.summaries.window(ranked, tick).rows
    slowest = sorted((r for r in rows if r["p95_ms"] is not None), key=lambda r: -r["p95_ms"])[:10]
    failing = sorted((r for r in rows if r["errors"]), key=lambda r: (-r["errors"], -r["error_rate_pct"]))[:10]
    apdex_t_ms = float(settings.apdex_t_ms)
    return {
        "time": tick.sample.t,
        "apdex_t_ms": int(apdex_t_ms) if apdex_t_ms.is_integer() else settings.apdex_t_ms,
        "windows": windows,
        "ranked_window": ranked,
        "slowest_endpoints": [
            {"route": r["route"], "method": r["method"], "p95_ms": r["p95_ms"], "count": r["count"]} for r in slowest
        ],
        "most_failing_endpoints": [
            {"route": r["route"], "method": r["method"], "errors": r["errors"], "error_rate_pct": r["error_rate_pct"]}
            for r in failing
        ],
    }


# -- /endpoints and the export ---------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointWindow:
    window: Window
    rows: list[EndpointRow]

    @property
    def available(self) -> bool:
        return bool(self.window["available"])

    @property
    def covered_s(self) -> float:
        seconds: float = self.window["seconds"]
        return round(seconds, 3)


def endpoint_window(st: StateSource, window_name: str) -> EndpointWindow:
    """One row per (route, method) of the window, with when each was last seen (the tick's, shared)."""
    summary = st.summaries.window(window_name)
    return EndpointWindow(summary.window, list(summary.rows))


# -- /timeseries -----------------------------------------------------------------------------------


class TimeseriesBody(TypedDict):
    window: str
    step_s: float
    source: str
    #: request figures of the step (``t``, ``requests``, ``rps``, ...) and the host's
    points: list[dict[str, Any]]
    #: "METHOD route" -> requests per step, for the busiest :data:`MAX_SPARKLINES`
    routes: dict[str, list[int]]


@dataclass(frozen=True)
class _Steps:
    """A window's chart steps, every key: what each filtered chart of that window is cut from."""

    step_s: float
    source: str
    #: (end of the step, its seconds, its requests, its host figures)
    steps: tuple[tuple[float, float, dict[Key, Series], Mapping[str, Any]], ...]


def timeseries(
    st: StateSource, window_name: str, apdex_t: float, route: str | None = None, method: str | None = None
) -> TimeseriesBody:
    """Per-step requests, errors, latency and host figures of the window (``route``/``method``: only those).

    One body per tick, window and filter, shared by every caller (read-only); the steps
    themselves are read once per tick and window whatever the filter.
    """
    summaries = st.summaries
    return summaries.memo(
        ("timeseries", window_name, route, method),
        lambda tick: _timeseries(
            summaries.memo(("steps", window_name), lambda t: _steps(st, window_name, t), tick),
            window_name,
            st.bounds,
            apdex_t,
            route,
            method,
        ),
    )


def _steps(st: StateSource, window_name: str, tick: Tick) -> _Steps:
    now = tick.sample
    length = WINDOWS[window_name]
    if length is None:
        length = now.t - st.started
    history = st.history
    use_history = length > 900 and history is not None and history.usable
    steps: list[tuple[float, float, dict[Key, Series], Mapping[str, Any]]] = []
    step: float
    if use_history:
        step = 60
        by_minute, system_rows = st.history_minutes(now.t - length, now.t)
        for minute in sorted(set(by_minute) | set(system_rows)):
            shown = {k: _shown(v) for k, v in system_rows.get(minute, {}).items()}
            steps.append((float(minute), step, by_minute.get(minute, {}), shown))
    else:
        step = st.step_s(length)
        for earlier, later in st.steps(length, now):
            requests = diff(later.requests, earlier.requests, st.bounds)
            steps.append((later.t, later.t - earlier.t, requests, system_point(earlier, later)))
    source = "history" if use_history else st.source
    return _Steps(step, source, tuple(steps))


def _timeseries(
    found: _Steps, window_name: str, bounds: tuple[float, ...], apdex_t: float, route: str | None, method: str | None
) -> TimeseriesBody:
    def selected(requests: Requests) -> dict[Key, Series]:
        if route is None and method is None:
            return dict(requests)
        return {
            k: s for k, s in requests.items() if (route is None or k[0] == route) and (method is None or k[1] == method)
        }

    def point(t: float, seconds: float, requests: Requests, system: Mapping[str, Any]) -> dict[str, Any]:
        total = merge(requests.values())
        count = total.count if total else 0
        errors = sum(s.count for k, s in requests.items() if is_error(k))
        return {
            "t": t,
            "requests": count,
            "rps": round(count / seconds, 3) if seconds > 0 else None,
            "error_rate_pct": round(100.0 * errors / count, 3) if count else None,
            "p95_ms": _ms(series_quantile(0.95, total, bounds)),
            "avg_ms": _ms(total.sum / total.count) if total and count else None,
            "apdex": _round4(apdex(total.buckets, bounds, apdex_t)) if total and count else None,
            **system,
        }

    per_step: list[dict[Key, Series]] = []
    points: list[dict[str, Any]] = []
    for t, seconds, requests, system in found.steps:
        chosen = selected(requests)
        per_step.append(chosen)
        points.append(point(t, seconds, chosen, system))
    return {
        "window": window_name,
        "step_s": found.step_s,
        "source": found.source,
        "points": points,
        "routes": _busiest_routes(per_step),
    }


def _round4(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _busiest_routes(per_step: list[dict[Key, Series]]) -> dict[str, list[int]]:
    totals: dict[str, int] = {}
    for requests in per_step:
        for k, s in requests.items():
            name = f"{k[1]} {k[0]}"
            totals[name] = totals.get(name, 0) + s.count
    busiest = sorted(totals, key=lambda n: (-totals[n], n))[:MAX_SPARKLINES]
    per_route: dict[str, list[int]] = {name: [] for name in busiest}
    for requests in per_step:
        counts = dict.fromkeys(busiest, 0)
        for k, s in requests.items():
            name = f"{k[1]} {k[0]}"
            if name in counts:
                counts[name] += s.count
        for name in busiest:
            per_route[name].append(counts[name])
    return per_route


class SystemPoint(TypedDict):
    cpu_pct: Any
    memory_pct: Any
    disk_pct: Any
    process_rss_bytes: Any
    process_threads: Any
    net_sent_bps: float | None
    net_recv_bps: float | None


def system_point(earlier: Sample, later: Sample) -> SystemPoint:
    """The host figures at ``later``, network rates over the step."""
    s = later.system
    seconds = later.t - earlier.t

    def rate(key: str) -> float | None:
        a, b = earlier.system.get(key), s.get(key)
        if a is None or b is None or seconds <= 0 or b < a:
            return None
        change: float = (b - a) / seconds
        return round(change, 3)

    return {
        "cpu_pct": _shown(s.get("cpu_pct")),
        "memory_pct": _shown(s.get("memory_pct")),
        "disk_pct": _shown(s.get("disk_pct")),
        "process_rss_bytes": _shown(s.get("process_rss_bytes")),
        "process_threads": _shown(s.get("process_threads")),
        "net_sent_bps": rate("net_bytes_sent"),
        "net_recv_bps": rate("net_bytes_recv"),
    }


# -- /metrics --------------------------------------------------------------------------------------


class MetricJSON(TypedDict):
    name: str
    description: str | None
    unit: str | None
    type: str
    points: list[dict[str, Any]]


def metrics_json(data: MetricsData | None, include: Callable[[str], bool] | None = None) -> list[MetricJSON]:
    """Every histogram, counter, up/down counter and gauge of ``data`` (those whose name ``include``
    accepts, when given), by name (points of all workers)."""
    by_name: dict[str, MetricJSON] = {}
    for metric in iter_metrics(data):
        if include is not None and not include(metric.name):
            continue
        d = metric.data
        if isinstance(d, Histogram):
            kind = "histogram"
        elif isinstance(d, Sum):
            kind = "counter" if d.is_monotonic else "updowncounter"
        elif isinstance(d, Gauge):
            kind = "gauge"
        else:
            continue
        entry = by_name.setdefault(
            metric.name,
            {"name": metric.name, "description": metric.description, "unit": metric.unit, "type": kind, "points": []},
        )
        for p in d.data_points:
            point: dict[str, Any] = {"attributes": dict(p.attributes or {})}
            if isinstance(p, HistogramDataPoint):
                point.update(
                    count=p.count,
                    sum=p.sum,
                    min=p.min if p.count else None,
                    max=p.max if p.count else None,
                    bounds=list(p.explicit_bounds),
                    bucket_counts=list(p.bucket_counts),
                )
            else:
                point["value"] = p.value
            entry["points"].append(point)
    return sorted(by_name.values(), key=lambda m: m["name"])
