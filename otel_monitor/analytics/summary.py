"""Pure functions over OpenTelemetry ``MetricsData``: what the analytics endpoints compute.

* :func:`extract` turns the cumulative ``http.server.request.duration`` points into compact
  :class:`Series` keyed by ``(route, method, status, error)``, summed over workers and schemes,
  with the analytics' own routes left out and the number of routes capped (:class:`RouteCap`);
* :func:`diff` makes a window out of two cumulative snapshots (``now - then``, counter resets
  handled as Prometheus does);
* :func:`quantile` interpolates linearly inside explicit buckets, as Prometheus's
  ``histogram_quantile`` does (so the numbers agree with Grafana's), :func:`apdex` counts
  satisfied/tolerating requests from the same buckets;
* :func:`system_values` reads the ``system.*``/``process.*`` gauges into one flat dict;
* :func:`health_checks` compares readings with thresholds;
* :class:`Ring` keeps the 10-second cumulative samples of the last 15 minutes.

Nothing here touches a request, a lock of the request path or the clock (times are passed in).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

from ..metrics._metrics_data import iter_metrics, iter_points
from ..telemetry._export_accounting import lost_logs, lost_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, MetricsData

    from ..settings import Settings

__all__ = [
    "Series",
    "Key",
    "RouteCap",
    "Sample",
    "Ring",
    "UNMATCHED",
    "OTHER",
    "DURATION_METRIC",
    "extract",
    "Extractor",
    "Window",
    "system_values",
    "diff",
    "merge",
    "add",
    "is_error",
    "quantile",
    "series_quantile",
    "count_le",
    "apdex",
    "stats",
    "by_endpoint",
    "endpoint_rows",
    "health_checks",
    "overall_status",
    "WINDOWS",
]

DURATION_METRIC = "http.server.request.duration"
#: :func:`system_values`: gauge name -> value (numbers; ``disk_mountpoint`` a string, ``pids`` a list)
SystemValues = dict[str, Any]
#: route of requests no route matched (404s), and of routes beyond the cap
UNMATCHED = "(unmatched)"
OTHER = "(other)"
#: window name -> seconds (None: since start)
WINDOWS: dict[str, float | None] = {
    "1m": 60.0,
    "5m": 300.0,
    "15m": 900.0,
    "1h": 3600.0,
    "6h": 21600.0,
    "24h": 86400.0,
    "7d": 604800.0,
    "all": None,
}
#: at most this many distinct error.type values are kept apart; more are folded into OTHER
MAX_ERROR_TYPES = 64


class Series(NamedTuple):
    """Cumulative (or windowed) request durations of one key, in seconds."""

    # Shadowing tuple.count is deliberate (NamedTuple allows the field; nothing here counts items).
    count: int  # type: ignore[assignment]
    sum: float
    max: float | None  # None: unknown (a window in which the cumulative max did not move)
    buckets: tuple[int, ...]


#: (route, method, status code or 0, error.type or "")
Key = tuple[str, str, int, str]


class _FleetWindow(TypedDict, total=False):
    #: the fleet's window: the requests per Prometheus ``instance``
    instances: dict[str, dict[Key, Series]]


class Window(_FleetWindow):
    """The requests of a window and what they cover (``AnalyticsState.window``)."""

    requests: dict[Key, Series]
    #: the seconds the requests cover (the window's length, or less when it is not available yet)
    seconds: float
    #: False while the process (or the history) is younger than the window
    available: bool
    #: when the covered time starts (epoch seconds)
    since: float
    #: where the requests come from: ``memory``, ``history`` or ``prometheus``
    source: str


class RouteCap:
    """Remembers which (route, method) pairs are tracked on their own, first come, at most ``limit``.

    Once a pair is folded into ``OTHER`` it stays there, so differences of snapshots stay exact.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tracked: set[tuple[str, str]] = set()
        self.errors: set[str] = set()

    def route(self, route: str, method: str) -> str:
        pair = (route, method)
        if pair in self.tracked:
            return route
        if route == UNMATCHED or len(self.tracked) < self.limit:
            self.tracked.add(pair)
            return route
        return OTHER

    def error(self, error: str) -> str:
        if not error or error in self.errors:
            return error
        if len(self.errors) < MAX_ERROR_TYPES:
            self.errors.add(error)
            return error
        return OTHER


