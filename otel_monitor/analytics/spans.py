"""Recent slow and failed requests, from the SERVER spans the pipeline already makes.

:class:`RecentRequests` is a span processor: ``on_end`` reads a few attributes of the finished
span and, only for a slow or failed one, appends one tuple to a bounded deque (O(1), no lock of
ours: ``deque.append`` is atomic under the GIL). Formatting into dicts happens when someone
reads ``/traces``; the error text is redacted then (the same :class:`~otel_monitor._redaction.Redactor`
as the request span and the trace details). Only sampled spans reach a processor, so with a sampling ratio below 1 the
lists hold the sampled share of the slow and failed requests.

:class:`AnalyticsSpans` is the analytics' one span processor on the tracer provider: it reads an
ended SERVER span once and hands its parts to :class:`RecentRequests`, the trace details and the
users' counts (each a :class:`RequestSpanConsumer`), so a request costs one processor call, not one
per part.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .._redaction import Redactor, redactor_for
from ..metrics.metrics_view import Channel

__all__ = ["AnalyticsSpans", "RecentRequests", "RequestSpanConsumer", "SHARE_KEY"]

#: key under which each worker shares its lists (``pipeline.share`` / ``pipeline.gather``)
SHARE_KEY: Channel[list[dict[str, Any]]] = Channel("otel_monitor.analytics.traces")
_SERVER = SpanKind.SERVER
#: (trace id, span id, name, route, method, status, duration ns, end ns, error)
_Entry = tuple[int, int, str, AttributeValue, AttributeValue, AttributeValue, int, int | None, object]
_ERROR = StatusCode.ERROR
_UNSET = StatusCode.UNSET
_NO_ATTRIBUTES: Mapping[str, AttributeValue] = {}


def request_parts(span: ReadableSpan) -> tuple[Mapping[str, AttributeValue], int, bool]:
    """An ended SERVER span's attributes (never None), duration in ns (0 without both times) and
    whether its status is ERROR: what a :class:`RequestSpanConsumer` is handed, for a part used as
    a span processor on its own (:class:`AnalyticsSpans` reads them itself, once for all parts)."""
    end, start = span.end_time, span.start_time
    return (
        span.attributes or _NO_ATTRIBUTES,
        end - start if end is not None and start is not None else 0,
        span.status.status_code is _ERROR,
    )


class RequestSpanConsumer(Protocol):
    """What :class:`AnalyticsSpans` hands an ended SERVER span to: the span, its attributes (never
    None), its duration in ns (0 without both times) and whether its status is ERROR."""

    def request_ended(
        self, span: ReadableSpan, attributes: Mapping[str, AttributeValue], duration: int, failed: bool
    ) -> None: ...


class AnalyticsSpans(SpanProcessor):
    """The analytics' one span processor: an ended SERVER span's kind, times, status and attributes
    are read once, here, and handed to :class:`RecentRequests` (only a slow or failed span) and then
    to each of ``consumers`` in their order (the trace details, the users' and client addresses'
    counts). Any other span goes to ``others`` (the trace details' children). One Python call per
    request through the provider's processors, not one per analytics part, each re-reading the span.
    """

    #: reads spans only in ``on_end``: the request path may hand it its light span (request._server_span)
    reads_ended_spans_only = True

    def __init__(
        self,
        recent: RecentRequests,
        consumers: Iterable[RequestSpanConsumer] = (),
        others: Callable[[ReadableSpan], None] | None = None,
    ) -> None:
        self.recent = recent
        self._ends = tuple(consumer.request_ended for consumer in consumers)
        self._others = others
        #: the last UNSET status seen: most request spans share one (the light span's default), and
        #: ``Status.status_code`` is a property (a Python call) that it spares
        self._unset: Status | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not _SERVER:
            if self._others is not None:
                self._others(span)
            return
        end, start = span.end_time, span.start_time
        duration = end - start if end is not None and start is not None else 0
        status = span.status
        if status is self._unset:
            failed = False
        else:
            code = status.status_code
            failed = code is _ERROR
            if code is _UNSET:
                self._unset = status
        attributes = span.attributes or _NO_ATTRIBUTES
        recent = self.recent
        if failed or duration > recent.slow_ns:  # most requests: neither, and no call
            recent.request_ended(span, attributes, duration, failed)
        for ended in self._ends:
            ended(span, attributes, duration, failed)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class RecentRequests(SpanProcessor):
    """Keeps the last ``kept`` slow and the last ``kept`` failed SERVER spans of this process."""

    #: reads spans only in ``on_end``: the request path may hand it its light span (request._server_span)
    reads_ended_spans_only = True

    def __init__(
        self,
        slow_ms: float,
        kept: int,
        exclude_prefix: str | None = None,
        sensitive_query_params: tuple[str, ...] = (),
    ) -> None:
        self.redactor: Redactor = redactor_for(tuple(sensitive_query_params))
        self.slow_ns = int(slow_ms * 1_000_000)
        self.slow: deque[_Entry] = deque(maxlen=kept)
        self.failed: deque[_Entry] = deque(maxlen=kept)
        self._exclude = exclude_prefix.rstrip("/") if exclude_prefix else None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not _SERVER:
            return
        self.request_ended(span, *request_parts(span))

    def request_ended(
        self, span: ReadableSpan, attributes: Mapping[str, AttributeValue], duration: int, failed: bool
    ) -> None:
        """An ended SERVER span (see :class:`RequestSpanConsumer`)."""
        # A failed SERVER span has an ERROR status (5xx or an exception, as the semantic
        # conventions ask): most requests are neither slow nor failed and stop here.
        slow = duration > self.slow_ns
        if not (failed or slow):
            return
        attrs = attributes
        end = span.end_time
        status = attrs.get("http.response.status_code")
        error = attrs.get("error.type")
        route = attrs.get("http.route")
        exclude = self._exclude
        if exclude is not None and isinstance(route, str) and (route == exclude or route.startswith(exclude + "/")):
            return
        context = span.context
        description = span.status.description if span.status.status_code is _ERROR else None
        entry = (
            context.trace_id,
            context.span_id,
            span.name,
            route,
            attrs.get("http.request.method"),
            status,
            duration,
            end,
            description or error,
        )
        if failed:
            self.failed.append(entry)
        if slow:
            self.slow.append(entry)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def snapshot(self) -> list[dict[str, Any]]:
        """Both lists as JSON-able dicts (what this worker shares)."""
        result = []
        redact = self.redactor.text
        for kind, entries in (("slow", list(self.slow)), ("failed", list(self.failed))):
            for trace_id, span_id, name, route, method, status, duration, end, error in entries:
                result.append(
                    {
                        "trace_id": format(trace_id, "032x"),
                        "span_id": format(span_id, "016x"),
                        "name": name,
                        "route": route if route is not None else "(unmatched)",
                        "method": method,
                        "status_code": status,
                        "duration_ms": round(duration / 1e6, 3),
                        "time": round(end / 1e9, 6) if end else None,
                        "error": redact(str(error))[:256] if error is not None else None,
                        "kind": kind,
                    }
                )
        return result
