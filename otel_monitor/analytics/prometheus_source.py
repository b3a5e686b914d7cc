"""The fleet source of the analytics: the same figures, read by PromQL from a Prometheus.

With ``analytics_source=prometheus`` the analytics endpoints and the dashboard answer for every
instance Prometheus scrapes under ``analytics_prometheus_selector`` (default ``job="<service_name>"``),
not for the process that happens to answer. :class:`FleetState` stands in for
:class:`~otel_monitor.analytics.AnalyticsState`: it hands the blueprint the same ``{Key: Series}``
windows (built from the ``http_server_request_duration_seconds`` buckets), so the quantiles, Apdex,
error rates and JSON shapes come from the same code (``summary.py``) for both sources.

What Prometheus cannot give stays local and says so: recent traces (``/traces``), the custom
metrics of ``/metrics``, and ``/health`` for load balancers (``?scope=fleet`` asks for the
fleet's). Every Prometheus call is bounded: one deadline per analytics request
(``analytics_prometheus_timeout_s``), and after a failure the next calls fail fast for a
cool-down, so a slow Prometheus never ties up the app's workers.

This module is the domain side: PromQL and turning answers into the analytics' series. The HTTP
client is :mod:`._prometheus_client`, given to :class:`FleetState` as a constructor argument (a
unit test passes a fake); the blueprint adds the routes (``/instances``) and the per-request cache.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..settings import SettingsError
from ._prometheus_client import PromClient, PrometheusQueries, PrometheusUnavailable, PromSeries
from .summaries import Summaries, Tick
from .summary import UNMATCHED, WINDOWS, Key, RouteCap, Sample, Series, Window, endpoint_rows, stats

if TYPE_CHECKING:
    from ..settings import Settings
    from ..telemetry.pipeline import Pipeline
    from . import AnalyticsState

__all__ = ["FleetState", "FleetUnavailable", "build_fleet", "fleet_selector", "validate_fleet_settings"]

#: a per-request cache (the request's ``flask.g`` slot in the blueprint, a plain dict elsewhere)
Cache = dict[Any, Any]

DURATION = "http_server_request_duration_seconds"
#: the labels a request series is kept apart by (``url_scheme`` and the rest are summed away)
KEY_LABELS = ("instance", "http_route", "http_request_method", "http_response_status_code", "error_type")
#: shortest range handed to increase()/rate(): four scrapes at the common 15 s interval
MIN_RANGE_S = 60.0
#: points per chart (the step grows with the window)
CHART_POINTS = 60
_SYSTEM_EXPRS = {
    # name -> PromQL over the selected series ({sel} is replaced); host values: the busiest host
    "cpu_pct": "max(system_cpu_utilization{{{sel}}}) * 100",
    "memory_pct": 'max(system_memory_utilization{{{sel},system_memory_state="used"}}) * 100',
    "disk_pct": "max(system_filesystem_utilization{{{sel}}}) * 100",
    "process_rss_bytes": "sum(process_memory_usage_bytes{{{sel}}})",
    "process_rss_max_bytes": "max(process_memory_usage_bytes{{{sel}}})",
    "process_vms_bytes": "sum(process_memory_virtual_bytes{{{sel}}})",
    "process_threads": "sum(process_threads{{{sel}}})",
    "workers": "count(process_memory_usage_bytes{{{sel}}})",
    "net_bytes_sent": 'sum(system_network_io_bytes_total{{{sel},network_io_direction="transmit"}})',
    "net_bytes_recv": 'sum(system_network_io_bytes_total{{{sel},network_io_direction="receive"}})',
}
_INSTANCE_SYSTEM_EXPRS = {
    "cpu_pct": "max by (instance) (system_cpu_utilization{{{sel}}}) * 100",
    "memory_pct": 'max by (instance) (system_memory_utilization{{{sel},system_memory_state="used"}}) * 100',
    "process_rss_bytes": "sum by (instance) (process_memory_usage_bytes{{{sel}}})",
    "workers": "count by (instance) (process_memory_usage_bytes{{{sel}}})",
    "started": "min by (instance) (process_start_time_seconds{{{sel}}})",
}


#: Prometheus did not answer usefully in time: the analytics endpoints answer 503 with its message
FleetUnavailable = PrometheusUnavailable


def fleet_selector(settings: Settings) -> str:
    """The label matchers of the service's series: the setting, else ``job="<service_name>"``."""
    if settings.analytics_prometheus_selector:
        return str(settings.analytics_prometheus_selector)
    name = (settings.service_name or "unknown_service").replace("\\", "\\\\").replace('"', '\\"')
    return f'job="{name}"'