def _excluded(route: str, exclude_prefix: str | None) -> bool:
    if not exclude_prefix:
        return False
    return route == exclude_prefix or route.startswith(exclude_prefix + "/")


def extract(
    data: MetricsData | None, cap: RouteCap, exclude_prefix: str | None = None
) -> tuple[dict[Key, Series], tuple[float, ...]]:
    """The request histogram of ``data`` as ``{(route, method, status, error): Series}`` and its bounds.

    Points are summed over everything else (scheme, workers); routes under ``exclude_prefix``
    (the analytics' own URLs) are left out; routes beyond the cap become ``OTHER``.
    """
    return Extractor(cap, exclude_prefix)(data)


class Extractor:
    """:func:`extract` over successive collections of one pipeline, reading only what changed.

    The analytics sample the group's merged metrics every 10 s; with thousands of series a full
    :func:`extract` walked every point (most of a pre-fork worker's background CPU at 10,000
    series). The merge keeps the SDK point object of every series that did not change
    (:func:`otel_monitor.metrics.multiprocess.deserialise`), so a point that is the same object
    as in the last call has the same key and numbers: only the keys of new or vanished points
    are summed again, and every other key keeps its :class:`Series` object (so :func:`diff` of
    two samples skips it by identity). The result equals :func:`extract`'s with the same ``cap``.
    """

    def __init__(self, cap: RouteCap, exclude_prefix: str | None = None) -> None:
        self.cap = cap
        self.exclude_prefix = exclude_prefix
        #: id(point) -> (point, its key or None when left out), of the last call (holds the points,
        #: so no id is reused while it is here)
        self._seen: dict[int, tuple[HistogramDataPoint, Key | None]] = {}
        #: key -> {id(point): point} of the points summed into it
        self._members: dict[Key, dict[int, HistogramDataPoint]] = {}
        self._result: dict[Key, Series] = {}
        self._bounds: tuple[float, ...] = ()
        #: points read (not skipped by identity) so far: tests read it
        self.points_read = 0

    def __call__(self, data: MetricsData | None) -> tuple[dict[Key, Series], tuple[float, ...]]:
        points = [point for _, point in iter_points(data, DURATION_METRIC)]
        if not points or tuple(points[0].explicit_bounds) != self._bounds:
            self._reset()  # nothing, or another first layout: every point is read against it
        old = self._seen
        seen: dict[int, tuple[HistogramDataPoint, Key | None]] = {}
        members = self._members
        dirty: dict[Key, None] = {}  # in order of first appearance
        order: dict[int, int] = {}
        for index, point in enumerate(points):
            ident = id(point)
            found = old.get(ident)
            if found is None or found[0] is not point:
                found = (point, self._key(point))
                if found[1] is not None:
                    members.setdefault(found[1], {})[ident] = point
                    dirty[found[1]] = None
            seen[ident] = found
            order[ident] = index
        for ident in old.keys() - seen.keys():  # series that left (or were replaced by a new object)
            key = old[ident][1]
            if key is not None:
                members[key].pop(ident, None)
                dirty[key] = None
        self._seen = seen
        result = self._result
        keys_changed = False
        for key in dirty:
            series = members.get(key)
            if series:
                keys_changed = keys_changed or key not in result
                result[key] = _sum(sorted(series.values(), key=lambda p: order[id(p)]))
            else:
                members.pop(key, None)
                result.pop(key, None)
                keys_changed = True
        if keys_changed:
            # in the order the keys' first points come, as extract() builds it
            first: dict[Key, None] = {}
            for point in points:
                key = seen[id(point)][1]
                if key is not None:
                    first[key] = None
            self._result = result = {key: result[key] for key in first}
        return dict(result), self._bounds

    def _reset(self) -> None:
        self._seen, self._members, self._result = {}, {}, {}
        self._bounds = ()

    def _key(self, point: HistogramDataPoint) -> Key | None:
        self.points_read += 1
        attrs = point.attributes or {}
        route = str(attrs.get("http.route") or UNMATCHED)
        if _excluded(route, self.exclude_prefix):
            return None
        if not self._bounds:
            self._bounds = tuple(point.explicit_bounds)
        elif tuple(point.explicit_bounds) != self._bounds:
            return None  # a view with other buckets: not ours to mix
        method = str(attrs.get("http.request.method", "_OTHER"))
        status = attrs.get("http.response.status_code")
        error = attrs.get("error.type")
        return (
            self.cap.route(route, method),
            method,
            int(status) if status and isinstance(status, int | float | str) else 0,
            self.cap.error(str(error)) if error else "",
        )


