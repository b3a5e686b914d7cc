"""The logs signal: Python ``logging`` records exported over OTLP (``OTEL_LOGS_EXPORTER``).

Each pipeline has its own SDK ``LoggerProvider`` (same resource and ``service.instance.id`` as the
spans and metrics, a bounded batch queue whose drops are counted like the span queue's, export
failures counted by reason like the spans'). One handler on the root logger, installed once per
process, hands each record to the primary monitor's current pipeline, so it follows forks and
rebuilt pipelines like the global tracer does.

Exporting adds to the console, never replaces it. A handler on the root logger changes what
Python, Flask and werkzeug decide about the console: ``logging.warning()`` calls ``basicConfig()``
only while the root logger has no handler, a record that finds no handler at all goes to
``logging.lastResort``, and Flask's ``app.logger`` and werkzeug's logger add their own stream
handler only when no handler in the chain would take their level. So:

* the handler is installed when the app starts serving (a Flask app's first request; ``wrap()``
  once it returns), after the application, Flask (``app.logger`` is made then, so Flask decides
  about its default handler as it would without us) and the server configured their handlers
  -- a ``basicConfig()`` in ``__main__`` after ``Monitor(app)`` still works;
* a record that finds no other handler is printed as it would have been without us: a
  root-logger record through the handler ``basicConfig()`` installs (as ``logging.warning()``
  would have installed it), any other through ``logging.lastResort`` -- also while our own
  exporters run, so otel_monitor's own warnings about lost telemetry reach stderr.

Records are never sent twice: if an OpenTelemetry logging handler is already on the root logger
(the application's own, or ``opentelemetry-instrument`` with logging auto-instrumentation), we add
none and say so once. Records logged while our own exporters run (instrumentation suppressed) are
skipped, so a failing export cannot feed itself.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context

from .._safe_log import log_internal_error
from . import _providers
from ._export_accounting import ExportStatus, account_logs, sdk_internal_metrics

if TYPE_CHECKING:
    from flask import Flask
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.resources import Resource

    from ..settings import Settings
    from .pipeline import Pipeline

_logger = logging.getLogger("otel_monitor")
_lock = threading.Lock()
_handler: _RootHandler | None = None
_decided = False


def build_logger_provider(
    settings: Settings,
    resource: Resource,
    exporters: list[LogRecordExporter],
    meter_provider: MeterProvider,
    status: ExportStatus | None = None,
) -> LoggerProvider:
    """A LoggerProvider for one pipeline, exporting through ``exporters`` in bounded batches; the
    records each export loses are counted by reason (``otel.sdk.exporter.log.exported``)."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from .._redaction import redactor_for
    from ._log_redaction import RedactingLogExporter

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    with sdk_internal_metrics():  # drops counted, as for spans
        for exporter in exporters:
            provider.add_log_record_processor(
                BatchLogRecordProcessor(
                    RedactingLogExporter(
                        account_logs(exporter, meter_provider, status, timeout_s=settings.otlp_timeout),
                        redactor_for(tuple(settings.sensitive_query_params)),
                    ),
                    schedule_delay_millis=settings.blrp_schedule_delay,
                    max_export_batch_size=min(settings.blrp_max_export_batch_size, settings.blrp_max_queue_size),
                    export_timeout_millis=settings.blrp_export_timeout,
                    max_queue_size=settings.blrp_max_queue_size,
                    meter_provider=meter_provider,
                )
            )
    return provider


def _alone(record: logging.LogRecord, handler: logging.Handler) -> bool:
    """No handler but ``handler`` in the chain of ``record``'s logger: without it, Python would
    have found none (``Logger.callHandlers`` counts every handler, whatever its level)."""
    found = logging.Logger.manager.loggerDict.get(record.name)
    current: logging.Logger | None = found if isinstance(found, logging.Logger) else logging.root
    while current is not None:
        if any(h is not handler for h in current.handlers):
            return False
        if not current.propagate:
            break
        current = current.parent
    return True


class _RootHandler(logging.Handler):
    """Hands records to the primary monitor's current pipeline's LoggerProvider, and prints the
    records no other handler takes as Python would have printed them without this handler."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self._cache: tuple[Pipeline | None, logging.Handler | None] = (None, None)

    def _console(self, record: logging.LogRecord) -> None:
        """What Python does with a record that finds no handler (runs under this handler's lock)."""
        if not _alone(record, self):
            return
        root = logging.getLogger()
        if record.name == root.name:
            # logging.warning() & co. call basicConfig() while the root logger has no handler; with
            # ours there they do not, so install what it would have installed, once.
            stream = logging.StreamHandler()
            stream.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
            # A new list: Logger.callHandlers is iterating over the old one right now, and must
            # not meet the new handler in this call (it would print the record twice).
            root.handlers = [*root.handlers, stream]
            stream.handle(record)
            return
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)

    def _sdk_handler(self) -> logging.Handler | None:
        runtime = _providers.primary_runtime()
        pipeline = runtime.current if runtime is not None else None
        if pipeline is None or pipeline.logger_provider is None:
            return None
        cached, handler = self._cache
        if cached is not pipeline:
            from opentelemetry.sdk._logs import LoggingHandler

            with warnings.catch_warnings():
                # deprecated in favour of opentelemetry-instrumentation-logging's, which is not a dependency
                warnings.simplefilter("ignore", DeprecationWarning)
                handler = LoggingHandler(logger_provider=pipeline.logger_provider)
            self._cache = (pipeline, handler)
        return handler

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._console(record)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
        try:
            if otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY):
                return
            handler = self._sdk_handler()
            if handler is not None:
                handler.emit(record)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def _foreign_otel_handler(root: logging.Logger) -> logging.Handler | None:
    for handler in root.handlers:
        if handler is _handler:
            continue
        module = type(handler).__module__ or ""
        if module.startswith("opentelemetry"):
            return handler
    return None


def install_at_first_request(app: Flask) -> None:
    """Install the root handler at ``app``'s first request, after making ``app.logger`` (Flask
    decides about its default handler without ours); then take the hook out again."""
    lock = threading.Lock()

    def first_request() -> None:
        with lock:
            hooks = app.before_request_funcs.get(None, [])
            if first_request not in hooks:
                return  # a concurrent first request got here first
            # A new list, not remove(): Flask may be iterating over the old one right now.
            app.before_request_funcs[None] = [hook for hook in hooks if hook is not first_request]
        try:
            app.logger  # noqa: B018 - made now, before our handler is on the root logger
            install_root_handler()
        except Exception:  # noqa: BLE001 - never into the user's request
            log_internal_error("installing the logs handler")

    app.before_request_funcs.setdefault(None, []).append(first_request)


def install_root_handler() -> None:
    """Once per process: export root-logger records, unless an OpenTelemetry handler already does."""
    global _handler, _decided
    with _lock:
        if _decided:
            return
        _decided = True
        root = logging.getLogger()
        foreign = _foreign_otel_handler(root)
        if foreign is not None:
            _logger.info(
                "otel_monitor: the root logger already has an OpenTelemetry handler (%s); "
                "logs are not exported a second time",
                type(foreign).__name__,
            )
            return
        _handler = _RootHandler()
        root.addHandler(_handler)


def remove_root_handler() -> None:
    """Take our handler off the root logger (tests; an application that wants its own)."""
    global _handler, _decided
    with _lock:
        if _handler is not None:
            logging.getLogger().removeHandler(_handler)
        _handler = None
        _decided = False
