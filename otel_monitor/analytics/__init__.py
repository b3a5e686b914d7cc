"""Analytics: a JSON API (and the dashboard) over the same OpenTelemetry pipeline.

Not a second bookkeeping path: request numbers come from the cumulative metrics every consumer
reads (``pipeline.collect_all()``, all workers merged), recent slow and failed requests from a
span processor with bounded deques. Nothing runs per request beyond what the pipeline already
does; a background job samples the metrics every 10 s (windows of 1 to 15 minutes) and,
with ``MONITORING_DB``, writes per-minute rollups to SQLite every 60 s (longer windows).

The figures are those of the newest sample (a *tick*): :attr:`AnalyticsState.summaries`
(:class:`~otel_monitor.analytics.summaries.Summaries`) computes each window's summary once per
tick and every caller -- each endpoint, the dashboard, alerts, per-version views -- shares it.
``state.window(name)`` and ``state.read()`` answer from the same tick, so code written against
them shares the cache without knowing it.

Usage: nothing -- ``Monitor(app)`` mounts it at ``analytics_prefix`` (default ``/otel-monitor``).
In tests, :func:`analytics_of` gives the per-process state (``sample()`` takes a tick now,
``clock``, ``history``). See ``docs/analytics-api.md``.

May import: :mod:`otel_monitor.metrics` (the data it reads), the telemetry's export accounting and
types, :mod:`otel_monitor.settings`, :mod:`otel_monitor.prefork`, :mod:`otel_monitor._safe_log`,
:mod:`otel_monitor._redaction`. Never the request path (it reads what the request path recorded,
through the pipeline) and never the alerts (they read the analytics; :mod:`otel_monitor.monitor`
wires them through ``install(extend=...)``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

from .._safe_log import log_internal_error
from ..metrics.metrics_view import Channel
from . import custom_series as _custom_series
from . import errors as _errors
from . import insights as _insights
from . import profiler as _profiler
from . import trace_store as _trace_store
from .access import analytics_of, keep
from .auth import Auth, resolve_secret_key, validate_settings
from .spans import SHARE_KEY, AnalyticsSpans, RecentRequests
from .summaries import Summaries, Tick
from .summary import (
    WINDOWS,
    Extractor,
    Key,
    Ring,
    RouteCap,
    Sample,
    Series,
    SystemValues,
    Window,
    add,
    diff,
    extract,
    system_values,
)
from .users import Identities

if TYPE_CHECKING:
    from flask import Blueprint, Flask
    from opentelemetry.sdk.metrics.export import MetricsData

    from ..monitor import Monitor
    from ..settings import Settings
    from ..telemetry._runtime import Runtime
    from ..telemetry.pipeline import Pipeline

__all__ = ["install", "analytics_of", "AnalyticsState", "SAMPLE_INTERVAL_S", "HISTORY_INTERVAL_S"]

_T = TypeVar("_T")

_logger = logging.getLogger("otel_monitor")
SAMPLE_INTERVAL_S = 10.0
HISTORY_INTERVAL_S = 60.0
#: 15 minutes of 10 s samples, plus the one at the start of the 15-minute window
RING_SPAN_S = 900.0
RING_SIZE = int(RING_SPAN_S / SAMPLE_INTERVAL_S) + 1
#: a reader samples itself when the newest sample is older than this (the background job is late or stopped)
STALE_S = 1.5 * SAMPLE_INTERVAL_S


class AnalyticsState:
    """One process's analytics for one monitored app: the ring of samples, recent spans, history.

    Made by the pipeline setup hook, so a forked worker gets its own. ``clock`` (wall time,
    Unix seconds) can be replaced in tests; :meth:`sample` takes a sample now.

    The seam for everything that reports on windows: :attr:`summaries` (one
    :class:`~otel_monitor.analytics.summaries.WindowSummary` per window and tick, shared by
    every caller, plus :meth:`~otel_monitor.analytics.summaries.Summaries.memo` for any other
    per-tick figure). :meth:`read` is the current tick's sample (taken now when the newest is
    older than :data:`STALE_S`), :meth:`window` with no ``now`` (or the tick's sample) that
    tick's cached window; :meth:`collect` reads the metrics afresh.
    """

    def __init__(self, pipeline: Pipeline, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.prefix = settings.analytics_prefix.rstrip("/")
        self.clock = clock
        self.started = clock()
        self.bounds: tuple[float, ...] = tuple(settings.http_server_duration_buckets)
        self.cap = RouteCap(settings.analytics_max_routes)
        #: the samples' extract: reads only the series that changed since the last sample
        self.extractor = Extractor(self.cap, self.prefix)
        self.ring = Ring(RING_SIZE)
        self.recent = RecentRequests(
            settings.analytics_slow_ms, settings.analytics_traces_kept, self.prefix, settings.sensitive_query_params
        )
        self.errors = _errors.ErrorGroups()
        self.custom = _custom_series.CustomSeries(RING_SIZE)
        self._last_data: MetricsData | None = None
        #: the sampling profiler of slow requests and the outliers' context (see .profiler)
        self.profiling = _profiler.Profiling(pipeline, settings)
        self.details = _trace_store.TraceStore(
            settings.analytics_slow_ms,
            settings.analytics_trace_details,
            settings.sensitive_query_params,
            self.prefix,
            on_failed=self.errors.add,
            annotators=self.profiling.annotators,
        )
        #: (route, method) -> last time a sample saw its count grow (bounded by the route cap)
        self.last_seen: dict[tuple[str, str], float] = {}
        #: replaced in tests: () -> system_values dict, or None to read the metrics
        self.system_source: Callable[[], SystemValues] | None = None
        #: the app's version (``service.version``), and requests per user / client address (.users)
        self.version = str(pipeline.resource.attributes.get("service.version") or "unknown")
        #: the counts read the clock per request: given it directly, not through a lambda (see use_clock)
        self.identities = Identities(settings, self.bounds, clock)
        #: the one span processor of the analytics: reads each ended request span once for all of them
        self.request_spans = AnalyticsSpans(
            self.recent,
            self.details if settings.analytics_trace_details > 0 else None,
            self.identities.counts,
            self.details.other_ended if settings.analytics_trace_details > 0 else None,
        )
        self._sampling = threading.RLock()
        self._tick: Tick | None = None
        self._ticks = 0
        self.summaries = Summaries(self, settings.apdex_t_ms / 1000.0)
        self.history = None
        if settings.analytics_db:
            from .history import History

            # No I/O here (this may run in a worker's first request): the file is opened on first use.
            self.history = History(
                settings.analytics_db,
                pipeline.instance_id,
                self.bounds,
                settings.analytics_retention_days,
                lambda: self.clock(),
                self.version,
            )

    # -- reading the pipeline ------------------------------------------------------------------

    def collect(self) -> Sample:
        """A cumulative snapshot now (all workers), not stored."""
        data = self.pipeline.collect_all()
        self._last_data = data
        requests, bounds = self.extractor(data)
        if bounds:
            self.bounds = bounds
        system = self.system_source() if self.system_source is not None else system_values(data)
        return Sample(self.clock(), requests, system)

    def sample(self) -> Sample:
        """Take a 10-second sample now (what the background job does): the next tick."""
        with self._sampling:
            current = self.collect()
            previous = self.ring.newest()
            stored = self.ring.add(current.t, current.requests, current.system)
            self._sample_custom(current.t)
            grown = diff(current.requests, previous.requests if previous else {}, self.bounds)
            for key in grown:
                self.last_seen[(key[0], key[1])] = current.t
            self._ticks += 1
            self._tick = Tick(self._ticks, stored, self._last_data)
            return stored

    def tick(self) -> Tick:
        """The newest sample and its number; sampled now when there is none or it is older than STALE_S."""
        tick = self._tick
        if tick is None or not 0 <= self.clock() - tick.sample.t <= STALE_S:
            with self._sampling:  # one late reader samples, the others wait for its tick
                tick = self._tick
                if tick is None or not 0 <= self.clock() - tick.sample.t <= STALE_S:
                    self.sample()
                tick = self._tick
                assert tick is not None
        return tick

    def read(self) -> Sample:
        """The cumulative sample the figures end at: the current tick's (see :meth:`tick`)."""
        return self.tick().sample

    def _sample_custom(self, t: float) -> None:
        from .reports import metrics_json

        try:
            # only the custom instruments: the request metrics' series (thousands, each with its
            # buckets) are what the rest of the sample reads, and CustomSeries skips them anyway
            self.custom.add(t, [dict(m) for m in metrics_json(self._last_data, include=_custom_series.is_custom)])
        except Exception:  # noqa: BLE001 - a broken sample only leaves a gap in the custom charts
            log_internal_error("sampling the custom metrics")

    def write_history(self) -> int:
        """Write this process's own deltas to the history file (the 60 s job)."""
        if self.history is None:
            return 0
        data = self.pipeline.reader.snapshot()
        own, _ = extract(data, self.cap, self.prefix)
        system = self.system_source() if self.system_source is not None else system_values(data)
        return self.history.write(own, system)

    # -- windows -------------------------------------------------------------------------------

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Tests: read time from ``clock`` from now on (the process "starts" now)."""
        self.clock = clock
        self.started = clock()
        self._tick = None
        self.identities.use_clock(clock)

    def window(self, name: str, now: Sample | None = None) -> Window:
        """The requests of a window: ``{"requests": {Key: Series}, "seconds", "available", "since", "source"}``.

        Without ``now`` (or with the current tick's sample) the tick's shared summary answers
        (:attr:`summaries`); another ``now`` is computed on the spot (:meth:`compute_window`).
        """
        tick = self.tick()
        if now is None or now is tick.sample:
            return self.summaries.window(name, tick).window
        return self.compute_window(name, now)

    def compute_window(self, name: str, now: Sample) -> Window:
        """The window ending at ``now``, computed (what :attr:`summaries` keeps per tick).

        Up to 15 minutes: the current snapshot minus the newest sample taken at or before the
        window's start. When there is none (the process or the ring is younger than the window)
        it uses what there is -- everything since start, or since the oldest sample -- and says
        so: ``available`` is False and ``seconds`` is the time covered. Longer windows come from
        the history file when there is one (the last minute of other processes may be missing).
        """
        length = WINDOWS[name] if name in WINDOWS else 300.0
        if length is None:  # since start
            return {
                "requests": now.requests,
                "seconds": max(1e-9, now.t - self.started),
                "available": True,
                "since": self.started,
                "source": "memory",
            }
        start = now.t - length
        if length > RING_SPAN_S and self.history is not None and self.history.usable:
            first = self.history.first_minute()
            covered_from = max(start, first) if first is not None else now.t
            return {
                "requests": self.history_requests(start, now.t),
                "seconds": max(60.0, now.t - covered_from),
                "available": first is not None and first <= start + 60,
                "since": covered_from,
                "source": "history",
            }
        base = self.ring.at(start)
        if base is not None and length <= RING_SPAN_S:
            return {
                "requests": diff(now.requests, base.requests, self.bounds),
                "seconds": max(1e-9, now.t - base.t),
                "available": True,
                "since": base.t,
                "source": "memory",
            }
        oldest = self.ring.oldest()
        if oldest is None or self.started >= start:
            requests, since = now.requests, self.started
        else:
            requests, since = diff(now.requests, oldest.requests, self.bounds), oldest.t
        return {
            "requests": requests,
            "seconds": max(1e-9, now.t - since),
            "available": False,
            "since": since,
            "source": "memory",
        }

    def history_minutes(
        self, since: float, until: float
    ) -> tuple[dict[int, dict[Key, Series]], dict[int, SystemValues]]:
        """The history's requests and system rows per minute of ``[since, until]``, read once a minute.

        The file changes once a minute (the 60 s writes), so every window and chart over the same
        minutes shares one read (:meth:`Summaries.lasting`) rather than one per tick.
        """
        history = self.history
        if history is None:
            return {}, {}
        first, last = int(since // 60), int(until // 60)
        return self.summaries.lasting(
            ("history_minutes", first, last - first),
            last,
            lambda: (history.requests_by_minute(since, until), history.system_by_minute(since, until)),
        )

    def history_requests(self, since: float, until: float) -> dict[Key, Series]:
        """The history's requests of ``[since, until]`` summed per key (from :meth:`history_minutes`)."""
        first, last = int(since // 60), int(until // 60)

        def total() -> dict[Key, Series]:
            result: dict[Key, Series] = {}
            for per_minute in self.history_minutes(since, until)[0].values():
                for key, s in per_minute.items():
                    result[key] = add(result.get(key), s)
            return result

        return self.summaries.lasting(("history_requests", first, last - first), last, total)

    #: where the figures come from without the history (:class:`~.reports.StateSource`)
    source = "memory"

    def step_s(self, length: float) -> int:
        """The seconds between two points of a chart from memory: one sample interval."""
        return int(SAMPLE_INTERVAL_S)

    def steps(self, length: float, now: Sample) -> list[tuple[Sample, Sample]]:
        """Consecutive (earlier, later) samples covering the last ``length`` seconds, ending now."""
        start = now.t - length
        samples = [s for s in self.ring.snapshot() if s.t >= start]
        base = self.ring.at(start)
        if base is not None and (not samples or samples[0] is not base):
            samples.insert(0, base)
        elif base is None and self.started >= start and (not samples or samples[0].t > self.started):
            samples.insert(0, Sample(self.started, {}, {}))  # nothing was counted before the start
        if not samples or now.t > samples[-1].t:
            samples.append(now)
        return list(pairwise(samples))

    def _gather(self, channel: Channel[_T], own: Callable[[], _T]) -> list[object]:
        """What every worker shared on ``channel`` (only this one's when reading the others fails):
        JSON read back from the other workers, so each value is checked by whoever reads it."""
        try:
            return self.pipeline.gather(channel)
        except Exception:  # noqa: BLE001 - this worker's own values are shown instead
            log_internal_error(f"gathering {channel.name} from the workers")
            return [own()]

    def traces(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for worker in self._gather(SHARE_KEY, self.recent.snapshot):
            if isinstance(worker, list):
                result.extend(e for e in worker if isinstance(e, dict))
        return result

    def trace_details(self) -> list[dict[str, Any]]:
        """The kept span trees of every worker."""
        result: list[dict[str, Any]] = []
        for worker in self._gather(_trace_store.SHARE_KEY, self.details.snapshot):
            if isinstance(worker, list):
                result.extend(e for e in worker if isinstance(e, dict) and isinstance(e.get("trace_id"), str))
        return result

    def error_groups(self) -> list[dict[str, Any]]:
        """The error groups of every worker, merged."""
        return _errors.merge(self._gather(_errors.SHARE_KEY, self.errors.snapshot), self.clock())


def _setup(settings: Settings, pipeline: Pipeline) -> None:
    """Per pipeline (also in each forked worker): span processor, shared traces, background jobs."""
    state = AnalyticsState(pipeline, settings)
    keep(pipeline, state)
    pipeline.tracer_provider.add_span_processor(state.request_spans)  # recent, details, users, clients
    pipeline.share(SHARE_KEY, state.recent.snapshot)
    if settings.analytics_trace_details > 0:
        pipeline.share(_trace_store.SHARE_KEY, state.details.snapshot)
        pipeline.share(_errors.SHARE_KEY, state.errors.snapshot)
    pipeline.scheduler.every(SAMPLE_INTERVAL_S, state.sample, "analytics sample")
    state.profiling.start(pipeline)
    state.identities.attach(pipeline)
    _insights.setup(state, pipeline)
    if state.history is not None:
        pipeline.scheduler.every(HISTORY_INTERVAL_S, state.write_history, "analytics history write")
        pipeline.shutdown_hooks.append(_final_write(state))  # at shutdown, after the background jobs stopped


def _final_write(state: AnalyticsState) -> Callable[[], None]:
    """The last minute of history at shutdown."""

    def write() -> None:
        if state.pipeline.pid != os.getpid():
            return
        try:
            state.write_history()
        except Exception:  # noqa: BLE001 - shutdown goes on without the last minute
            log_internal_error("writing the analytics history at shutdown")

    return write


def install(
    monitor: Monitor, app: Flask, runtime: Runtime, extend: Callable[[Blueprint, Auth], None] | None = None
) -> Callable[[str], list[str]]:
    """Mount the analytics on ``app`` and hook the per-pipeline setup into ``runtime``; returns the
    function that lists the URLs they serve under a base URL (:meth:`Monitor.describe_urls`).

    ``extend`` adds routes to the blueprint before it is registered (the alerts' endpoints: the
    alerts read the analytics, so the monitor wires them, not the analytics)."""
    import functools

    from .blueprint import create_blueprint

    settings = monitor.settings
    validate_settings(settings)
    auth = Auth(settings, resolve_secret_key(settings, app))
    blueprint = create_blueprint(monitor, settings, auth)
    if extend is not None:
        extend(blueprint, auth)
    app.register_blueprint(blueprint)
    runtime.setup_hooks.append(functools.partial(_setup, settings))
    app.extensions["otel_monitor.analytics"] = auth
    auth.log_startup()
    if auth.generated_token:
        from .login_notice import log_login_url_at_first_request

        log_login_url_at_first_request(app, auth)
    prefix = settings.analytics_prefix.rstrip("/")

    def describe_urls(base: str) -> list[str]:
        # A generated token is shown nowhere else: every URL that needs it carries it.
        query = f"?token={auth.token}" if auth.generated_token and auth.token else ""
        health_query = "" if settings.analytics_public_health else query
        return [
            f"analytics:  {base}{prefix}/performance{query}",
            f"health:     {base}{prefix}/health{health_query}",
            f"dashboard:  {base}{prefix}/{query}",
        ]

    return describe_urls
