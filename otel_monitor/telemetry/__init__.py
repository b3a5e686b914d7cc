"""The OpenTelemetry set-up: one pipeline per process, its providers and exporters.

Owns the pipeline (:mod:`.pipeline`: resource, tracer / meter / logger providers, reader, view,
exporters), its life across forks and exit (:mod:`._runtime`, :mod:`._background`), the fork-aware
global providers (:mod:`._providers`), the logs signal (:mod:`._logs`, :mod:`._log_redaction`),
export accounting (:mod:`._export_accounting`), trace and span ids (:mod:`._ids`) and the app's
version (:mod:`._version`).

May import: :mod:`otel_monitor.metrics`, the pieces of :mod:`otel_monitor.request` the pipeline
builds (propagators, request histograms), :mod:`otel_monitor.settings`, :mod:`otel_monitor.prefork`,
:mod:`otel_monitor._safe_log`, :mod:`otel_monitor._redaction`. Never the analytics or the alerts.
"""