def _sum(points: list[HistogramDataPoint]) -> Series:
    """The points of one key summed, in the order extract() sums them."""
    first = points[0]
    count, total, top, buckets = first.count, first.sum, first.max if first.count else None, list(first.bucket_counts)
    for point in points[1:]:
        count += point.count
        total += point.sum
        top = _max(top, point.max if point.count else None)
        buckets = [a + b for a, b in zip(buckets, point.bucket_counts, strict=True)]
    return Series(count, float(total), top, tuple(buckets))


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _points(data: MetricsData | None, name: str) -> list[Any]:
    # The first metric of that name only: a collection has one per name.
    for metric in iter_metrics(data):
        if metric.name == name:
            return list(metric.data.data_points)
    return []


def system_values(data: MetricsData | None) -> SystemValues:
    """The system and process gauges of ``data`` as one flat dict (missing ones are absent).

    Host values (``system.*``) are the same from every worker: the largest is taken. Process
    values are per worker (``process.pid``): RSS, threads and CPU are summed, ``workers`` counted.
    """
    values: dict[str, Any] = {}

    def host(name: str, key: str, scale: float = 1.0, **match: str) -> None:
        found = [
            p.value
            for p in _points(data, name)
            if all(p.attributes.get(k.replace("_", ".")) == v for k, v in match.items())
        ]
        if found:
            values[key] = max(found) * scale if scale != 1.0 else max(found)

    host("system.cpu.utilization", "cpu_pct", 100.0)
    host("system.memory.utilization", "memory_pct", 100.0, system_memory_state="used")
    host("system.memory.limit", "memory_total_bytes")
    host("system.memory.usage", "memory_used_bytes", system_memory_state="used")
    host("system.memory.usage", "memory_available_bytes", system_memory_state="free")
    host("system.filesystem.utilization", "disk_pct", 100.0)
    host("system.filesystem.usage", "disk_used_bytes", system_filesystem_state="used")
    host("system.filesystem.usage", "disk_free_bytes", system_filesystem_state="free")
    for p in _points(data, "system.filesystem.usage"):
        values["disk_mountpoint"] = p.attributes.get("system.filesystem.mountpoint")
        break
    if "disk_used_bytes" in values and "disk_free_bytes" in values:
        values["disk_total_bytes"] = values["disk_used_bytes"] + values["disk_free_bytes"]
    host("system.network.io", "net_bytes_sent", network_io_direction="transmit")
    host("system.network.io", "net_bytes_recv", network_io_direction="receive")
    host("system.network.packet.count", "net_packets_sent", network_io_direction="transmit")
    host("system.network.packet.count", "net_packets_recv", network_io_direction="receive")

    def per_process(name: str) -> dict[Any, float]:
        return {p.attributes.get("process.pid"): p.value for p in _points(data, name)}

    rss = per_process("process.memory.usage")
    if rss:
        values["process_rss_bytes"] = sum(rss.values())
        values["process_rss_max_bytes"] = max(rss.values())
        values["workers"] = len(rss)
        values["pids"] = sorted(pid for pid in rss if pid is not None)
    for name, key in (("process.memory.virtual", "process_vms_bytes"), ("process.thread.count", "process_threads")):
        found = per_process(name)
        if found:
            values[key] = sum(found.values())
    cpu = per_process("process.cpu.utilization")
    if cpu:
        values["process_cpu_pct"] = sum(cpu.values()) * 100.0
    lost = lost_spans(data)
    if lost:
        values["spans_lost"] = lost
    lost_records = lost_logs(data)
    if lost_records:
        values["logs_lost"] = lost_records
    return values


# -- windows -----------------------------------------------------------------------------------


def _upper_bound(buckets: tuple[int, ...], bounds: tuple[float, ...]) -> float | None:
    """Upper bound of the highest non-empty bucket (None for +Inf or no data)."""
    for i in range(len(buckets) - 1, -1, -1):
        if buckets[i]:
            return bounds[i] if i < len(bounds) else None
    return None


