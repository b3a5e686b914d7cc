"""Delta temporality for OTLP push, from the one cumulative reader.

Every consumer reads the same cumulative collection (one aggregation per measurement). Backends
that want deltas (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta``) get the
difference between this export and the previous one for counters and histograms, as the
specification's ``delta`` preference asks; up/down counters and gauges stay as they are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, MetricsData, Sum


class DeltaConverter:
    def __init__(self) -> None:
        #: (metric name, attribute key) -> (time_unix_nano, cumulative point)
        self._previous: dict[tuple[str, frozenset[tuple[str, Any]]], tuple[int, Any]] = {}

    def convert(self, data: MetricsData) -> MetricsData:
        resource_metrics = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                scopes.append(replace(sm, metrics=[self._metric(m) for m in sm.metrics]))
            resource_metrics.append(replace(rm, scope_metrics=scopes))
        return MetricsData(resource_metrics=resource_metrics)

    def _metric(self, metric: Any) -> Any:
        data = metric.data
        if isinstance(data, Sum) and data.is_monotonic:
            points = [self._delta(metric.name, p, _sum_delta) for p in data.data_points]
        elif isinstance(data, Histogram):
            points = [self._delta(metric.name, p, _histogram_delta) for p in data.data_points]
        else:
            return metric
        return replace(
            metric, data=replace(data, data_points=points, aggregation_temporality=AggregationTemporality.DELTA)
        )

    def _delta(self, name: str, point: Any, subtract: Any) -> Any:
        key = (name, frozenset((point.attributes or {}).items()))
        previous = self._previous.get(key)
        self._previous[key] = (point.time_unix_nano, point)
        if previous is None or previous[1].start_time_unix_nano != point.start_time_unix_nano:
            return point  # first export of this series (or it restarted): all of it is new
        return subtract(point, previous[1], previous[0])


def _sum_delta(point: Any, previous: Any, since: int) -> Any:
    return replace(point, value=point.value - previous.value, start_time_unix_nano=since)


def _histogram_delta(point: Any, previous: Any, since: int) -> Any:
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
