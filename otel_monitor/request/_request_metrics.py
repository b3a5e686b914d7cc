"""The three request histograms, aggregated in one step per request.

``http.server.request.duration``, ``http.server.request.body.size`` and
``http.server.response.body.size`` share their attributes, so one request updates one series
object under one lock: a bisect and a few additions. Through the SDK's instruments the same work
was three measurements, each copying, sorting and hashing the attributes and allocating a
measurement (about a quarter of our per-request cost). The reader adds these points to every
collection (:meth:`collect`), so ``/metrics``, OTLP, the analytics and the worker merge see
ordinary OpenTelemetry histograms with the semantic-convention names, units and attributes.

Each bucket of the duration histogram keeps the last sampled request as an exemplar (trace and
span id), as the SDK's aligned-histogram reservoir does: ``/metrics`` shows them in OpenMetrics.
``OTEL_METRICS_EXEMPLAR_FILTER`` is honoured: ``always_off`` keeps none, ``always_on`` keeps
unsampled requests too.
With a push exporter the body-size histograms keep exemplars too. The body-size histograms are
recorded only with ``metrics_body_size`` (the semantic conventions mark them not yet stable).
"""

from __future__ import annotations

import json
import threading
import time
from bisect import bisect_left
from typing import Any

from opentelemetry.sdk.metrics._internal.exemplar import Exemplar
from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, HistogramDataPoint, Metric
from opentelemetry.trace import SpanContext

#: distinct attribute sets kept; more (a pathological app) are folded into one overflow series
MAX_SERIES = 4096
_OVERFLOW_KEY = ("otel.metric.overflow",)
#: a series: (method, scheme, route or None, status code or None, error type or None)
SeriesKey = tuple[str, str, str | None, int | None, str | None]
#: a series' attributes, as the SDK's data points and the worker files carry them
_Attributes = dict[str, str | int | bool]

_INSTRUMENTS = (
    ("http.server.request.duration", "s", "Duration of HTTP server requests."),
    ("http.server.request.body.size", "By", "Size of HTTP server request bodies."),
    ("http.server.response.body.size", "By", "Size of HTTP server response bodies."),
)


class _Hist:
    __slots__ = ("counts", "count", "sum", "min", "max", "exemplars", "built", "encoded", "point", "index")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        #: bucket -> (value, time ns, span context) of the last sampled measurement in it
        self.exemplars: dict[int, tuple[float, int, SpanContext]] | None = None
        #: the exemplars as SDK objects, as the last collection built them (None: to be built)
        self.built: tuple[Exemplar, ...] | None = None
        #: the point's JSON text as the last worker publish wrote it (None: changed since)
        self.encoded: str | None = None
        #: the point as the last as_entries made it: the same object while ``count`` is the same
        self.point: dict[str, Any] | None = None
        #: its place in its histogram's list of points (as_entries); -1: not there yet
        self.index = -1


class _Series:
    __slots__ = ("attributes", "hists")

    def __init__(self, attributes: _Attributes, sizes: tuple[int, int, int]) -> None:
        self.attributes = attributes
        self.hists = (_Hist(sizes[0]), _Hist(sizes[1]), _Hist(sizes[2]))