def diff(now: Mapping[Key, Series], then: Mapping[Key, Series], bounds: tuple[float, ...] = ()) -> dict[Key, Series]:
    """The window between two cumulative snapshots: ``now - then``, keys without requests left out.

    A key whose count went down restarted (a worker was replaced): its whole ``now`` counts, as
    Prometheus's ``increase()`` treats counter resets. The window's max is exact when the
    cumulative max grew; otherwise it is the upper bound of the highest bucket with requests in
    the window (capped by the cumulative max).
    """
    result: dict[Key, Series] = {}
    for key, current in now.items():
        before = then.get(key)
        if before is current:
            continue  # the same sample's series (an Extractor keeps unchanged ones): nothing in between
        if before is None or current.count < before.count:
            if current.count:
                result[key] = current
            continue
        count = current.count - before.count
        if count <= 0:
            continue
        # Equal lengths by construction (one set of bounds per process; the history file's are
        # checked when it is opened); not strict, so a damaged history row cannot fail a response.
        buckets = tuple(a - b for a, b in zip(current.buckets, before.buckets, strict=False))
        if current.max is not None and (before.max is None or current.max > before.max):
            window_max: float | None = current.max
        else:
            bound = _upper_bound(buckets, bounds)
            window_max = current.max if bound is None or current.max is None else min(bound, current.max)
        result[key] = Series(count, max(0.0, current.sum - before.sum), window_max, buckets)
    return result


def add(a: Series | None, b: Series) -> Series:
    if a is None:
        return b
    return Series(
        a.count + b.count,
        a.sum + b.sum,
        _max(a.max, b.max),
        # not strict for the reason given in diff()
        tuple(x + y for x, y in zip(a.buckets, b.buckets, strict=False)) if a.buckets else b.buckets,
    )


def merge(series: Iterable[Series]) -> Series | None:
    total: Series | None = None
    for s in series:
        total = add(total, s)
    return total


def is_error(key: Key) -> bool:
    """A failed request: an exception or a 5xx status (4xx are the client's)."""
    return bool(key[3]) or key[2] >= 500


# -- quantiles and Apdex -------------------------------------------------------------------------


def quantile(q: float, buckets: tuple[int, ...], bounds: tuple[float, ...]) -> float | None:
    """``histogram_quantile(q)``: linear interpolation inside the bucket holding rank ``q * count``.

    As Prometheus: the first bucket starts at 0, a rank in the +Inf bucket returns the highest
    finite bound. None without data.
    """
    total = sum(buckets)
    if total <= 0 or not bounds:
        return None
    rank = q * total
    cumulative = 0
    for i, count in enumerate(buckets):
        if cumulative + count >= rank and count > 0:
            if i >= len(bounds):
                return float(bounds[-1])
            lower: float = bounds[i - 1] if i > 0 else 0.0
            upper: float = bounds[i]
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return float(bounds[-1])


def series_quantile(q: float, s: Series | None, bounds: tuple[float, ...]) -> float | None:
    """:func:`quantile` of a series, never above its (exact or bucket-bounded) maximum.

    Interpolation can land above the largest request (all requests near the bottom of a wide
    bucket); Grafana's ``histogram_quantile`` cannot know better, we can.
    """
    if s is None or s.count == 0:
        return None
    value = quantile(q, s.buckets, bounds)
    if value is not None and s.max is not None and value > s.max:
        value = s.max
    return value


def count_le(x: float, buckets: tuple[int, ...], bounds: tuple[float, ...]) -> float:
    """How many observations are <= x, interpolating linearly inside the bucket holding x."""
    result = 0.0
    lower = 0.0
    for i, count in enumerate(buckets):
        if i >= len(bounds):  # +Inf bucket: all above the last bound
            break
        upper = bounds[i]
        if x >= upper:
            result += count
        else:
            if x > lower:
                result += count * (x - lower) / (upper - lower)
            break
        lower = upper
    return result


