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

import threading
import time
from bisect import bisect_left
from typing import Any

from opentelemetry.sdk.metrics._internal.exemplar import Exemplar
from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, HistogramDataPoint, Metric

#: distinct attribute sets kept; more (a pathological app) are folded into one overflow series
MAX_SERIES = 4096
_OVERFLOW_KEY = ("otel.metric.overflow",)

_INSTRUMENTS = (
    ("http.server.request.duration", "s", "Duration of HTTP server requests."),
    ("http.server.request.body.size", "By", "Size of HTTP server request bodies."),
    ("http.server.response.body.size", "By", "Size of HTTP server response bodies."),
)


class _Hist:
    __slots__ = ("counts", "count", "sum", "min", "max", "exemplars")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.exemplars: dict[int, tuple] | None = None


class _Series:
    __slots__ = ("attributes", "hists")

    def __init__(self, attributes: dict, sizes: tuple[int, int, int]) -> None:
        self.attributes = attributes
        self.hists = (_Hist(sizes[0]), _Hist(sizes[1]), _Hist(sizes[2]))


class RequestMetrics:
    def __init__(
        self,
        duration_bounds: tuple,
        size_bounds: tuple,
        all_exemplars: bool = False,
        body_sizes: bool = False,
        exemplar_filter: str = "trace_based",
    ) -> None:
        self._bounds = (duration_bounds, size_bounds, size_bounds)
        self._sizes = (len(duration_bounds) + 1, len(size_bounds) + 1, len(size_bounds) + 1)
        self._series: dict[tuple, _Series] = {}
        self._lock = threading.Lock()
        #: how many of the three histograms keep exemplars (the duration one always)
        self._exemplar_upto = 0 if exemplar_filter == "always_off" else 3 if all_exemplars else 1
        #: OTEL_METRICS_EXEMPLAR_FILTER=always_on: unsampled requests' measurements are exemplars too
        self._always_on = exemplar_filter == "always_on"
        self._recorded = 3 if body_sizes else 1
        self._start = time.time_ns()

    def record(
        self, key: tuple, duration: float, request_size: int | None, response_size: int | None, span_context: Any = None
    ) -> None:
        """``key`` is (method, scheme, route or None, status code or None, error type or None)."""
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        exemplar = (
            span_context
            if span_context is not None
            and self._exemplar_upto
            and (span_context.trace_flags.sampled or (self._always_on and span_context.is_valid))
            else None
        )
        at = time.time_ns() if exemplar is not None else 0
        values = (duration, request_size, response_size)
        with self._lock:
            for i in range(self._recorded):
                value = values[i]
                if value is None:
                    continue
                hist = series.hists[i]
                bucket = bisect_left(self._bounds[i], value)
                hist.counts[bucket] += 1
                hist.count += 1
                hist.sum += value
                if value < hist.min:
                    hist.min = value
                if value > hist.max:
                    hist.max = value
                if exemplar is not None and i < self._exemplar_upto:
                    if hist.exemplars is None:
                        hist.exemplars = {}
                    hist.exemplars[bucket] = (value, at, exemplar)

    def _new_series(self, key: tuple) -> _Series:
        method, scheme, route, status, error = key
        attributes: dict[str, Any] = {"http.request.method": method, "url.scheme": scheme}
        if route is not None:
            attributes["http.route"] = route
        if status is not None:
            attributes["http.response.status_code"] = status
        if error is not None:
            attributes["error.type"] = error
        with self._lock:
            series = self._series.get(key)
            if series is None:
                if len(self._series) >= MAX_SERIES:
                    key, attributes = _OVERFLOW_KEY, {"otel.metric.overflow": True}
                    series = self._series.get(key)
                if series is None:
                    series = _Series(attributes, self._sizes)
                    self._series[key] = series
        return series

    def collect(self) -> list[Metric]:
        """The three histograms as SDK ``Metric`` objects (cumulative since start)."""
        now = time.time_ns()
        points: tuple[list, list, list] = ([], [], [])
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

    def as_entries(self, scope: str, version: str | None = None) -> list[dict]:
        """The histograms in the worker-file format of :func:`otel_monitor.metrics.multiprocess.serialise`,
        without building SDK objects first (this runs for every publish of a pre-fork worker)."""
        points: tuple[list, list, list] = ([], [], [])
        with self._lock:
            for series in self._series.values():
                for i, hist in enumerate(series.hists):
                    if hist.count == 0:
                        continue
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
                            [value, at, context.trace_id, context.span_id]
                            for value, at, context in hist.exemplars.values()
                        ]
                    points[i].append(point)
        return [
            {
                "scope": scope,
                "version": version,
                "name": name,
                "description": description,
                "unit": unit,
                "kind": "histogram",
                "bounds": list(self._bounds[i]),
                "points": points[i],
            }
            for i, (name, unit, description) in enumerate(_INSTRUMENTS)
            if points[i]
        ]


def _exemplars(hist: _Hist) -> list:
    if not hist.exemplars:
        return []
    return [
        Exemplar(
            filtered_attributes=None, value=value, time_unix_nano=at, span_id=context.span_id, trace_id=context.trace_id
        )
        for value, at, context in hist.exemplars.values()
    ]
