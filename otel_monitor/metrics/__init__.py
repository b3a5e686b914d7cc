"""Metrics as they are read: views, the Prometheus exposition, the multi-process merge.

Owns the cumulative pull reader (:mod:`._reader`), the one walk over a collection
(:mod:`._metrics_data`), the :class:`~.metrics_view.MetricsView` interface and its one-process,
worker and master views (:mod:`.metrics_view`, :mod:`.multiprocess`), prometheus_client's default
registry across workers (:mod:`._default_registry`), the text / OpenMetrics writer and ``/metrics``
(:mod:`.exposition`, :mod:`._metrics_route`, :mod:`._metrics_server`), OTLP delta temporality
(:mod:`._temporality`), the psutil gauges (:mod:`.system`) and custom metric handles
(:mod:`.instruments`).

May import: :mod:`otel_monitor.settings`, :mod:`otel_monitor.prefork`, :mod:`otel_monitor._safe_log`
and the OpenTelemetry SDK. Never the request path, the telemetry set-up or the analytics.
"""