def apdex(buckets: tuple[int, ...], bounds: tuple[float, ...], t: float) -> float | None:
    """(satisfied + tolerating / 2) / total: satisfied <= T, tolerating <= 4 T."""
    total = sum(buckets)
    if total <= 0:
        return None
    satisfied = count_le(t, buckets, bounds)
    tolerating = count_le(4 * t, buckets, bounds) - satisfied
    return (satisfied + tolerating / 2) / total


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def stats(
    window: Mapping[Key, Series], bounds: tuple[float, ...], seconds: float | None, apdex_t: float
) -> dict[str, Any]:
    """Totals of a window: requests, rps, errors, latency quantiles (ms), Apdex."""
    total = merge(window.values())
    errors = sum(s.count for k, s in window.items() if is_error(k))
    count = total.count if total else 0
    result: dict[str, Any] = {
        "requests": count,
        "rps": _round(count / seconds, 3) if seconds and seconds > 0 else None,
        "errors": errors,
        "error_rate_pct": _round(100.0 * errors / count) if count else None,
        "latency": _latency(total, bounds),
        "apdex": _round(apdex(total.buckets, bounds, apdex_t), 4) if total else None,
    }
    return result


def _latency(total: Series | None, bounds: tuple[float, ...]) -> dict[str, float | None]:
    if total is None or total.count == 0:
        return {"avg_ms": None, "p50_ms": None, "p90_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "avg_ms": _ms(total.sum / total.count),
        "p50_ms": _ms(series_quantile(0.5, total, bounds)),
        "p90_ms": _ms(series_quantile(0.9, total, bounds)),
        "p95_ms": _ms(series_quantile(0.95, total, bounds)),
        "p99_ms": _ms(series_quantile(0.99, total, bounds)),
        "max_ms": _ms(total.max),
    }


def by_endpoint(window: Mapping[Key, Series]) -> dict[tuple[str, str], dict[str, Any]]:
    """(route, method) -> {"series": merged Series, "errors": n, "status_codes": {"200": n}}."""
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for key, s in window.items():
        entry = result.setdefault((key[0], key[1]), {"series": None, "errors": 0, "status_codes": {}})
        entry["series"] = add(entry["series"], s)
        if is_error(key):
            entry["errors"] += s.count
        code = str(key[2]) if key[2] else "none"
        entry["status_codes"][code] = entry["status_codes"].get(code, 0) + s.count
    return result


def endpoint_rows(
    window: Mapping[Key, Series],
    bounds: tuple[float, ...],
    seconds: float | None,
    last_seen: Mapping[tuple[str, str], float] | None = None,
) -> list[dict[str, Any]]:
    """One row per (route, method) with count, errors, rates and latencies (the /endpoints rows)."""
    rows = []
    for (route, method), entry in by_endpoint(window).items():
        s: Series = entry["series"]
        if s is None or s.count == 0:
            continue
        rows.append(
            {
                "route": route,
                "method": method,
                "count": s.count,
                "errors": entry["errors"],
                "error_rate_pct": _round(100.0 * entry["errors"] / s.count),
                "rps": _round(s.count / seconds, 4) if seconds and seconds > 0 else None,
                "p50_ms": _ms(series_quantile(0.5, s, bounds)),
                "p90_ms": _ms(series_quantile(0.9, s, bounds)),
                "p95_ms": _ms(series_quantile(0.95, s, bounds)),
                "p99_ms": _ms(series_quantile(0.99, s, bounds)),
                "max_ms": _ms(s.max),
                "avg_ms": _ms(s.sum / s.count),
                "last_seen": (last_seen or {}).get((route, method)),
                "status_codes": dict(sorted(entry["status_codes"].items())),
            }
        )
    return rows


# -- health ----------------------------------------------------------------------------------------

#: (check name, reading key, threshold setting, unit, is a request check)
HEALTH_CHECKS = (
    ("latency_avg_ms", "latency_avg_ms", "health_latency_avg_ms", "ms", True),
    ("latency_p95_ms", "latency_p95_ms", "health_latency_p95_ms", "ms", True),
    ("error_rate_pct", "error_rate_pct", "health_error_rate_pct", "%", True),
    ("memory_pct", "memory_pct", "health_memory_pct", "%", False),
    ("cpu_pct", "cpu_pct", "health_cpu_pct", "%", False),
    ("disk_pct", "disk_pct", "health_disk_pct", "%", False),
    ("process_rss_bytes", "process_rss_max_bytes", "health_process_rss_bytes", "bytes", False),
)


