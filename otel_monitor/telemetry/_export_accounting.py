"""Export accounting: every span and log record an exporter loses is counted with its reason, a
collector's ``Retry-After`` holds back the next export, and each signal's last outcome is kept
for ``/health``.

:func:`account` wraps a :class:`SpanExporter` (the batch processor's), :func:`account_logs` a
``LogRecordExporter``. Each batch is counted in ``otel.sdk.exporter.span.exported`` /
``otel.sdk.exporter.log.exported`` -- the SDK's own self-metrics (semantic conventions
``otel.sdk.exporter.*``), on our meter (scope :data:`METER_SCOPE`): ``error.type`` is absent for
exported items, else the HTTP status code (``"503"``), the exception's class (``"ConnectionError"``,
``"ReadTimeout"`` -- an export the collector answered after the timeout counts lost once: the
exporter cannot know it arrived), ``"retry_after"`` (dropped unsent, the collector asked us to
wait longer than the export timeout) or ``"shutdown"``. The SDK's exporters count nothing unless
given a meter provider and an environment variable at construction; when that variable is set
they count the same batches again under the same names, so :func:`lost_spans` and
:func:`lost_logs` read only our scope. :func:`watch_metrics` records the metric pushes' outcomes
(nothing is lost: the next push carries the values again).

``Retry-After`` beyond the export timeout: the SDK gives up that batch and posts the next one a
second later, so an overloaded collector is hit ~once a second. We remember the time the
collector asked for: a batch due before it waits for it when that fits in the export timeout,
otherwise it is dropped unsent (counted). The header is read from the OTLP/HTTP client's
responses (a private SDK attribute, used only when present).

Failures are logged rate-limited (one line per reason per :data:`~otel_monitor._safe_log.INTERVAL`),
and so are the SDK exporters' own per-batch error lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._safe_log import INTERVAL, neutralise, should_log
from ..metrics._metrics_data import iter_scoped

__all__ = [
    "account",
    "account_logs",
    "watch_metrics",
    "count_unexported_at_shutdown",
    "AccountedSpanExporter",
    "AccountedLogExporter",
    "ExportStatus",
    "EXPORTED_METRIC",
    "LOG_EXPORTED_METRIC",
    "lost_spans",
    "lost_logs",
]

_logger = logging.getLogger("otel_monitor")
EXPORTED_METRIC = "otel.sdk.exporter.span.exported"
PROCESSED_METRIC = "otel.sdk.processor.span.processed"
LOG_EXPORTED_METRIC = "otel.sdk.exporter.log.exported"
LOG_PROCESSED_METRIC = "otel.sdk.processor.log.processed"
#: the meter our accounting counts on (the SDK's own exporter metrics use "opentelemetry-sdk")
METER_SCOPE = "otel_monitor.export"
#: the SDK exporters' loggers whose per-batch error lines we rate-limit
_SDK_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
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


def _component_type(exporter: object, signal: str) -> str:
    modules = " ".join(cls.__module__ for cls in type(exporter).__mro__)  # our fast exporters subclass these
    if "otlp.proto.http" in modules:
        return f"otlp_http_{signal}_exporter"
    if "otlp.proto.grpc" in modules:
        return f"otlp_grpc_{signal}_exporter"
    return type(exporter).__name__


def _retry_after_s(result: Any) -> float | None:
    try:
        from opentelemetry.exporter.otlp.common.http import _extract_retry_after

        return _extract_retry_after(result)
    except Exception:  # noqa: BLE001 - an SDK without the helper, or a result without headers
        return None


class ExportStatus:
    """How each signal's last export in this process ended, and when (what ``/health`` reports).

    One per pipeline, given to every accounted exporter; ``signal`` is ``traces``, ``metrics``
    or ``logs``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, str | None]] = {}

    def record(self, signal: str, error: str | None) -> None:
        """The export of ``signal`` just ended: exported (``error`` None) or lost, with the reason."""
        with self._lock:
            self._last[signal] = (self._clock(), error)

    def failing(self, within_s: float) -> dict[str, str]:
        """signal -> reason, for each signal whose last export failed less than ``within_s`` ago."""
        now = self._clock()
        with self._lock:
            last = dict(self._last)
        return {
            signal: error for signal, (at, error) in sorted(last.items()) if error is not None and now - at <= within_s
        }


@dataclass(frozen=True)
class _Signal:
    """What differs between the span and the log-record accounting."""

    #: as in ExportStatus and OTEL_*_EXPORTER: traces, logs
    name: str
    metric: str
    unit: str
    #: what one item is called in a log line
    noun: str
    description: str


SPANS = _Signal("traces", EXPORTED_METRIC, "{span}", "span", "The number of spans for which the export has finished")
LOGS = _Signal(
    "logs",
    LOG_EXPORTED_METRIC,
    "{log_record}",
    "log record",
    "The number of log records for which the export has finished",
)


