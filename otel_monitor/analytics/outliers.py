"""The context kept with an outlier (a slow or failed request whose trace is kept), as FMD keeps it.

``context`` in the trace: the request's headers and query string, redacted (header names that
name a credential lose their value; URLs in values lose their userinfo and sensitive query
values, as the trace store's attributes do), and the machine at the time: this process's CPU %
and resident memory, the host's CPU % and memory use, with the time they were read.

:class:`SystemReadings` is refreshed by the profiler's thread while it samples slow requests (at
most once a second), so a slow request's context costs its thread nothing; a fast failed request
reads it at keep time only when the last reading is older than :data:`STALE_S` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .._redaction import REDACTED, names_a_secret, redactor_for

__all__ = ["SystemReadings", "OutlierContext", "MAX_HEADERS", "MAX_HEADER_VALUE", "STALE_S"]

MAX_HEADERS = 64
MAX_HEADER_VALUE = 1024
#: a reading older than this is refreshed at keep time
STALE_S = 10.0
#: environ keys of headers without the ``HTTP_`` prefix
_UNPREFIXED = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


class _SpanContext(Protocol):
    @property
    def span_id(self) -> int: ...


class _Span(Protocol):
    def get_span_context(self) -> _SpanContext: ...


class _Served(Protocol):
    """What the context reads of a request in flight (``_request_path._Request``)."""

    request_environ: dict[str, str] | None
    span: _Span


class _EndedSpan(Protocol):
    @property
    def context(self) -> _SpanContext: ...


class SystemReadings:
    """The latest process and host CPU and memory reading (psutil), refreshed on demand."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._clock = clock
        self._lock = threading.Lock()
        self.latest: dict[str, Any] | None = None
        # The first cpu_percent(None) call only starts the measurement (it answers 0.0).
        try:
            self._process.cpu_percent(None)
            psutil.cpu_percent(None)
        except Exception:  # noqa: BLE001 - no reading is shown then
            pass

    def refresh(self) -> None:
        psutil = self._psutil
        with self._lock:
            try:
                memory = psutil.virtual_memory()
                self.latest = {
                    "at": round(self._clock(), 3),
                    "process_cpu_pct": round(self._process.cpu_percent(None), 1),
                    "process_rss_bytes": int(self._process.memory_info().rss),
                    "host_cpu_pct": round(psutil.cpu_percent(None), 1),
                    "host_memory_pct": round(float(memory.percent), 1),
                    "host_memory_used_bytes": int(memory.total - memory.available),
                    "host_memory_total_bytes": int(memory.total),
                }
            except Exception:  # noqa: BLE001 - the context goes without the machine's figures
                self.latest = None

    def current(self) -> dict[str, Any] | None:
        latest = self.latest
        if latest is None or self._clock() - latest["at"] > STALE_S:
            self.refresh()
            latest = self.latest
        return dict(latest) if latest is not None else None


class OutlierContext:
    """A trace store annotator: ``context`` (request headers, query, machine) for a kept trace.

    ``serving`` is the pipeline's thread ident -> request map: the trace store keeps a trace in
    the request span's ``end``, on the thread that served it, so that thread's entry is the
    request (checked by span id; a response finished late on another thread has no context).
    """

    def __init__(
        self,
        serving: Mapping[int, _Served],
        readings: SystemReadings | None,
        sensitive_query_params: tuple[str, ...] = (),
    ) -> None:
        self.serving = serving
        self.readings = readings
        self._redactor = redactor_for(tuple(sensitive_query_params))

    def annotate(self, span: _EndedSpan, tree: dict[str, object]) -> None:
        if tree.get("kind") == "sample":  # a normal request kept for comparison: no outlier
            return
        context: dict[str, Any] = {}
        record = self.serving.get(threading.get_ident())
        if (
            record is not None
            and record.request_environ is not None
            and record.span.get_span_context().span_id == span.context.span_id
        ):
            context["request"] = self.request(record.request_environ)
        if self.readings is not None:
            machine = self.readings.current()
            if machine is not None:
                context["system"] = machine
        if context:
            tree["context"] = context

    def request(self, environ: Mapping[str, str]) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if len(headers) >= MAX_HEADERS:
                break
            if key.startswith("HTTP_"):
                name = key[5:].lower().replace("_", "-")
            elif key in _UNPREFIXED:
                name = _UNPREFIXED[key]
            else:
                continue
            text = str(value)[:MAX_HEADER_VALUE]
            headers[name] = REDACTED if names_a_secret(name) else self._redactor.text(text)
        query = str(environ.get("QUERY_STRING") or "")[:4096]
        return {
            "method": str(environ.get("REQUEST_METHOD", ""))[:32],
            "path": str(environ.get("PATH_INFO", ""))[:2048],
            "query": self._redactor.query(query) if query else "",
            "headers": dict(sorted(headers.items())),
        }
