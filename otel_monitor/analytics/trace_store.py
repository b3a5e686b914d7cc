"""Whole span trees of recent failed, slow and a sample of other requests, kept in process.

:class:`TraceStore` is a span processor on the pipeline's tracer provider. Child spans (user
spans, database and HTTP client spans of contrib instrumentations) end before their request's
SERVER span, so they wait in ``pending`` under their trace id; when the request span -- the local
root -- ends, the tree is either turned into a JSON-able dict (failed, slow, or one plain request
in ``SAMPLE_EVERY``) or dropped. Each plain request takes one turn of the store's own sampling
cycle (``sample_turns``: one C call, so requests ending on several threads at once never share or
skip a turn); failed and slow ones take none. Per normal request that costs that turn and, with
children waiting, one dict ``pop``; the conversion runs only for the kept ones. Everything is
bounded: kept trees (oldest dropped first), pending trees, spans per tree, attribute and stack
trace lengths.

Secrets stay redacted by the one :class:`~otel_monitor._redaction.Redactor` the request path uses:
attribute keys that name a credential lose their value, URLs lose their userinfo and the values of
the sensitive query parameters, exception messages and stack traces lose every secret in them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from itertools import cycle
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

from .._redaction import Redactor, redactor_for
from .._safe_log import log_internal_error
from ..metrics.metrics_view import Channel
from .spans import request_parts

__all__ = ["TraceStore", "SHARE_KEY", "SAMPLE_EVERY", "MAX_SPANS", "MAX_PENDING"]

#: key under which each worker shares its kept trees (``pipeline.share`` / ``pipeline.gather``)
SHARE_KEY: Channel[list[dict[str, Any]]] = Channel("otel_monitor.analytics.trace_details")
#: one normal request in this many is kept too, so a healthy route has an example to compare with
SAMPLE_EVERY = 500
#: spans kept per tree (the rest are counted in ``dropped_spans``)
MAX_SPANS = 100
#: trees whose request span has not ended yet (spans outside any request would pile up otherwise)
MAX_PENDING = 512
MAX_VALUE = 1024
MAX_STACKTRACE = 16384

_SERVER = SpanKind.SERVER
_ERROR = StatusCode.ERROR
_KINDS = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


class TraceStore(SpanProcessor):
    """Keeps the span trees of the last ``kept`` failed and ``kept`` slow requests of this process.

    ``on_failed(tree)`` is called with every failed request's tree (the error groups count them
    all, not only the kept ones). ``exclude_prefix`` leaves out the analytics' own requests.
    Each of ``annotators`` is called as ``annotate(span, tree)`` for a kept tree, in the request
    span's ``end`` (on the thread that served the request).
    """

    #: reads spans only in ``on_end``: the request path may hand it its light span (request._server_span)
    reads_ended_spans_only = True

    def __init__(
        self,
        slow_ms: float,
        kept: int,
        sensitive_query_params: tuple[str, ...] = (),
        exclude_prefix: str | None = None,
        on_failed: Callable[[dict[str, Any]], None] | None = None,
        sample_every: int = SAMPLE_EVERY,
        annotators: tuple[Callable[[ReadableSpan, dict[str, Any]], None], ...] = (),
    ) -> None:
        self.slow_ns = int(slow_ms * 1_000_000)
        self.kept = kept
        self.failed: deque[dict[str, Any]] = deque(maxlen=max(1, kept))
        self.slow: deque[dict[str, Any]] = deque(maxlen=max(1, kept))
        self.sampled: deque[dict[str, Any]] = deque(maxlen=max(1, kept // 10))
        #: trace id -> [count of spans dropped, then the waiting spans]
        self.pending: dict[int, list[Any]] = {}
        self.dropped_pending = 0
        self.redactor: Redactor = redactor_for(tuple(sensitive_query_params))
        self._exclude = exclude_prefix.rstrip("/") if exclude_prefix else None
        self._on_failed = on_failed
        self._sample_every = every = max(1, sample_every)
        #: each plain request's turn: ``sample_every - 1`` times False, then True (kept), over and
        #: over. ``next`` on it is one C call, atomic under the GIL: requests ending on several
        #: threads at once never share or skip a turn.
        self._sample_turns: Iterator[bool] = cycle((False,) * (every - 1) + (True,))
        #: add to a kept tree what only its request knows (the profiler's samples, the outlier context)
        self._annotators = annotators

    # -- SpanProcessor -------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not _SERVER:
            self.other_ended(span)
            return
        self.request_ended(span, *request_parts(span))

    def other_ended(self, span: ReadableSpan) -> None:
        """An ended span that is not a SERVER one: a child waits for its request span; a local
        root (a span outside any request) takes its waiting children with it."""
        parent = span.parent
        if parent is not None and not parent.is_remote:
            self._wait(span)
        elif self.pending:
            trace_id = span.context.trace_id
            children = self.pending.pop(trace_id, None)
            if children is not None and len(children) > 1:
                self._own_children(span.context.span_id, trace_id, children)  # another root's go on waiting

    def request_ended(
        self, span: ReadableSpan, attributes: Mapping[str, AttributeValue], duration: int, failed: bool
    ) -> None:
        """An ended SERVER span (see :class:`~.spans.RequestSpanConsumer`)."""
        parent = span.parent
        if parent is not None and not parent.is_remote:
            self._wait(span)
            return
        children = None
        if self.pending:  # most requests have no child span waiting: no lookup then
            trace_id = span.context.trace_id
            children = self.pending.pop(trace_id, None)
            if children is not None and len(children) > 1:
                children = self._own_children(span.context.span_id, trace_id, children)
        slow = duration > self.slow_ns
        if not (failed or slow or next(self._sample_turns)):  # a plain request takes its turn
            return
        self._keep(span, attributes, children, failed, slow)

    @property
    def sample_every(self) -> int:
        """One plain request in this many is kept (at least 1: every one)."""
        return self._sample_every

    @property
    def sample_turns(self) -> Iterator[bool]:
        """The plain requests' sampling turns: ``next(store.sample_turns)`` takes one, True for the
        one to keep (one in ``sample_every``, the ``sample_every``-th first). Safe on any thread (a
        C call): the analytics' processor takes a plain request's turn itself (see
        ``spans.KeptTrees``) and hands only the one to keep to :meth:`keep_sampled`."""
        return self._sample_turns

    def keep_sampled(self, span: ReadableSpan, attributes: Mapping[str, AttributeValue]) -> None:
        """Keeps a plain request's tree (neither slow nor failed, a local root) whose turn the
        caller took from :attr:`sample_turns` and found True: no second turn is taken."""
        trace_id = span.context.trace_id
        children = self.pending.pop(trace_id, None) if self.pending else None
        if children is not None and len(children) > 1:
            children = self._own_children(span.context.span_id, trace_id, children)
        self._keep(span, attributes, children, False, False)

    def _keep(
        self,
        span: ReadableSpan,
        attributes: Mapping[str, AttributeValue],
        children: list[Any] | None,
        failed: bool,
        slow: bool,
    ) -> None:
        """The request's tree, unless it is the analytics' own, to its list (and ``on_failed``)."""
        route = attributes.get("http.route")
        exclude = self._exclude
        if exclude is not None and isinstance(route, str) and (route == exclude or route.startswith(exclude + "/")):
            return
        tree = self.tree(span, children[1:] if children else [], children[0] if children else 0)
        tree["kind"] = "failed" if failed else "slow" if slow else "sample"
        for annotate in self._annotators:
            try:
                annotate(span, tree)
            except Exception:  # noqa: BLE001 - the tree is kept without what failed
                log_internal_error("annotating a kept trace")
        if failed:
            self.failed.append(tree)
            if self._on_failed is not None:
                self._on_failed(tree)
        elif slow:
            self.slow.append(tree)
        else:
            self.sampled.append(tree)
        if failed and slow:
            self.slow.append(tree)

    def _wait(self, span: ReadableSpan) -> None:
        """A child: it waits for its request span (bounded; the oldest waiting tree goes first)."""
        trace_id = span.context.trace_id
        waiting = self.pending.get(trace_id)
        if waiting is None:
            if len(self.pending) >= MAX_PENDING:
                try:
                    del self.pending[next(iter(self.pending))]
                except (StopIteration, KeyError, RuntimeError):
                    pass
                self.dropped_pending += 1
            waiting = self.pending[trace_id] = [0]
        if len(waiting) <= MAX_SPANS:
            waiting.append(span)
        else:
            waiting[0] += 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _own_children(self, root_id: int, trace_id: int, waiting: list[Any]) -> list[Any]:
        """The waiting spans under ``root_id``; the others (another local root of the same trace,
        e.g. a call this app made to itself) go on waiting."""
        by_id = {s.context.span_id: s for s in waiting[1:]}
        mine: dict[int, bool] = {root_id: True}

        def under_root(span_id: int) -> bool:
            chain: list[int] = []
            while span_id not in mine:
                span = by_id.get(span_id)
                if span is None or span.parent is None or len(chain) > MAX_SPANS:
                    break
                chain.append(span_id)
                span_id = span.parent.span_id
            found = mine.get(span_id, False)
            for seen in chain:
                mine[seen] = found
            return found

        own, others = [waiting[0]], [0]
        for s in waiting[1:]:
            (own if under_root(s.context.span_id) else others).append(s)
        if len(others) > 1:
            self.pending[trace_id] = others
        return own

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """Every kept tree of this process (what this worker shares), failed and slow ones once each."""
        seen: set[int] = set()
        result = []
        for queue in (self.failed, self.slow, self.sampled):
            for tree in list(queue):
                if id(tree) not in seen:
                    seen.add(id(tree))
                    result.append(tree)
        return result

    # -- converting ----------------------------------------------------------------------------

    def tree(self, root: ReadableSpan, children: list[ReadableSpan], dropped: int = 0) -> dict[str, Any]:
        """The request span and its children as a JSON-able dict, spans in tree order with depth."""
        origin = root.start_time or 0
        spans = [self._span(root, origin)] + [self._span(s, origin) for s in children]
        ordered = _tree_order(spans)
        attrs = root.attributes or {}
        status = root.status
        error = attrs.get("error.type")
        exception = next((e for s in ordered for e in s["events"] if e["name"] == "exception"), None)
        return {
            "trace_id": format(root.context.trace_id, "032x"),
            "span_id": format(root.context.span_id, "016x"),
            "name": root.name,
            "route": attrs.get("http.route") if attrs.get("http.route") is not None else "(unmatched)",
            "method": attrs.get("http.request.method"),
            "status_code": attrs.get("http.response.status_code"),
            "duration_ms": round(((root.end_time or origin) - origin) / 1e6, 3),
            "start": round(origin / 1e9, 6),
            "time": round((root.end_time or origin) / 1e9, 6),
            "error": self.redact_text(str(status.description or error))[:256] if status.status_code is _ERROR else None,
            "error_type": str(error) if error is not None else None,
            "exception": exception["attributes"] if exception else None,
            "spans": ordered,
            "dropped_spans": dropped,
        }

    def _span(self, span: ReadableSpan, origin: int) -> dict[str, Any]:
        start = span.start_time or origin
        end = span.end_time or start
        parent = span.parent
        scope = span.instrumentation_scope
        return {
            "span_id": format(span.context.span_id, "016x"),
            "parent_id": format(parent.span_id, "016x") if parent is not None else None,
            "name": span.name,
            "kind": _KINDS.get(span.kind, "internal"),
            "offset_ms": round((start - origin) / 1e6, 3),
            "duration_ms": round((end - start) / 1e6, 3),
            "status": _STATUS.get(span.status.status_code, "unset"),
            "status_message": self.redact_text(span.status.description) if span.status.description else None,
            "scope": scope.name if scope is not None else None,
            "attributes": self._attributes(span.attributes),
            "events": [
                {
                    "name": event.name,
                    "offset_ms": round((event.timestamp - origin) / 1e6, 3),
                    "attributes": self._attributes(event.attributes),
                }
                for event in span.events
            ],
        }

    def _attributes(self, attributes: Attributes) -> dict[str, Any]:
        result: dict[str, Any] = {}
        redact = self.redactor.attribute
        for key, value in (attributes or {}).items():
            limit = MAX_STACKTRACE if key == "exception.stacktrace" else MAX_VALUE
            # Redacted before the cut (a cut URL could hide its '@' and show its password), on
            # a prefix with a margin past the cut (bounded work for a huge value).
            if isinstance(value, tuple):
                result[key] = [_short(redact(key, _cut(v, limit + _MARGIN)), limit) for v in value]
            else:
                result[key] = _short(redact(key, _cut(value, limit + _MARGIN)), limit)
        return result

    def redact_text(self, text: str) -> str:
        """``text`` with every secret in it redacted (see :mod:`otel_monitor._redaction`)."""
        return self.redactor.text(text)


#: characters past a cut still redacted, so that a secret straddling the cut is recognised
_MARGIN = 1024


def _cut(value: object, limit: int) -> object:
    return value[:limit] if isinstance(value, str) and len(value) > limit else value


def _short(value: object, limit: int) -> object:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


def _tree_order(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first by start time under each parent; a span whose parent is missing hangs off the root."""
    root = spans[0]
    known = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for s in spans[1:]:
        parent = s["parent_id"] if s["parent_id"] in known and s["parent_id"] != s["span_id"] else root["span_id"]
        children.setdefault(parent, []).append(s)
    ordered: list[dict[str, Any]] = []
    stack = [(root, 0)]
    visited: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span["span_id"] in visited:
            continue
        visited.add(span["span_id"])
        span["depth"] = depth
        ordered.append(span)
        kids = sorted(children.get(span["span_id"], ()), key=lambda s: s["offset_ms"], reverse=True)
        stack.extend((k, depth + 1) for k in kids)
    return ordered