def fail_level(threshold: float, unit: str) -> float:
    """Where ``warn`` becomes ``fail``: 1.5 x the threshold, for percentages at most halfway to 100."""
    level = 1.5 * threshold
    if unit == "%":
        level = min(level, threshold + (100.0 - threshold) / 2)
    return level


#: a busy host is not a broken instance: CPU over its threshold warns, never fails
WARN_ONLY_CHECKS = frozenset({"cpu_pct"})
#: what opt-in threshold readiness (``health_ready_thresholds``) looks at: this instance's own
#: requests and memory, not host-wide readings that moving traffic elsewhere would not cure
READINESS_CHECKS = frozenset({"latency_avg_ms", "latency_p95_ms", "error_rate_pct", "process_rss_bytes"})


def health_checks(
    readings: Mapping[str, Any],
    settings: Settings,
    over_fraction: Mapping[str, float] | None = None,
    requests: int | None = None,
) -> list[dict[str, Any]]:
    """Compare ``readings`` with the thresholds of ``settings``.

    ``ok`` at or under the threshold, ``warn`` over it, ``fail`` over :func:`fail_level` -- or, for
    request checks, over the threshold in more than half of the window's steps
    (``over_fraction[name] > 0.5``). No reading: ``"value": null``, ``ok``. Request checks stay
    ``ok`` while the window has fewer than ``settings.health_min_requests`` requests (start-up
    noise: 1 error in 32 requests is not an error rate); :data:`WARN_ONLY_CHECKS` never fail.
    """
    result = []
    min_requests = getattr(settings, "health_min_requests", 0)
    for name, key, setting, unit, request_check in HEALTH_CHECKS:
        threshold = getattr(settings, setting)
        value = readings.get(key)
        status = "ok"
        too_few = request_check and requests is not None and requests < min_requests
        if value is not None and not too_few:
            if value > fail_level(threshold, unit):
                status = "fail"
            elif value > threshold:
                status = "fail" if request_check and (over_fraction or {}).get(name, 0.0) > 0.5 else "warn"
            if status == "fail" and name in WARN_ONLY_CHECKS:
                status = "warn"
        shown_threshold: Any = int(threshold) if float(threshold).is_integer() else threshold
        shown = None if value is None else (int(value) if unit == "bytes" else round(float(value), 3))
        check = {"name": name, "value": shown, "threshold": shown_threshold, "unit": unit, "status": status}
        if too_few and value is not None:
            check["note"] = f"fewer than {min_requests} requests in the window"
        result.append(check)
    return result


def overall_status(checks: Iterable[Mapping[str, Any]]) -> str:
    statuses = {c["status"] for c in checks}
    return "unhealthy" if "fail" in statuses else "degraded" if "warn" in statuses else "healthy"


# -- the ring of 10-second samples --------------------------------------------------------------


class Sample(NamedTuple):
    t: float  # wall-clock time of the sample (Unix seconds)
    requests: dict[Key, Series]  # cumulative
    system: SystemValues


class Ring:
    """Cumulative samples, oldest first, at most ``size`` of them (15 min of 10 s samples + 1).

    Consecutive samples share the ``Series`` objects of keys that did not change, so an idle
    route costs one dict slot per sample.
    """

    def __init__(self, size: int = 91) -> None:
        self.samples: deque[Sample] = deque(maxlen=size)

    def add(self, t: float, requests: dict[Key, Series], system: SystemValues) -> Sample:
        if self.samples:
            previous = self.samples[-1].requests
            requests = {k: (previous[k] if previous.get(k) == s else s) for k, s in requests.items()}
        sample = Sample(t, requests, system)
        self.samples.append(sample)
        return sample

    def snapshot(self) -> list[Sample]:
        """The samples, oldest first (a copy: the background job appends while requests read)."""
        return list(self.samples)

    def at(self, t: float) -> Sample | None:
        """The newest sample taken at or before ``t``; None when every sample is younger."""
        found = None
        for sample in self.snapshot():
            if sample.t <= t:
                found = sample
            else:
                break
        return found

    def oldest(self) -> Sample | None:
        samples = self.snapshot()
        return samples[0] if samples else None

    def newest(self) -> Sample | None:
        samples = self.snapshot()
        return samples[-1] if samples else None

    def __len__(self) -> int:
        return len(self.samples)
