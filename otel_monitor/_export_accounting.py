"""Span export accounting: every span an exporter loses is counted with its reason, and a
collector's ``Retry-After`` holds back the next export.

:func:`account` wraps a :class:`SpanExporter` (the batch processor's). It counts each batch in
``otel.sdk.exporter.span.exported`` -- the SDK's own self-metric (semantic conventions
``otel.sdk.exporter.*``): ``error.type`` is absent for exported spans, else the HTTP status code
(``"503"``), the exception's class (``"ConnectionError"``), ``"retry_after"`` (dropped unsent,
the collector asked us to wait longer than the export timeout) or ``"shutdown"``. The SDK's
exporters count nothing unless given a meter provider and an environment variable at
construction, and they never count a batch they were not called for.

``Retry-After`` beyond the export timeout: the SDK gives up that batch and posts the next one a
second later, so an overloaded collector is hit ~once a second. We remember the time the
collector asked for: a batch due before it waits for it when that fits in the export timeout,
otherwise it is dropped unsent (counted). The header is read from the OTLP/HTTP client's
responses (a private SDK attribute, used only when present).

Failures are logged rate-limited (one line per reason per :data:`~otel_monitor._safe_log.INTERVAL`),
and so are the SDK exporters' own per-batch error lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._metrics_data import iter_points
from ._safe_log import INTERVAL, neutralise, should_log

__all__ = ["account", "count_unexported_at_shutdown", "AccountedSpanExporter", "EXPORTED_METRIC", "lost_spans"]

_logger = logging.getLogger("otel_monitor")
EXPORTED_METRIC = "otel.sdk.exporter.span.exported"
PROCESSED_METRIC = "otel.sdk.processor.span.processed"
#: the SDK exporters' loggers whose per-batch error lines we rate-limit
_SDK_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)
_DEFAULT_TIMEOUT_S = 10.0
_filter_lock = threading.Lock()


class _RateLimited(logging.Filter):
    """Lets one record per message template through per INTERVAL (the SDK logs every batch)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        return should_log(f"sdk export log: {record.name}: {record.msg}")


def _rate_limit_sdk_logs() -> None:
    with _filter_lock:
        for name in _SDK_EXPORT_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _RateLimited) for f in logger.filters):
                logger.addFilter(_RateLimited())


def _component_type(exporter: SpanExporter) -> str:
    modules = " ".join(cls.__module__ for cls in type(exporter).__mro__)  # our fast exporters subclass these
    if "otlp.proto.http" in modules:
        return "otlp_http_span_exporter"
    if "otlp.proto.grpc" in modules:
        return "otlp_grpc_span_exporter"
    return type(exporter).__name__


def _retry_after_s(result: Any) -> float | None:
    try:
        from opentelemetry.exporter.otlp.common.http import _extract_retry_after

        return _extract_retry_after(result)
    except Exception:  # noqa: BLE001 - an SDK without the helper, or a result without headers
        return None


