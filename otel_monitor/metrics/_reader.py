"""One cumulative pull reader per process: every consumer reads its snapshots.

A plain SDK ``MetricReader`` (``collect`` stays the SDK's own, ``@final`` method): a snapshot asks
the SDK to collect and keeps what ``_receive_metrics`` hands over, plus the request histograms
aggregated outside the SDK (see :mod:`otel_monitor.request._request_metrics`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = ["MonitorReader"]

_CUMULATIVE: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
}


class MonitorReader(MetricReader):
    """Cumulative snapshots of this process's metrics (never merged with other workers)."""

    def __init__(
        self, resource: Resource | None = None, extra_metrics: Callable[[], list[Metric]] = list, extra_scope: str = ""
    ) -> None:
        super().__init__(preferred_temporality=_CUMULATIVE)
        # One collection at a time: the SDK hands its result to _receive_metrics, and two threads
        # collecting at once would swap each other's results.
        self._lock = threading.Lock()
        self._captured: MetricsData | None = None
        self._resource = resource or Resource({})
        self._extra_wanted = True
        #: called at the start of every snapshot (custom gauges start their callbacks together)
        self.before_collect: list[Callable[[], None]] = []
        #: metrics aggregated outside the SDK's instruments, added under the scope ``extra_scope``
        self.extra_metrics = extra_metrics
        self.extra_scope = extra_scope

    def snapshot(self, timeout_millis: float = 10_000, extra: bool = True) -> MetricsData | None:
        """This process's cumulative metrics now; runs the observable callbacks.

        ``extra=False`` leaves out the metrics aggregated outside the SDK (the caller reads them itself).
        """
        with self._lock:
            self._captured = None
            self._extra_wanted = extra
            for start in list(self.before_collect):
                start()
            self.collect(timeout_millis=timeout_millis)
            data, self._captured = self._captured, None
        return data

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object) -> None:
        self._captured = self._with_extra(metrics_data) if self._extra_wanted else metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass

    def _with_extra(self, data: MetricsData | None) -> MetricsData | None:
        extra = self.extra_metrics()
        if not extra:
            return data
        if data is None or not data.resource_metrics:
            scope = ScopeMetrics(scope=InstrumentationScope(self.extra_scope), metrics=extra, schema_url="")
            return MetricsData(resource_metrics=[ResourceMetrics(self._resource, [scope], schema_url="")])
        (rm, *others) = data.resource_metrics
        scopes = list(rm.scope_metrics)
        for i, sm in enumerate(scopes):
            if sm.scope.name == self.extra_scope:
                scopes[i] = replace(sm, metrics=extra + list(sm.metrics))
                break
        else:
            scopes.insert(0, ScopeMetrics(scope=InstrumentationScope(self.extra_scope), metrics=extra, schema_url=""))
        return MetricsData(resource_metrics=[replace(rm, scope_metrics=scopes), *others])
