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
per part; and a plain request (most of them) not even those: the processor does the parts' cheap
common case itself, reading what they expose for it (:class:`KeptTrees`, :class:`AnonymousCounts`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .._redaction import Redactor, redactor_for
from ..metrics.metrics_view import Channel

__all__ = [
    "AnalyticsSpans",
    "AnonymousCounts",
    "KeptTrees",
    "RecentRequests",
    "RequestSpanConsumer",
    "SHARE_KEY",
    "ANONYMOUS_BATCH",
]

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


class KeptTrees(RequestSpanConsumer, Protocol):
    """What :class:`AnalyticsSpans` uses of the trace details (``trace_store.TraceStore``) to
    leave a plain request out of them with one C call: for a local root with no child waiting,
    neither slow nor failed, it takes the request's turn, ``next(sample_turns)`` (the store's own
    sampling sequence, safe on any thread), and only for the one to keep (True) calls
    ``keep_sampled``, which takes no second turn. Any other request goes to ``request_ended``."""

    @property
    def slow_ns(self) -> int: ...

    @property
    def pending(self) -> Sized: ...

    @property
    def sample_turns(self) -> Iterator[bool]: ...

    def keep_sampled(self, span: ReadableSpan, attributes: Mapping[str, AttributeValue]) -> None: ...


class AnonymousCounts(RequestSpanConsumer, Protocol):
    """What :class:`AnalyticsSpans` reads of a per-identity count (``users.IdentityCounts``) to
    count a request without ``attribute`` without a call: ``current``, the current minute's
    [start, end) on ``clock`` and its waiting lists (route -> method -> list) of the endpoints it
    tracks that already had an anonymous request in that minute. A request thread appends ``None``
    to its endpoint's list (``list.append``: one step under the GIL, no lock) while fewer than
    :data:`ANONYMOUS_BATCH` wait; the count adds them to its totals under its lock, before any
    read and in ``request_ended`` once that many wait. No list: ``request_ended`` decides."""

    @property
    def attribute(self) -> str: ...

    @property
    def current(self) -> tuple[float, float, Mapping[str, Mapping[str, list[None]]]]: ...

    @property
    def clock(self) -> Callable[[], float]: ...


#: anonymous requests that may wait in an endpoint's list (see :class:`AnonymousCounts`)
ANONYMOUS_BATCH = 1024
#: what a request finds no list for: as a full one, it goes to ``request_ended``
_FULL: list[None] = [None] * ANONYMOUS_BATCH


class AnalyticsSpans(SpanProcessor):
    """The analytics' one span processor: an ended SERVER span's kind, times, status and attributes
    are read once, here, and handed to :class:`RecentRequests` (only a slow or failed span), the
    trace details (``traces``), each of the per-identity ``counts`` and each of ``consumers``, in
    that order. Any other span goes to ``others`` (the trace details' children).

    Most requests are plain: neither slow nor failed, a local root with no child span waiting,
    anonymous, on an endpoint already counted, in the current minute. Such a request costs no
    Python call beyond this one (only C ones: the trace details' sampling turn and the clock): the
    turn is taken here, from the store's ``sample_turns``, and each count's anonymous tally done
    here, with what :class:`KeptTrees` and :class:`AnonymousCounts` expose; no attribute of theirs
    is written. Only the plain request whose turn says keep goes on, to ``keep_sampled``; any other
    request goes to their ``request_ended``, which decides as it always did.
    """

    #: reads spans only in ``on_end``: the request path may hand it its light span (request._server_span)
    reads_ended_spans_only = True

    def __init__(
        self,
        recent: RecentRequests,
        traces: KeptTrees | None = None,
        counts: Iterable[AnonymousCounts] = (),
        others: Callable[[ReadableSpan], None] | None = None,
        consumers: Iterable[RequestSpanConsumer] = (),
    ) -> None:
        self.recent = recent
        self._traces = traces
        #: the trace details' sampling turns, taken here for a plain request (see :class:`KeptTrees`;
        #: without trace details, none: never read)
        self._sample_turns: Iterator[bool] = traces.sample_turns if traces is not None else iter(())
        self._counts = tuple(counts)
        #: the first of the counts (the users'), done in line; the others (the client addresses'): called
        self._first_count = self._counts[0] if self._counts else None
        self._more_counts = self._counts[1:]
        self._ends = tuple(consumer.request_ended for consumer in consumers)
        self._others = others
        #: a request slower than this goes to every part's ``request_ended`` (each has its threshold)
        self._slow_ns = min(recent.slow_ns, traces.slow_ns) if traces is not None else recent.slow_ns
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
        try:
            duration = span.end_time - span.start_time  # type: ignore[operator]  # None: the except
        except TypeError:  # a time missing
            duration = 0
        status = span.status
        if status is self._unset:
            failed = False
        else:
            code = status.status_code
            failed = code is _ERROR
            if code is _UNSET:
                self._unset = status
        attributes = span.attributes
        if attributes is None:
            attributes = _NO_ATTRIBUTES
        if failed or duration > self._slow_ns:
            self._request_ended(span, attributes, duration, failed)
            return
        traces = self._traces
        if traces is not None:
            if span.parent is None and not traces.pending:
                if next(self._sample_turns):  # the one to keep
                    traces.keep_sampled(span, attributes)
            else:  # a child, or children waiting: the trace details decide
                traces.request_ended(span, attributes, duration, failed)
        first = self._first_count
        if first is not None:
            # Subscripts, not ``get``: on the light span's read-only view each ``get`` is a method call.
            try:
                route, method = attributes["http.route"], attributes["http.request.method"]
            except KeyError:  # none: request_ended decides
                route = method = None
            endpoint = _FULL
            if first.attribute not in attributes:
                since, until, waiting = first.current
                if since <= first.clock() < until:
                    try:
                        endpoint = waiting[route][method]  # type: ignore[index]  # a non-str finds none
                    except (KeyError, TypeError):  # not in this minute yet, not tracked, no route
                        pass
            if len(endpoint) < ANONYMOUS_BATCH:
                endpoint.append(None)
            else:  # identified, another minute, not tracked (yet), or a full list: it decides
                first.request_ended(span, attributes, duration, failed)
            if self._more_counts:
                for other in self._more_counts:
                    other.request_ended(span, attributes, duration, failed)
        if self._ends:
            for ended in self._ends:
                ended(span, attributes, duration, failed)

    def _request_ended(
        self, span: ReadableSpan, attributes: Mapping[str, AttributeValue], duration: int, failed: bool
    ) -> None:
        """A slow or failed request: every part decides with its own threshold."""
        recent = self.recent
        if failed or duration > recent.slow_ns:
            recent.request_ended(span, attributes, duration, failed)
        if self._traces is not None:
            self._traces.request_ended(span, attributes, duration, failed)
        for counts in self._counts:
            counts.request_ended(span, attributes, duration, failed)
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
