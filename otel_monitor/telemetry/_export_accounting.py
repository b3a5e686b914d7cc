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
otherwise it is dropped unsent (counted). The status and the header come through the exporters'
public ``session=`` argument: the pipeline gives the OTLP/HTTP exporters a
:class:`~._export_session.ExportSession`, which writes each response into the
:class:`ExportOutcome` this module opens around the export (a context variable of the export's
thread). An exporter without it (gRPC, console, a credential provider's session) is still counted,
by its result and exception, without the hold-back.

Failures are logged rate-limited (one line per reason per :data:`~otel_monitor._safe_log.INTERVAL`),
and so are the SDK exporters' own per-batch error lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.metrics import MeterProvider
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
    "ExportOutcome",
    "current_outcome",
    "observed_export",
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


class ExportOutcome:
    """How the HTTP requests of one export ended, as its exporter's session saw them (the SDK
    retries inside one export: the last response or exception, the latest ``Retry-After``)."""

    def __init__(self) -> None:
        #: the last response's status code (None: no response, or none seen)
        self.status: int | None = None
        #: the last transport exception's class name (``ReadTimeout``, ``ConnectionError``)
        self.error: str | None = None
        #: monotonic time before which the collector asked not to be sent to (0: no wait asked)
        self.not_before = 0.0

    def responded(self, status: int | None, error: str | None, retry_after_s: float | None) -> None:
        """One HTTP request of the export ended: its status (or exception) and ``Retry-After``."""
        self.status, self.error = status, error
        if retry_after_s is not None and retry_after_s > 0:
            self.not_before = max(self.not_before, time.monotonic() + retry_after_s)


_outcome: contextvars.ContextVar[ExportOutcome | None] = contextvars.ContextVar("otel_monitor_export", default=None)


def current_outcome() -> ExportOutcome | None:
    """The outcome of the accounted export running on this thread, if any (read by the session)."""
    return _outcome.get()


@contextlib.contextmanager
def observed_export() -> Iterator[ExportOutcome]:
    """An :class:`ExportOutcome` that this thread's export session writes to while the block runs."""
    outcome = ExportOutcome()
    token = _outcome.set(outcome)
    try:
        yield outcome
    finally:
        _outcome.reset(token)


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
        exporter: object,
        meter_provider: MeterProvider,
        signal: _Signal,
        status: ExportStatus | None,
        timeout_s: float | None,
    ) -> None:
        self.signal = signal
        self.status = status
        #: the export timeout (``otlp_timeout``): a longer ``Retry-After`` drops the batch unsent
        self.timeout_s = float(timeout_s if timeout_s is not None else _DEFAULT_TIMEOUT_S)
        kind = _component_type(exporter, "span" if signal is SPANS else "log")
        with _Accounting._instances_lock:
            number = _Accounting._instances.get(kind, 0)
            _Accounting._instances[kind] = number + 1
        self._attributes = {"otel.component.type": kind, "otel.component.name": f"{kind}/{number}"}
        meter = meter_provider.get_meter(METER_SCOPE)
        self._exported = meter.create_counter(signal.metric, unit=signal.unit, description=signal.description)
        self._not_before = 0.0  # monotonic time the collector asked us to wait for
        self._stopped = threading.Event()
        self._pending: Callable[[], int] | None = None  # items queued in the batch processor
        _rate_limit_sdk_logs()

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
        raised: Exception | None = None
        with observed_export() as outcome:
            try:
                ok = send()
            except Exception as exc:  # noqa: BLE001 - an exporter that raises loses the batch, nothing more
                ok, raised = False, exc
        self._not_before = max(self._not_before, outcome.not_before)
        if raised is not None:
            self.lost(count, type(raised).__qualname__, str(raised))
        elif ok:
            self._count(count, None)
        elif outcome.status and outcome.status >= 400:
            self.lost(count, str(outcome.status))
        else:
            self.lost(count, outcome.error or "export_failed")
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
        meter_provider: MeterProvider,
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
        meter_provider: MeterProvider,
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
        shutdown: Callable[[], None] = self.exporter.shutdown  # the SDK's method is not annotated
        shutdown()

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


def account(
    exporter: SpanExporter,
    meter_provider: MeterProvider,
    status: ExportStatus | None = None,
    timeout_s: float | None = None,
) -> SpanExporter:
    """``exporter`` with its exported and lost spans counted on ``meter_provider``'s meter;
    ``timeout_s`` is its export timeout (a longer ``Retry-After`` drops a batch unsent)."""
    return AccountedSpanExporter(exporter, meter_provider, timeout_s=timeout_s, status=status)


def account_logs(
    exporter: LogRecordExporter,
    meter_provider: MeterProvider,
    status: ExportStatus | None = None,
    timeout_s: float | None = None,
) -> LogRecordExporter:
    """``exporter`` with its exported and lost log records counted on ``meter_provider``'s meter."""
    return AccountedLogExporter(exporter, meter_provider, timeout_s=timeout_s, status=status)


def watch_metrics(exporter: MetricExporter, status: ExportStatus) -> MetricExporter:
    """``exporter`` with the outcome of each push recorded in ``status``."""
    return StatusMetricExporter(exporter, status)


_Processor = TypeVar("_Processor")


def count_unexported_at_shutdown(processor: _Processor) -> _Processor:
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


def _lost(data: MetricsData | None, exported: str, processed: str) -> dict[str, int]:
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


def lost_spans(data: MetricsData | None) -> dict[str, int]:
    """Spans lost so far, by reason: the processor's drops and the exporters' failures in ``data``."""
    return _lost(data, EXPORTED_METRIC, PROCESSED_METRIC)


def lost_logs(data: MetricsData | None) -> dict[str, int]:
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