class AccountedSpanExporter(SpanExporter):
    """A span exporter that counts what it exports and loses, and honours ``Retry-After``."""

    _instances = 0
    _instances_lock = threading.Lock()

    def __init__(self, exporter: SpanExporter, meter_provider: Any, timeout_s: float | None = None) -> None:
        self.exporter = exporter
        timeout = getattr(exporter, "_timeout", None) or getattr(getattr(exporter, "_client", None), "_timeout", None)
        self.timeout_s = float(timeout_s if timeout_s is not None else timeout or _DEFAULT_TIMEOUT_S)
        kind = _component_type(exporter)
        with AccountedSpanExporter._instances_lock:
            number = AccountedSpanExporter._instances
            AccountedSpanExporter._instances += 1
        self._attributes = {"otel.component.type": kind, "otel.component.name": f"{kind}/{number}"}
        meter = meter_provider.get_meter("otel_monitor.export")
        self._exported = meter.create_counter(
            EXPORTED_METRIC, unit="{span}", description="The number of spans for which the export has finished"
        )
        self._not_before = 0.0  # monotonic time the collector asked us to wait for
        self._last_status: int | None = None
        self._stopped = threading.Event()
        self._pending: Callable[[], int] | None = None  # spans queued in the batch processor
        self._watch_responses()
        _rate_limit_sdk_logs()

    def _watch_responses(self) -> None:
        """Read status and Retry-After of the OTLP/HTTP client's responses (the result hides them)."""
        client = getattr(self.exporter, "_client", None)
        submit = getattr(client, "_submit", None)
        if submit is None:
            return

        def watched(data: bytes, timeout: float) -> Any:
            result = submit(data, timeout)
            try:
                self._last_status = getattr(result, "status_code", None)
                wait = _retry_after_s(result) if self._last_status in (429, 503) else None
                if wait is not None and wait > 0:
                    self._not_before = max(self._not_before, time.monotonic() + wait)
            except Exception:  # noqa: BLE001 - accounting never breaks the export
                pass
            return result

        try:
            setattr(client, "_submit", watched)  # noqa: B010 - the client is untyped SDK internals
        except Exception:  # noqa: BLE001 - unknown SDK internals: accounting is optional
            pass

    def _count(self, spans: int, error: str | None) -> None:
        if spans <= 0:
            return
        attributes = dict(self._attributes)
        if error:
            attributes["error.type"] = error
        self._exported.add(spans, attributes)

    def _lost(self, spans: int, reason: str, detail: str = "") -> None:
        self._count(spans, reason)
        if should_log(f"span export lost: {reason}"):
            _logger.warning(
                "otel_monitor: %d span(s) not exported (%s%s); counted in %s{error.type=%r} "
                "(further losses of this kind are not logged for %ds)",
                spans,
                neutralise(reason),
                f": {neutralise(detail)}" if detail else "",
                EXPORTED_METRIC,
                reason,
                int(INTERVAL),
            )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        count = len(spans)
        if self._stopped.is_set():
            self._lost(count, "shutdown")
            return SpanExportResult.FAILURE
        wait = self._not_before - time.monotonic()
        if wait > 0:
            if wait > self.timeout_s:
                self._lost(count, "retry_after", f"the collector asked to wait {wait:.0f} s")
                return SpanExportResult.FAILURE
            if self._stopped.wait(wait):
                self._lost(count, "shutdown")
                return SpanExportResult.FAILURE
        self._last_status = None
        try:
            result = self.exporter.export(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter that raises loses the batch, nothing more
            self._lost(count, type(exc).__qualname__, str(exc))
            return SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._count(count, None)
        else:
            status = self._last_status
            self._lost(count, str(status) if status and status >= 400 else "export_failed")
        return result

    def shutdown(self) -> None:
        self._stopped.set()
        # The batch processor shuts its exporter down once its flush time is up; what is still
        # queued then is never exported.
        try:
            pending = self._pending() if self._pending is not None else 0
        except Exception:  # noqa: BLE001 - a failing count of pending spans reads as none
            pending = 0
        if pending:
            self._lost(pending, "shutdown", "still queued when the shutdown timeout ended")
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def account(exporter: SpanExporter, meter_provider: Any) -> SpanExporter:
    """``exporter`` with its exported and lost spans counted on ``meter_provider``'s meter."""
    return AccountedSpanExporter(exporter, meter_provider)


def count_unexported_at_shutdown(processor: Any) -> Any:
    """Let the accounted exporter of ``processor`` (a BatchSpanProcessor) count the spans still
    queued when it is shut down. Returns ``processor``; a processor of another shape is left as is."""
    inner = getattr(processor, "_batch_processor", None)
    queue = getattr(inner, "_queue", None)
    exporter = getattr(inner, "_exporter", None)
    if isinstance(exporter, AccountedSpanExporter) and queue is not None:
        exporter._pending = lambda: len(queue)
    return processor


def lost_spans(data: Any) -> dict[str, int]:
    """Spans lost so far, by reason: the processor's drops and the exporters' failures in ``data``."""
    lost: dict[str, int] = {}
    for _, point in iter_points(data, EXPORTED_METRIC, PROCESSED_METRIC):
        reason = point.attributes.get("error.type")
        if reason and point.value:
            lost[str(reason)] = lost.get(str(reason), 0) + int(point.value)
    return lost