class _Accounting:
    """The counting, the ``Retry-After`` hold-back and the shutdown accounting of one exporter."""

    _instances: dict[str, int] = {}
    _instances_lock = threading.Lock()

    def __init__(
        self,
        exporter: Any,
        meter_provider: Any,
        signal: _Signal,
        status: ExportStatus | None,
        timeout_s: float | None,
    ) -> None:
        self.exporter = exporter
        self.signal = signal
        self.status = status
        timeout = getattr(exporter, "_timeout", None) or getattr(getattr(exporter, "_client", None), "_timeout", None)
        self.timeout_s = float(timeout_s if timeout_s is not None else timeout or _DEFAULT_TIMEOUT_S)
        kind = _component_type(exporter, "span" if signal is SPANS else "log")
        with _Accounting._instances_lock:
            number = _Accounting._instances.get(kind, 0)
            _Accounting._instances[kind] = number + 1
        self._attributes = {"otel.component.type": kind, "otel.component.name": f"{kind}/{number}"}
        meter = meter_provider.get_meter(METER_SCOPE)
        self._exported = meter.create_counter(signal.metric, unit=signal.unit, description=signal.description)
        self._not_before = 0.0  # monotonic time the collector asked us to wait for
        self._last_status: int | None = None
        self._last_error: str | None = None  # the transport's exception (ReadTimeout, ConnectionError)
        self._stopped = threading.Event()
        self._pending: Callable[[], int] | None = None  # items queued in the batch processor
        self._watch_responses()
        _rate_limit_sdk_logs()

    def _watch_responses(self) -> None:
        """Read status and Retry-After of the OTLP/HTTP client's responses (the result hides them).

        Why a private attribute: ``SpanExporter.export`` answers only SUCCESS or FAILURE, and the
        SDK's HTTP client keeps the response (status, ``Retry-After``) to itself. The public route
        is the exporter's ``session=`` argument: a ``requests.Session`` whose ``send`` records each
        response, given when :mod:`.pipeline` builds the exporter; until then, the client's
        ``_submit`` is wrapped when it exists, and accounting works without it (no hold-back)."""
        client = getattr(self.exporter, "_client", None)
        submit = getattr(client, "_submit", None)
        if submit is None:
            return

        def watched(data: bytes, timeout: float) -> Any:
            result = submit(data, timeout)
            try:
                self._last_status = getattr(result, "status_code", None)
                error = getattr(result, "error", None)
                self._last_error = type(error).__qualname__ if error is not None else None
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

    def _count(self, items: int, error: str | None) -> None:
        if self.status is not None:
            self.status.record(self.signal.name, error)
        if items <= 0:
            return
        attributes = dict(self._attributes)
        if error:
            attributes["error.type"] = error
        self._exported.add(items, attributes)

    def lost(self, items: int, reason: str, detail: str = "") -> None:
        self._count(items, reason)
        if items > 0 and should_log(f"{self.signal.name} export lost: {reason}"):
            _logger.warning(
                "otel_monitor: %d %s(s) not exported (%s%s); counted in %s{error.type=%r} "
                "(further losses of this kind are not logged for %ds)",
                items,
                self.signal.noun,
                neutralise(reason),
                f": {neutralise(detail)}" if detail else "",
                self.signal.metric,
                reason,
                int(INTERVAL),
            )

    def export(self, count: int, send: Callable[[], bool]) -> bool:
        """Run ``send`` (the wrapped exporter's export: True when it succeeded), counting the outcome
        exactly once."""
        if self._stopped.is_set():
            self.lost(count, "shutdown")
            return False
        wait = self._not_before - time.monotonic()
        if wait > 0:
            if wait > self.timeout_s:
                self.lost(count, "retry_after", f"the collector asked to wait {wait:.0f} s")
                return False
            if self._stopped.wait(wait):
                self.lost(count, "shutdown")
                return False
        self._last_status, self._last_error = None, None
        try:
            ok = send()
        except Exception as exc:  # noqa: BLE001 - an exporter that raises loses the batch, nothing more
            self.lost(count, type(exc).__qualname__, str(exc))
            return False
        if ok:
            self._count(count, None)
        else:
            status = self._last_status
            if status and status >= 400:
                self.lost(count, str(status))
            else:
                self.lost(count, self._last_error or "export_failed")
        return ok

    def count_queued_at_shutdown(self, queued: Callable[[], int]) -> None:
        """Count ``queued()`` items (the batch processor's queue, built after this exporter) lost at
        shutdown: the processor shuts its exporter down once its flush time is up."""
        self._pending = queued

    def shutdown(self) -> None:
        self._stopped.set()
        # The batch processor shuts its exporter down once its flush time is up; what is still
        # queued then is never exported.
        try:
            pending = self._pending() if self._pending is not None else 0
        except Exception:  # noqa: BLE001 - a failing count of pending items reads as none
            pending = 0
        if pending:
            self.lost(pending, "shutdown", "still queued when the shutdown timeout ended")


