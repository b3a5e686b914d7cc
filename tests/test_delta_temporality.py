"""Delta temporality (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta``): what one export
pushes is the difference since the previous export, series by series."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_monitor.metrics._temporality import DeltaConverter

START = 1_000
ATTRIBUTES = {"queue": "mail"}


def _sum(value: int, now: int) -> Metric:
    point = NumberDataPoint(ATTRIBUTES, START, now, value)
    return Metric("jobs", "", "1", Sum([point], AggregationTemporality.CUMULATIVE, is_monotonic=True))


def _histogram(count: int, total: float, now: int) -> Metric:
    point = HistogramDataPoint(ATTRIBUTES, START, now, count, total, [count, 0], (1.0,), 0.5, 0.5)
    return Metric("jobs", "", "s", Histogram([point], AggregationTemporality.CUMULATIVE))


def _collection(*scopes: list[Metric]) -> MetricsData:
    scope_metrics = [ScopeMetrics(InstrumentationScope(f"lib{i}"), metrics, "") for i, metrics in enumerate(scopes)]
    return MetricsData([ResourceMetrics(Resource({}), scope_metrics, "")])


def _points(data: MetricsData) -> list[object]:
    metrics = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    return [p for m in metrics for p in m.data.data_points]


def test_a_counter_and_a_histogram_of_the_same_name_in_two_scopes_each_push_their_own_difference():
    converter = DeltaConverter()
    converter.convert(_collection([_sum(5, 2_000)], [_histogram(3, 1.5, 2_000)]))
    later = converter.convert(_collection([_sum(7, 3_000)], [_histogram(4, 2.0, 3_000)]))
    counted, timed = _points(later)
    assert isinstance(counted, NumberDataPoint) and isinstance(timed, HistogramDataPoint)
    assert (counted.value, counted.start_time_unix_nano) == (2, 2_000)
    assert (timed.count, timed.sum, list(timed.bucket_counts), timed.start_time_unix_nano) == (1, 0.5, [1, 0], 2_000)