def validate_fleet_settings(settings: Settings) -> None:
    """Start-up checks for ``analytics_source=prometheus`` (a URL, both halves of Basic auth)."""
    if settings.analytics_source != "prometheus":
        return
    if not (settings.analytics_prometheus_url or settings.prometheus_url):
        raise SettingsError(
            "analytics_prometheus_url: analytics_source=prometheus needs the Prometheus URL "
            "(OTEL_MONITOR_ANALYTICS_PROMETHEUS_URL, or OTEL_MONITOR_PROMETHEUS_URL when the app reaches the same one)"
        )
    if bool(settings.analytics_prometheus_username) != bool(settings.analytics_prometheus_password):
        raise SettingsError(
            "analytics_prometheus_password: analytics_prometheus_username and analytics_prometheus_password "
            "go together; set both or neither"
        )
    if settings.analytics_prometheus_token and settings.analytics_prometheus_username:
        raise SettingsError(
            "analytics_prometheus_token: set either a bearer token or a user name and password for Prometheus, not both"
        )


# -- from Prometheus's answers to our Series ---------------------------------------------------------


def _number(text: float | str) -> float:
    value = float(text)
    return 0.0 if math.isnan(value) else value


def _le(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def histograms(items: list[PromSeries], cap: RouteCap) -> tuple[dict[str, dict[Key, Series]], tuple[float, ...]]:
    """``{instance: {Key: Series}}`` and the bounds, from ``_bucket`` samples (``le``) and ``le="sum"``.

    A key's ``max`` is the upper bound of its highest non-empty bucket (Prometheus has no maximum).
    Bucket counts are whole requests (differences of counters), rounded against float noise.
    """
    grouped: dict[tuple[str, Key], dict[float, float]] = {}
    sums: dict[tuple[str, Key], float] = {}
    for item in items:
        labels = item.get("metric", {})
        route = labels.get("http_route") or UNMATCHED
        method = labels.get("http_request_method") or "_OTHER"
        status = labels.get("http_response_status_code") or ""
        error = labels.get("error_type") or ""
        key: Key = (
            cap.route(route, method),
            method,
            int(status) if status.isdigit() else 0,
            cap.error(error) if error else "",
        )
        slot = (labels.get("instance", ""), key)
        value = _number(item["value"][1])
        le = labels.get("le", "")
        if le == "sum":
            sums[slot] = sums.get(slot, 0.0) + value
            continue
        try:
            bound = _le(le)
        except ValueError:
            continue
        buckets = grouped.setdefault(slot, {})
        buckets[bound] = buckets.get(bound, 0.0) + value  # keys folded into (other) add up
    ordered = tuple(sorted({b for values in grouped.values() for b in values if math.isfinite(b)}))
    result: dict[str, dict[Key, Series]] = {}
    for (instance, key), values in grouped.items():
        cumulative: list[int] = []
        last = 0
        for bound in (*ordered, math.inf):
            # A bucket missing from the answer (a stale series) holds no more than the one below.
            last = max(last, round(values.get(bound, last)))
            cumulative.append(last)
        if cumulative[-1] <= 0:
            continue
        counts = tuple(b - a for a, b in zip([0, *cumulative[:-1]], cumulative, strict=False))
        highest = max(i for i, n in enumerate(counts) if n > 0)
        upper = ordered[highest] if highest < len(ordered) else None
        total = max(0.0, sums.get((instance, key), 0.0))
        result.setdefault(instance, {})[key] = Series(cumulative[-1], total, upper, counts)
    return result, ordered


def _delta(series: str, seconds: float | None) -> str:
    if seconds is None:  # since the running processes started: the counters themselves
        return series
    offset = f"offset {int(math.ceil(seconds))}s"
    return f"(({series} - {series} {offset}) >= 0) or {series}"


def fleet_total(per_instance: Mapping[str, Mapping[Key, Series]]) -> dict[Key, Series]:
    """The fleet's window: every instance's series added up, key by key."""
    total: dict[Key, Series] = {}
    for series in per_instance.values():
        for key, s in series.items():
            before = total.get(key)
            if before is None:
                total[key] = s
            else:
                upper = None if before.max is None or s.max is None else max(before.max, s.max)
                total[key] = Series(
                    before.count + s.count,
                    before.sum + s.sum,
                    upper,
                    tuple(a + b for a, b in zip(before.buckets, s.buckets, strict=False)),
                )
    return total


# -- the state the blueprint reads -------------------------------------------------------------------


class _LazySystem(dict[str, Any]):
    """The fleet's gauges, asked from Prometheus only by the views that read them (health)."""

    def __init__(self, load: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self._load: Callable[[], dict[str, Any]] | None = load

    def _loaded(self) -> None:
        if self._load is not None:
            load, self._load = self._load, None
            self.update(load())

    def get(self, key: str, default: Any = None) -> Any:
        self._loaded()
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._loaded()
        return super().__getitem__(key)


class _NoRing:
    """The fleet keeps no samples of its own: Prometheus has them."""

    def newest(self) -> None:
        return None


class FleetState:
    """The analytics figures of every selected instance, read from Prometheus when asked.

    Implements :class:`~otel_monitor.analytics.reports.StateSource`, as the in-process
    :class:`~otel_monitor.analytics.AnalyticsState` does. Per analytics
    request, answers are cached (``cache`` is the request's ``flask.g``-like dict) and all calls
    share one deadline.
    """

    source = "prometheus"
    tracks_last_seen = False
    history = None

    def __init__(
        self,
        client: PrometheusQueries,
        settings: Settings,
        local: Callable[[], AnalyticsState | None],
        clock: Callable[[], float] = time.time,
        context: Callable[[], Cache] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.selector = fleet_selector(settings)
        self.prefix = settings.analytics_prefix.rstrip("/")
        self.local = local
        self.clock = clock
        self.bounds: tuple[float, ...] = tuple(settings.http_server_duration_buckets)
        self.ring = _NoRing()
        self.last_seen: dict[tuple[str, str], float] = {}
        self._context: Callable[[], Cache] = context or dict
        self._fallback_started = clock()
        #: the summaries of ``AnalyticsState.summaries``; here a tick is one analytics request (see :meth:`tick`)
        self.summaries = Summaries(self, settings.apdex_t_ms / 1000.0)
        self._ticks = itertools.count(1)
        # The analytics' own URLs are left out, as in the in-process source.
        escaped = re.escape(self.prefix).replace("\\", "\\\\").replace('"', '\\"')
        self.request_selector = f'{self.selector},http_route!~"{escaped}(/.*)?"'

    # -- per-request cache and deadline ------------------------------------------------------------

    def _cache(self) -> Cache:
        cache = self._context()
        if "deadline" not in cache:
            cache["deadline"] = time.monotonic() + self.client.timeout
        return cache

    def _query(self, expr: str, at: float) -> list[PromSeries]:
        cache = self._cache()
        key = ("q", expr, at)
        if key not in cache:
            cache[key] = self.client.query(expr, at, cache["deadline"])
        rows: list[PromSeries] = cache[key]
        return rows

    def _query_range(self, expr: str, start: float, end: float, step: float) -> list[PromSeries]:
        cache = self._cache()
        key = ("r", expr, start, end, step)
        if key not in cache:
            cache[key] = self.client.query_range(expr, start, end, step, cache["deadline"])
        rows: list[PromSeries] = cache[key]
        return rows

    # -- what the blueprint reads ----------------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        """``/metrics`` (the custom metrics' JSON) stays this process's."""
        return self._local_state().pipeline

    def _local_state(self) -> AnalyticsState:
        state = self.local()
        if state is None:
            raise RuntimeError("otel_monitor analytics: no pipeline (monitoring disabled?)")
        return state

    @property
    def started(self) -> float:
        """When the oldest running instance started (Prometheus's ``process_start_time_seconds``)."""
        cache = self._cache()
        if "started" not in cache:
            rows = self._query(f"min(process_start_time_seconds{{{self.selector}}})", self._now(cache))
            cache["started"] = _number(rows[0]["value"][1]) if rows else self._fallback_started
        return float(cache["started"])

    def _now(self, cache: Cache) -> float:
        if "now" not in cache:
            cache["now"] = self.clock()
        return float(cache["now"])

    def read(self) -> Sample:
        return self.tick().sample

    def tick(self) -> Tick:
        """This request's figures' time. Not shared across requests: Prometheus answers for *now*
        (a figure just scraped shows at once), and its own query cache already spares repeated
        work within a request; the cost the cap bounds is waiting on Prometheus, not CPU."""
        cache = self._cache()
        if "tick" not in cache:
            at = self._now(cache)
            cache["tick"] = Tick(next(self._ticks), Sample(at, {}, _LazySystem(lambda: self.system(at))))
        tick: Tick = cache["tick"]
        return tick

    def compute_window(self, name: str, now: Sample) -> Window:
        return self.window_by_instance(name, now)

    def system(self, at: float) -> dict[str, Any]:
        """Host and process gauges of the fleet: the busiest host's percentages, process sums."""
        expr = " or ".join(
            f'label_replace({template.format(sel=self.selector)}, "otel_monitor_figure", "{name}", "", "")'
            for name, template in _SYSTEM_EXPRS.items()
        )
        values: dict[str, Any] = {}
        for item in self._query(expr, at):
            name = item["metric"].get("otel_monitor_figure")
            if name:
                value = _number(item["value"][1])
                values[name] = int(value) if name == "workers" else value
        return values

    def _histogram_expr(self, seconds: float | None, by: tuple[str, ...] = KEY_LABELS) -> str:
        """Buckets and sums of a window: ``now - (now offset window)``, as the in-process ``diff()``.

        Not increase(): it extrapolates, and it drops the first sample of a series -- a series is
        born with its first request, so every new route, status or instance would lose requests.
        A series absent at the window's start (new) or lower than then (a restart) counts whole.
        Two samples per series whatever the window's length: a 7-day window costs what 1 minute does.
        """
        labels = ", ".join(by)
        return (
            f"sum by ({labels}, le) ({_delta(f'{DURATION}_bucket{{{self.request_selector}}}', seconds)})"
            f" or label_replace(sum by ({labels}) ({_delta(f'{DURATION}_sum{{{self.request_selector}}}', seconds)}),"
            ' "le", "sum", "", "")'
        )

    def window_by_instance(self, name: str, now: Sample | None = None) -> Window:
        """:meth:`window` with the requests per ``instance`` label (``"instances"``)."""
        cache = self._cache()
        at = now.t if now is not None else self._now(cache)
        length = WINDOWS[name] if name in WINDOWS else 300.0
        key = ("window", name, at)
        if key in cache:
            cached: Window = cache[key]
            return cached
        started = self.started
        items = self._query(self._histogram_expr(length), at)
        per_instance, bounds = histograms(items, RouteCap(self.settings.analytics_max_routes))
        if bounds:
            self.bounds = bounds
        if length is None:
            seconds, available, since = max(1e-9, at - started), True, started
        else:
            available = started <= at - length
            since = at - length if available else started
            seconds = max(1e-9, at - since)
        result: Window = {
            "requests": fleet_total(per_instance),
            "instances": per_instance,
            "seconds": seconds,
            "available": available,
            "since": since,
            "source": "prometheus",
        }
        cache[key] = result
        return result

    def window(self, name: str, now: Sample | None = None) -> Window:
        """The fleet's requests of a window: increase() over it (``all``: the cumulative counters)."""
        return self.window_by_instance(name, now)

    def history_minutes(
        self, since: float, until: float
    ) -> tuple[dict[int, dict[Key, Series]], dict[int, dict[str, Any]]]:
        """No history here: Prometheus keeps the long windows (every chart reads :meth:`steps`)."""
        return {}, {}

    def step_s(self, length: float) -> int:
        """Chart step for a window of ``length`` seconds: at most :data:`CHART_POINTS` points, 15 s or more."""
        return int(max(15, math.ceil(length / CHART_POINTS / 15) * 15))

    def steps(self, length: float, now: Sample) -> list[tuple[Sample, Sample]]:
        """Consecutive (earlier, later) cumulative samples whose differences are the chart's steps.

        Each step is the counters' difference over the step (see :meth:`_histogram_expr`: exact,
        so the steps add up to the window); the samples are running sums of those steps, so the
        blueprint's ``diff(later, earlier)`` gives them back.
        """
        step = self.step_s(length)
        end = math.floor(now.t / step) * step
        start = max(now.t - length, end - step * (CHART_POINTS + 1))
        start = math.ceil(start / step) * step
        if end < start:
            return []
        expr = self._histogram_expr(step, KEY_LABELS[1:])
        items = self._query_range(expr, start, end, step)
        by_time: dict[float, list[PromSeries]] = {}
        for item in items:
            for t, value in item.get("values", []):
                by_time.setdefault(float(t), []).append({"metric": item["metric"], "value": [t, value]})
        system_rows = self._system_range(start, end, step)
        cap = RouteCap(self.settings.analytics_max_routes)
        times = [start + i * step for i in range(int((end - start) / step) + 1)]
        cumulative: dict[Key, Series] = {}
        net = {"net_bytes_sent": 0.0, "net_bytes_recv": 0.0}
        samples = [Sample(times[0] - step, {}, dict(net))]
        for t in times:
            per_instance, bounds = histograms(by_time.get(t, []), cap)
            if bounds:
                self.bounds = bounds
            step_requests = fleet_total(per_instance)
            merged = dict(cumulative)
            for key, s in step_requests.items():
                before = merged.get(key)
                merged[key] = (
                    s
                    if before is None
                    else Series(
                        before.count + s.count,
                        before.sum + s.sum,
                        s.max,
                        tuple(a + b for a, b in zip(before.buckets, s.buckets, strict=False)),
                    )
                )
            cumulative = merged
            system = dict(system_rows.get(t, {}))
            for name in net:
                net[name] += system.pop(name, 0.0)
                system[name] = net[name]
            samples.append(Sample(float(t), cumulative, system))
        return list(zip(samples, samples[1:], strict=False))

    def _system_range(self, start: float, end: float, step: float) -> dict[float, dict[str, Any]]:
        exprs = {
            name: template.format(sel=self.selector)
            for name, template in _SYSTEM_EXPRS.items()
            if name in ("cpu_pct", "memory_pct", "disk_pct", "process_rss_bytes", "process_threads")
        }
        rng = int(max(step, MIN_RANGE_S))
        for name, direction in (("net_bytes_sent", "transmit"), ("net_bytes_recv", "receive")):
            exprs[name] = (
                f'sum(rate(system_network_io_bytes_total{{{self.selector},network_io_direction="{direction}"}}'
                f"[{rng}s])) * {step}"
            )
        expr = " or ".join(f'label_replace({e}, "otel_monitor_figure", "{name}", "", "")' for name, e in exprs.items())
        rows: dict[float, dict[str, Any]] = {}
        for item in self._query_range(expr, start, end, step):
            figure = item["metric"].get("otel_monitor_figure")
            if not figure:
                continue
            for t, value in item.get("values", []):
                rows.setdefault(float(t), {})[figure] = _number(value)
        return rows

    def traces(self) -> list[dict[str, Any]]:
        """Recent slow and failed requests are this process's: Prometheus holds no spans."""
        return self._local_state().traces()

    # -- the per-instance breakdown --------------------------------------------------------------------

    def instances(self, name: str, apdex_t: float) -> dict[str, Any]:
        """One row per scraped instance: ``up``, requests, rate, errors, latency and its gauges."""
        cache = self._cache()
        at = self._now(cache)
        window = self.window_by_instance(name)
        up = {
            item["metric"].get("instance", ""): _number(item["value"][1])
            for item in self._query(f"up{{{self.selector}}}", at)
        }
        gauges: dict[str, dict[str, float]] = {}
        expr = " or ".join(
            f'label_replace({template.format(sel=self.selector)}, "otel_monitor_figure", "{figure}", "", "")'
            for figure, template in _INSTANCE_SYSTEM_EXPRS.items()
        )
        for item in self._query(expr, at):
            figure = item["metric"].get("otel_monitor_figure", "")
            gauges.setdefault(item["metric"].get("instance", ""), {})[figure] = _number(item["value"][1])
        length = WINDOWS.get(name)
        rows = []
        for instance in sorted(set(up) | set(window["instances"]) | set(gauges)):
            requests = window["instances"].get(instance, {})
            own = gauges.get(instance, {})
            if length is None:
                seconds: float | None = max(1e-9, at - own["started"]) if "started" in own else window["seconds"]
            else:
                seconds = min(length, at - own["started"]) if "started" in own else window["seconds"]
            figures = stats(requests, self.bounds, seconds, apdex_t)
            rows.append(
                {
                    "instance": instance,
                    "up": None if instance not in up else bool(up[instance]),
                    "requests": figures["requests"],
                    "rps": figures["rps"],
                    "errors": figures["errors"],
                    "error_rate_pct": figures["error_rate_pct"],
                    "latency": figures["latency"],
                    "apdex": figures["apdex"],
                    "covered_s": None if seconds is None else round(seconds, 3),
                    "started": own.get("started"),
                    "cpu_pct": _rounded(own.get("cpu_pct")),
                    "memory_pct": _rounded(own.get("memory_pct")),
                    "process_rss_bytes": int(own["process_rss_bytes"]) if "process_rss_bytes" in own else None,
                    "workers": int(own["workers"]) if "workers" in own else None,
                    "endpoints": len(endpoint_rows(requests, self.bounds, seconds)),
                }
            )
        return {
            "source": "prometheus",
            "selector": self.selector,
            "window": name,
            "window_available": window["available"],
            "covered_s": round(window["seconds"], 3),
            "time": at,
            "instances": rows,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- building the source ------------------------------------------------------------------------------


def build_fleet(
    settings: Settings,
    local: Callable[[], AnalyticsState | None],
    context: Callable[[], Cache] | None = None,
    client: PrometheusQueries | None = None,
) -> FleetState | None:
    """The fleet state for ``settings`` (None for the default in-process source).

    ``context`` gives each analytics request its cache (the blueprint passes the request's
    ``flask.g`` slot); ``client`` defaults to a :class:`PromClient` of the configured Prometheus.
    """
    if settings.analytics_source != "prometheus":
        return None
    validate_fleet_settings(settings)
    if client is None:
        url = settings.analytics_prometheus_url or settings.prometheus_url
        assert url is not None  # validate_fleet_settings refused a fleet without one
        client = PromClient(
            url,
            settings.analytics_prometheus_timeout_s,
            token=settings.analytics_prometheus_token,
            username=settings.analytics_prometheus_username,
            password=settings.analytics_prometheus_password,
        )
    return FleetState(client, settings, local, context=context)
