"""Delta temporality for OTLP push, from the one cumulative reader.

Every consumer reads the same cumulative collection (one aggregation per measurement). Backends
that want deltas (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta``) get the
difference between this export and the previous one for counters and histograms, as the
specification's ``delta`` preference asks; up/down counters and gauges stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Generic, TypeVar

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.util.types import AttributeValue

#: the cumulative points a delta is taken of: a monotonic sum's or a histogram's
_Point = TypeVar("_Point", NumberDataPoint, HistogramDataPoint)
#: a series: (metric name, attribute key)
_Series = tuple[str, frozenset[tuple[str, AttributeValue]]]


class _Deltas(Generic[_Point]):
    """The last exported cumulative point of each series of one kind, and how to subtract it."""

    def __init__(self, subtract: Callable[[_Point, _Point, int], _Point]) -> None:
        self._subtract: Callable[[_Point, _Point, int], _Point] = subtract
        #: series -> (time_unix_nano, cumulative point)
        self._previous: dict[_Series, tuple[int, _Point]] = {}

    def delta(self, name: str, point: _Point) -> _Point:
        key = (name, frozenset((point.attributes or {}).items()))
        previous = self._previous.get(key)
        self._previous[key] = (point.time_unix_nano, point)
        if previous is None or previous[1].start_time_unix_nano != point.start_time_unix_nano:
            return point  # first export of this series (or it restarted): all of it is new
        return self._subtract(point, previous[1], previous[0])


class DeltaConverter:
    def __init__(self) -> None:
        # One table per kind: a sum and a histogram of the same name (two scopes) each keep their own.
        self._sums = _Deltas(_sum_delta)
        self._histograms = _Deltas(_histogram_delta)

    def convert(self, data: MetricsData) -> MetricsData:
        resource_metrics = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                scopes.append(replace(sm, metrics=[self._metric(m) for m in sm.metrics]))
            resource_metrics.append(replace(rm, scope_metrics=scopes))
        return MetricsData(resource_metrics=resource_metrics)

    def _metric(self, metric: Metric) -> Metric:
        data = metric.data
        if isinstance(data, Sum) and data.is_monotonic:
            sums = [self._sums.delta(metric.name, p) for p in data.data_points]
            data = replace(data, data_points=sums, aggregation_temporality=AggregationTemporality.DELTA)
        elif isinstance(data, Histogram):
            histograms = [self._histograms.delta(metric.name, p) for p in data.data_points]
            data = replace(data, data_points=histograms, aggregation_temporality=AggregationTemporality.DELTA)
        else:
            return metric
        return replace(metric, data=data)


def _sum_delta(point: NumberDataPoint, previous: NumberDataPoint, since: int) -> NumberDataPoint:
    return replace(point, value=point.value - previous.value, start_time_unix_nano=since)


def _histogram_delta(point: HistogramDataPoint, previous: HistogramDataPoint, since: int) -> HistogramDataPoint:
    if list(point.explicit_bounds) != list(previous.explicit_bounds):
        return point
    # min/max of the interval alone are unknown from two cumulative points: keep the cumulative ones.
    return replace(
        point,
        count=point.count - previous.count,
        sum=point.sum - previous.sum,
        bucket_counts=[a - b for a, b in zip(point.bucket_counts, previous.bucket_counts, strict=True)],
        start_time_unix_nano=since,
    )
