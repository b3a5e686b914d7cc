"""W3C Trace Context (``traceparent`` / ``tracestate``), parsed exactly as the specification says.

A drop-in for the SDK's ``TraceContextTextMapPropagator`` (same ``TextMapPropagator`` interface):

* ``traceparent``: version ``00`` is exactly 55 characters; a higher version is parsed for the
  version-00 fields when the character after the flags is ``-`` (or the header ends there), and
  re-sent as version ``00`` (W3C Trace Context Level 1, "Versioning of traceparent"); ``ff``,
  upper-case hex, all-zero ids and anything else are ignored (a new trace starts). Leading and
  trailing spaces and tabs are optional whitespace.
* trace flags: ``sampled`` (0x01) and Level 2's ``random-trace-id`` (0x02) are kept; the other
  bits are reserved, and "vendors MUST set those to zero" when sending.
* ``tracestate``: only parsed when ``traceparent`` was valid; list members separated by commas
  with optional whitespace, empty members ignored, at most 32 members, keys and values per the
  ABNF of Level 2 (a key begins with a lower-case letter or a digit and has up to 256 characters
  of ``a-z 0-9 _ - * / @``: Level 1's ``tenant@system`` split and its 241 + 14 limits are gone);
  a key seen twice, or one bad member, discards the whole header, never the ``traceparent``. The
  parsed entries are kept as they are (the API's ``TraceState`` constructor checks Level 1's key
  grammar and would drop a Level 2 key, keeping the rest).
* size guards for hostile clients: a ``traceparent`` longer than ``MAX_TRACEPARENT`` or a
  ``tracestate`` longer than ``MAX_TRACESTATE_IN`` is not parsed at all; a valid ``tracestate``
  is kept to ``MAX_TRACESTATE`` characters by dropping whole entries, those over 128 characters
  first, then from the end (the specification's truncation rule).

Parsing is linear (slices and set look-ups; the value regex runs on members of at most 256
characters), so a long header costs nothing quadratic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.propagators import textmap
from opentelemetry.trace import format_span_id, format_trace_id
from opentelemetry.trace.span import TraceState

__all__ = ["W3CTraceContextPropagator", "parse_traceparent", "parse_tracestate"]

#: longest ``traceparent`` parsed: room for future versions' extra fields, still bounded
MAX_TRACEPARENT = 512
#: longest ``tracestate`` (all header fields combined) parsed at all
MAX_TRACESTATE_IN = 8192
#: longest ``tracestate`` kept and propagated (the specification asks for at least 512)
MAX_TRACESTATE = 512
_MAX_MEMBERS = 32
_LONG_ENTRY = 128

_HEX = frozenset("0123456789abcdef")
_OWS = " \t"
_KNOWN_FLAGS = 0x01 | 0x02  # sampled, random-trace-id (Level 2)
#: key = ( lcalpha / DIGIT ) 0*255 ( keychar ); keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


def parse_traceparent(header: str) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` of a ``traceparent`` value, or None if it must be ignored."""
    if len(header) > MAX_TRACEPARENT:
        return None
    value = header.strip(_OWS)
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version, trace_hex, span_hex, flags_hex = value[:2], value[3:35], value[36:52], value[53:55]
    if version == "ff" or not _HEX.issuperset(version):
        return None
    if len(value) != 55 and (version == "00" or value[55] != "-"):
        # Version 00 has nothing after the flags; a later version's extra fields follow a dash.
        return None
    if not (_HEX.issuperset(trace_hex) and _HEX.issuperset(span_hex) and _HEX.issuperset(flags_hex)):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, int(flags_hex, 16) & _KNOWN_FLAGS


def parse_tracestate(headers: Sequence[str]) -> TraceState | None:
    """The ``tracestate`` of one or more header fields, or None when the header must be discarded."""
    if sum(len(h) for h in headers) + len(headers) - 1 > MAX_TRACESTATE_IN:
        return None
    entries: dict[str, str] = {}
    for header in headers:
        for member in header.split(","):
            member = member.strip(_OWS)
            if not member:
                continue  # empty members are allowed (combined header fields) and ignored
            key, sep, value = member.partition("=")
            if not sep or key in entries or len(entries) == _MAX_MEMBERS:
                return None
            if _KEY.fullmatch(key) is None or _VALUE.fullmatch(value) is None:
                return None
            entries[key] = value
    return _ParsedTraceState(_truncated(list(entries.items())))


class _ParsedTraceState(TraceState):
    """A ``TraceState`` of entries already checked here against the Level 2 grammar.

    The API's constructor validates keys with Level 1's grammar and drops (with a warning) the
    keys Level 2 allows beyond it (``1abc``, ``a@b@c``, a system part over 14 characters), which
    would propagate a tracestate with one member silently missing.
    """

    def __init__(self, entries: list[tuple[str, str]]) -> None:
        super().__init__()
        self._dict = dict(entries)


def _truncated(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    size = sum(len(k) + len(v) + 1 for k, v in items) + max(len(items) - 1, 0)
    if size <= MAX_TRACESTATE:
        return items
    kept = []
    for key, value in items:  # entries over 128 characters go first
        if len(key) + len(value) + 1 > _LONG_ENTRY:
            size -= len(key) + len(value) + 2
        else:
            kept.append((key, value))
    while kept and size > MAX_TRACESTATE:  # then from the end
        key, value = kept.pop()
        size -= len(key) + len(value) + 2
    return kept


class W3CTraceContextPropagator(textmap.TextMapPropagator):
    """Extracts and injects ``traceparent`` and ``tracestate`` per W3C Trace Context."""

    _TRACEPARENT = "traceparent"
    _TRACESTATE = "tracestate"

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        headers = getter.get(carrier, self._TRACEPARENT)
        if not headers or len(headers) != 1:
            return context  # none, or several traceparent fields: the trace restarts
        parsed = parse_traceparent(headers[0])
        if parsed is None:
            return context
        trace_id, span_id, flags = parsed
        state_headers = getter.get(carrier, self._TRACESTATE)
        trace_state = parse_tracestate(state_headers) if state_headers else None
        span_context = trace.SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=True,
            trace_flags=trace.TraceFlags(flags),
            trace_state=trace_state,
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        flags = span_context.trace_flags & _KNOWN_FLAGS
        setter.set(
            carrier,
            self._TRACEPARENT,
            f"00-{format_trace_id(span_context.trace_id)}-{format_span_id(span_context.span_id)}-{flags:02x}",
        )
        state = span_context.trace_state
        if state:  # an empty tracestate is valid but should not be sent
            setter.set(carrier, self._TRACESTATE, state.to_header())

    @property
    def fields(self) -> set[str]:
        return {self._TRACEPARENT, self._TRACESTATE}