class RequestMetrics:
    def __init__(
        self,
        duration_bounds: tuple[float, ...],
        size_bounds: tuple[float, ...],
        all_exemplars: bool = False,
        body_sizes: bool = False,
        exemplar_filter: str = "trace_based",
    ) -> None:
        self._bounds = (duration_bounds, size_bounds, size_bounds)
        self._sizes = (len(duration_bounds) + 1, len(size_bounds) + 1, len(size_bounds) + 1)
        self._series: dict[SeriesKey | tuple[str], _Series] = {}
        self._lock = threading.Lock()
        #: how many of the three histograms keep exemplars (the duration one always)
        self._exemplar_upto = 0 if exemplar_filter == "always_off" else 3 if all_exemplars else 1
        #: OTEL_METRICS_EXEMPLAR_FILTER=always_on: unsampled requests' measurements are exemplars too
        self._always_on = exemplar_filter == "always_on"
        self._recorded = 3 if body_sizes else 1
        #: requests recorded (under the lock): as_entries' cache is valid while it is unchanged
        self._changes = 0
        self._entries: tuple[int, str, str | None, list[dict[str, Any]]] | None = None
        #: series recorded since as_entries last brought the lists below up to date (a dict: in order)
        self._dirty: dict[_Series, None] = {}
        #: per histogram, its points in the worker-file format and the histograms they are of, in
        #: the order they first had a measurement (a series keeps its place: the publish's log
        #: lines name points by place)
        self._points: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]] = ([], [], [])
        self._hists: tuple[list[_Hist], list[_Hist], list[_Hist]] = ([], [], [])
        #: series as_entries looked at so far (tests read it: only those recorded since its last call)
        self.series_visited = 0
        self._start = time.time_ns()

    def record(
        self,
        key: SeriesKey,
        duration: float,
        request_size: int | None,
        response_size: int | None,
        span_context: SpanContext | None = None,
        sampled: bool | None = None,
    ) -> None:
        """``key`` is (method, scheme, route or None, status code or None, error type or None);
        ``sampled``: the span context's sampled flag, when the caller knows it (None: read it)."""
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        exemplar = None
        if span_context is not None and self._exemplar_upto:
            if sampled is None:
                sampled = span_context.trace_flags.sampled
            if sampled or (self._always_on and span_context.is_valid):
                exemplar = span_context
        if self._recorded == 1 and exemplar is not None:
            # The usual request: the duration histogram only, with its exemplar (as the loop below).
            at = time.time_ns()
            hist = series.hists[0]
            bucket = bisect_left(self._bounds[0], duration)
            with self._lock:
                self._changes += 1
                self._dirty[series] = None
                hist.counts[bucket] += 1
                hist.count += 1
                hist.encoded = None
                hist.sum += duration
                if duration < hist.min:
                    hist.min = duration
                if duration > hist.max:
                    hist.max = duration
                exemplars = hist.exemplars
                if exemplars is None:
                    exemplars = hist.exemplars = {}
                exemplars[bucket] = (duration, at, exemplar)
                hist.built = None
            return
        at = time.time_ns() if exemplar is not None else 0
        values = (duration, request_size, response_size)
        with self._lock:
            self._changes += 1
            self._dirty[series] = None
            for i in range(self._recorded):
                value = values[i]
                if value is None:
                    continue
                hist = series.hists[i]
                bucket = bisect_left(self._bounds[i], value)
                hist.counts[bucket] += 1
                hist.count += 1
                hist.encoded = None
                hist.sum += value
                if value < hist.min:
                    hist.min = value
                if value > hist.max:
                    hist.max = value
                if exemplar is not None and i < self._exemplar_upto:
                    if hist.exemplars is None:
                        hist.exemplars = {}
                    hist.exemplars[bucket] = (value, at, exemplar)
                    hist.built = None

    def _new_series(self, key: SeriesKey) -> _Series:
        method, scheme, route, status, error = key
        attributes: _Attributes = {"http.request.method": method, "url.scheme": scheme}
        if route is not None:
            attributes["http.route"] = route
        if status is not None:
            attributes["http.response.status_code"] = status
        if error is not None:
            attributes["error.type"] = error
        kept: SeriesKey | tuple[str] = key
        with self._lock:
            series = self._series.get(kept)
            if series is None:
                if len(self._series) >= MAX_SERIES:
                    kept, attributes = _OVERFLOW_KEY, {"otel.metric.overflow": True}
                    series = self._series.get(kept)
                if series is None:
                    series = _Series(attributes, self._sizes)
                    self._series[kept] = series
        return series

    def collect(self) -> list[Metric]:
        """The three histograms as SDK ``Metric`` objects (cumulative since start)."""
        now = time.time_ns()
        points: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        with self._lock:
            for series in self._series.values():
                for i, hist in enumerate(series.hists):
                    if hist.count == 0:
                        continue
                    points[i].append(
                        HistogramDataPoint(
                            attributes=series.attributes,
                            start_time_unix_nano=self._start,
                            time_unix_nano=now,
                            count=hist.count,
                            sum=hist.sum,
                            bucket_counts=list(hist.counts),
                            explicit_bounds=list(self._bounds[i]),
                            min=hist.min,
                            max=hist.max,
                            exemplars=_exemplars(hist),
                        )
                    )
        return [
            Metric(
                name=name,
                description=description,
                unit=unit,
                data=Histogram(data_points=points[i], aggregation_temporality=AggregationTemporality.CUMULATIVE),
            )
            for i, (name, unit, description) in enumerate(_INSTRUMENTS)
            if points[i]
        ]

    def _point(self, series: _Series, hist: _Hist) -> dict[str, Any]:
        """One series' histogram in the worker-file format (call under the lock); the same object
        while the series did not change (the group's merge tells unchanged series by identity)."""
        made = hist.point
        if made is not None and made["count"] == hist.count:
            return made
        point = {
            "a": series.attributes,
            "start": self._start,
            "count": hist.count,
            "sum": hist.sum,
            "min": hist.min,
            "max": hist.max,
            "buckets": list(hist.counts),
        }
        if hist.exemplars:
            point["ex"] = [
                [value, at, context.trace_id, context.span_id] for value, at, context in hist.exemplars.values()
            ]
        hist.point = point
        return point

    def _entry(self, i: int, scope: str, version: str | None, points: list[Any]) -> dict[str, Any]:
        name, unit, description = _INSTRUMENTS[i]
        return {
            "scope": scope,
            "version": version,
            "name": name,
            "description": description,
            "unit": unit,
            "kind": "histogram",
            "bounds": list(self._bounds[i]),
            "points": points,
        }

    def _update(self) -> None:
        """Bring the per-histogram point lists up to date with the series recorded since the last
        call (under the lock): the work is the series that changed, not all of them."""
        dirty, self._dirty = self._dirty, {}
        self.series_visited += len(dirty)
        for series in dirty:
            for i, hist in enumerate(series.hists):
                if not hist.count:
                    continue
                point = self._point(series, hist)
                if hist.index < 0:
                    hist.index = len(self._points[i])
                    self._points[i].append(point)
                    self._hists[i].append(hist)
                else:
                    self._points[i][hist.index] = point

    def as_entries(self, scope: str, version: str | None = None) -> list[dict[str, Any]]:
        """The histograms in the worker-file format of :func:`otel_monitor.metrics.multiprocess.serialise`,
        without building SDK objects first (this runs for every publish of a pre-fork worker).

        Only the series recorded since the last call are made again; every other point is the
        same object as in the last call, at the same place, and while no request was recorded the
        same entry objects are returned (callers must not modify them): the publish's diff and the
        group merge then know, by identity, what did not change here."""
        with self._lock:
            cached = self._entries
            if cached is not None and cached[:3] == (self._changes, scope, version):
                return cached[3]
            self._update()
            entries = [self._entry(i, scope, version, list(self._points[i])) for i in range(3) if self._points[i]]
            self._entries = (self._changes, scope, version, entries)
        return entries

    def entries_json(self, scope: str, version: str | None = None) -> str:
        """:meth:`as_entries` as JSON text, without the list's brackets ("" when empty).

        A pre-fork worker publishes its file every few seconds while it serves requests; with
        thousands of series most of them did not change since the last publish, so each series'
        point is encoded again only after a request changed it (:meth:`record` forgets the text).
        """
        parts: tuple[list[str], list[str], list[str]] = ([], [], [])
        dumps = json.dumps
        with self._lock:
            self._update()
            for i, hists in enumerate(self._hists):
                for hist in hists:
                    text = hist.encoded
                    if text is None:
                        text = hist.encoded = dumps(hist.point, separators=(",", ":"), default=str)
                    parts[i].append(text)
        entries = []
        for i in range(3):
            if parts[i]:
                head = dumps(self._entry(i, scope, version, []), separators=(",", ":"))
                entries.append(head[: -len("[]}")] + "[" + ",".join(parts[i]) + "]}")
        return ",".join(entries)


def _exemplars(hist: _Hist) -> tuple[Exemplar, ...]:
    """The histogram's exemplars as SDK objects, built again only after a request replaced one.

    A collection used to build one ``Exemplar`` per kept bucket of every series (a sixth of a
    scrape, and the text format never prints them); series without new requests reuse the tuple
    of their last collection (the objects are immutable). Called under the series lock.
    """
    if not hist.exemplars:
        return ()
    if hist.built is None:
        hist.built = tuple(
            Exemplar(
                filtered_attributes=None,
                value=value,
                time_unix_nano=at,
                span_id=context.span_id,
                trace_id=context.trace_id,
            )
            for value, at, context in hist.exemplars.values()
        )
    return hist.built
