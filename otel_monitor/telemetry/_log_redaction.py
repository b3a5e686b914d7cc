"""Log records redacted before they are exported (the one :class:`~otel_monitor._redaction.Redactor`).

Imported only when a logs exporter is configured (it needs the SDK's logs module).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .._redaction import Redactor

__all__ = ["RedactingLogExporter"]


class RedactingLogExporter(LogRecordExporter):
    """Wraps a log record exporter: each record's body and attributes are redacted before export.

    It runs in the batch processor's export thread (never in the thread that logged), on the
    processor's own copy of each record (``BatchLogRecordProcessor`` copies it when it is emitted).
    """

    def __init__(self, exporter: LogRecordExporter, redactor: Redactor) -> None:
        self._exporter = exporter
        self._redactor = redactor

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        redactor = self._redactor
        for readable in batch:
            record = readable.log_record
            if isinstance(record.body, str):
                record.body = redactor.text(record.body)
            attributes = record.attributes
            if attributes:
                redacted = redactor.attributes(attributes)
                if redacted != dict(attributes):
                    record.attributes = redacted
        return self._exporter.export(batch)

    def shutdown(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