class AccountedSpanExporter(SpanExporter):
    """A span exporter that counts what it exports and loses, and honours ``Retry-After``."""

    def __init__(
        self,
        exporter: SpanExporter,
        meter_provider: Any,
        timeout_s: float | None = None,
        status: ExportStatus | None = None,
    ) -> None:
        self.exporter = exporter
        self.accounting = _Accounting(exporter, meter_provider, SPANS, status, timeout_s)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.accounting.export(len(spans), lambda: self.exporter.export(spans) is SpanExportResult.SUCCESS)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.accounting.shutdown()
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class AccountedLogExporter(LogRecordExporter):
    """A log-record exporter that counts what it exports and loses, and honours ``Retry-After``."""

    def __init__(
        self,
        exporter: LogRecordExporter,
        meter_provider: Any,
        timeout_s: float | None = None,
        status: ExportStatus | None = None,
    ) -> None:
        self.exporter = exporter
        self.accounting = _Accounting(exporter, meter_provider, LOGS, status, timeout_s)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = self.accounting.export(len(batch), lambda: self.exporter.export(batch) is LogRecordExportResult.SUCCESS)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self.accounting.shutdown()
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))


class StatusMetricExporter(MetricExporter):
    """A metric exporter whose outcomes are recorded in an :class:`ExportStatus` (nothing counted:
    a failed push loses nothing, the next one carries the cumulative values or the deltas again)."""

    def __init__(self, exporter: MetricExporter, status: ExportStatus) -> None:
        super().__init__(
            preferred_temporality=getattr(exporter, "_preferred_temporality", None),
            preferred_aggregation=getattr(exporter, "_preferred_aggregation", None),
        )
        self.exporter = exporter
        self.status = status
        _rate_limit_sdk_logs()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self.status.record("metrics", type(exc).__qualname__)
            raise
        self.status.record("metrics", None if result is MetricExportResult.SUCCESS else "export_failed")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


def account(exporter: SpanExporter, meter_provider: Any, status: ExportStatus | None = None) -> SpanExporter:
    """``exporter`` with its exported and lost spans counted on ``meter_provider``'s meter."""
    return AccountedSpanExporter(exporter, meter_provider, status=status)


def account_logs(
    exporter: LogRecordExporter, meter_provider: Any, status: ExportStatus | None = None
) -> LogRecordExporter:
    """``exporter`` with its exported and lost log records counted on ``meter_provider``'s meter."""
    return AccountedLogExporter(exporter, meter_provider, status=status)


def watch_metrics(exporter: MetricExporter, status: ExportStatus) -> MetricExporter:
    """``exporter`` with the outcome of each push recorded in ``status``."""
    return StatusMetricExporter(exporter, status)


def count_unexported_at_shutdown(processor: Any) -> Any:
    """Let the accounted exporter of ``processor`` (a BatchSpanProcessor) count the spans still
    queued when it is shut down. Returns ``processor``; a processor of another shape is left as is.

    The SDK exposes neither the queue nor its length: they are read from its private attributes,
    when present (the exporter is built before the processor that owns the queue, so this cannot be
    a constructor argument)."""
    inner = getattr(processor, "_batch_processor", None)
    queue = getattr(inner, "_queue", None)
    exporter = getattr(inner, "_exporter", None)
    if isinstance(exporter, AccountedSpanExporter | AccountedLogExporter) and queue is not None:
        exporter.accounting.count_queued_at_shutdown(lambda: len(queue))
    return processor


def _lost(data: Any, exported: str, processed: str) -> dict[str, int]:
    lost: dict[str, int] = {}
    for scope, metric in iter_scoped(data):
        # Export outcomes only from our own accounting: with OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
        # the SDK's exporters count the same batches again under the same name (another scope).
        if metric.name == exported and scope.scope.name != METER_SCOPE:
            continue
        if metric.name not in (exported, processed):
            continue
        for point in getattr(metric.data, "data_points", ()):
            reason = point.attributes.get("error.type")
            if reason and point.value:
                lost[str(reason)] = lost.get(str(reason), 0) + int(point.value)
    return lost


def lost_spans(data: Any) -> dict[str, int]:
    """Spans lost so far, by reason: the processor's drops and the exporters' failures in ``data``."""
    return _lost(data, EXPORTED_METRIC, PROCESSED_METRIC)


def lost_logs(data: Any) -> dict[str, int]:
    """Log records lost so far, by reason: the processor's drops and the exporters' failures."""
    return _lost(data, LOG_EXPORTED_METRIC, LOG_PROCESSED_METRIC)


@contextlib.contextmanager
def sdk_internal_metrics() -> Iterator[None]:
    """OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED set while a batch processor is built (it is read
    then, and only then): its drops and queue size are counted on our meter, then the process's
    environment is as it was."""
    variable = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
    previous = os.environ.get(variable)
    os.environ[variable] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous
