"""The Prometheus side: one pull reader per process, its own registry, and the /metrics WSGI app.

The reader is the OpenTelemetry Prometheus exporter's ``PrometheusMetricReader`` with its own
``CollectorRegistry`` (two monitors in one process never collide), extended so that the same
cumulative collection also serves the analytics, the worker merge under pre-fork servers and
OTLP push: one aggregation per measurement on the request path, however many consumers.
"""

from __future__ import annotations

import hmac
import threading
from typing import Callable, Iterable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["MonitorReader", "metrics_wsgi_app", "PROMETHEUS_RENAMES", "for_prometheus"]

#: Semantic-convention names ending in ``.count`` that are not histograms: in the Prometheus
#: text format ``_count`` belongs to histograms and summaries (``promtool check metrics``
#: rejects it elsewhere), so these are exposed under the names Prometheus users know.
PROMETHEUS_RENAMES = {
    "process.thread.count": "process.threads",
    "process.unix.file_descriptor.count": "process.open_fds",
    "system.cpu.logical.count": "system.cpu.logical_cpus",
}


def for_prometheus(data: MetricsData) -> MetricsData:
    """Rename the metrics of :data:`PROMETHEUS_RENAMES`; everything else is passed through."""
    from dataclasses import replace

    resource_metrics = []
    for rm in data.resource_metrics:
        scopes = []
        for sm in rm.scope_metrics:
            metrics = [
                replace(m, name=PROMETHEUS_RENAMES[m.name]) if m.name in PROMETHEUS_RENAMES else m for m in sm.metrics
            ]
            scopes.append(replace(sm, metrics=metrics))
        resource_metrics.append(replace(rm, scope_metrics=scopes))
    return MetricsData(resource_metrics=resource_metrics)


class MonitorReader(PrometheusMetricReader):
    """A cumulative pull reader. ``snapshot()`` for our own consumers; scrapes go to the registry.

    ``transform`` turns this process's data into what ``/metrics`` shows (the merge of all
    workers under a pre-fork server; the identity otherwise).
    """

    def __init__(self, registry: CollectorRegistry, target_info: bool = True) -> None:
        # No otel_scope_* labels: a version label on every series would change every series'
        # identity at each upgrade (breaking rate() across it), and they triple the line length.
        super().__init__(disable_target_info=not target_info, registry=registry, scope_info_enabled=False)
        self._lock = threading.Lock()
        self._capturing = False
        self._captured: MetricsData | None = None
        self.transform: Callable[[MetricsData], MetricsData] = lambda data: data
        #: metrics aggregated outside the SDK's instruments (the request histograms), added to
        #: every collection under the scope named ``extra_scope``
        self.extra_metrics: Callable[[], list] = list
        self.extra_scope: str = ""

    def collect(self, timeout_millis: float = 10_000) -> None:  # the scrape path
        with self._lock:
            self._capturing = False
            super().collect(timeout_millis=timeout_millis)

    def snapshot(self, timeout_millis: float = 10_000) -> MetricsData | None:
        """This process's cumulative metrics now (not merged with other workers)."""
        with self._lock:
            self._capturing = True
            self._captured = None
            try:
                super().collect(timeout_millis=timeout_millis)
            finally:
                self._capturing = False
            return self._captured

    def _with_extra(self, data: MetricsData) -> MetricsData:
        extra = self.extra_metrics()
        if not extra:
            return data
        from dataclasses import replace

        (rm, *others) = data.resource_metrics
        scopes = list(rm.scope_metrics)
        for i, sm in enumerate(scopes):
            if sm.scope.name == self.extra_scope:
                scopes[i] = replace(sm, metrics=extra + list(sm.metrics))
                break
        else:
            from opentelemetry.sdk.metrics.export import ScopeMetrics
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope

            scopes.insert(0, ScopeMetrics(scope=InstrumentationScope(self.extra_scope), metrics=extra, schema_url=""))
        return MetricsData(resource_metrics=[replace(rm, scope_metrics=scopes), *others])

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs) -> None:
        if metrics_data is not None and metrics_data.resource_metrics:
            metrics_data = self._with_extra(metrics_data)
        if self._capturing:
            self._captured = metrics_data
        elif metrics_data is not None:
            super()._receive_metrics(for_prometheus(self.transform(metrics_data)), timeout_millis, **kwargs)


def metrics_wsgi_app(registry: CollectorRegistry, token: str | None = None) -> Callable:
    """A WSGI app serving ``registry`` in the Prometheus text format (OpenMetrics when asked).

    With ``token``, requests must carry ``Authorization: Bearer <token>`` (compared in constant
    time); others get 401.
    """
    expected = ("Bearer " + token).encode() if token else None

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if expected is not None:
            given = environ.get("HTTP_AUTHORIZATION", "").encode("utf-8", "surrogateescape")[:1024]
            if not hmac.compare_digest(given, expected):
                start_response(
                    "401 Unauthorized",
                    [
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("WWW-Authenticate", 'Bearer realm="metrics"'),
                        ("Cache-Control", "no-store"),
                    ],
                )
                return [b"metrics require a bearer token\n"]
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"method not allowed\n"]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        try:
            body = encoder(registry)
        except Exception:  # noqa: BLE001 - a broken callback must not take the endpoint down
            from ._safe_log import log_internal_error

            log_internal_error("collecting metrics for /metrics")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"metrics collection failed; see the application log\n"]
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
        start_response("200 OK", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app
