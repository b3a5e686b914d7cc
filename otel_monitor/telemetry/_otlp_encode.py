"""OTLP span encoding without protobuf objects: ``ExportTraceServiceRequest`` bytes written directly.

The official encoder (``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``)
builds a protobuf message per span, attribute, value, event and link and then serialises the
tree; in a batch thread that shares the GIL with the request threads that costs as much as the
rest of the request telemetry together. :func:`encode_spans` writes the same bytes from the SDK's
``ReadableSpan`` data in one pass: the same fields, the same field order (by field number, as the
protobuf runtime serialises), the same grouping by resource and instrumentation scope (equal
resources and scopes share a group, in first-seen order), the same per-attribute skip of a value
that cannot be encoded (logged), and the same omissions (the official encoder does not write a
link's trace state). tests/test_otlp_encode.py compares the two byte for byte on random spans.
The resource (the same object for every span of a process) is encoded once and cached; so is each
attribute with a string or integer value (most of a service's attributes repeat: method, route,
status code, server address), and each span name. The request span
(:class:`~otel_monitor.request._server_span.ServerSpan`) is read through its fields rather than the
``ReadableSpan`` properties, which build a view or a tuple per call; one of the usual shape is written
inside the batch loop in one join: ids, kind and times packed by ``struct``, its attributes as whole
Attributes fields from one C-level pass over a cache whose misses (a new path or client address)
are written as the key's prefix for the value's length plus its bytes; a key whose values do not
repeat (they filled a quarter of the cache) is no longer kept in it. The batch is joined once.

The exporters keep the official transport, retry, size limit and self-metrics:

- OTLP/HTTP: :class:`FastOTLPSpanExporter` subclasses the official HTTP span exporter and replaces
  only ``export``, whose body is the official one with ``encode_spans(spans).SerializePartialToString()``
  replaced by our bytes. The official class offers no serialisation seam (the encoder is a module
  global called inside ``export``), and replacing that global would change every exporter in the
  process; so the override uses the three attributes the official ``export`` itself uses
  (``_metrics.export_operation``, ``_max_request_size`` and ``_client.export``, which does the
  retries). When any of them is missing (another exporter version), the official ``export`` runs.
- OTLP/gRPC (otel_monitor.telemetry._otlp_grpc, imported only when configured): ``FastGrpcOTLPSpanExporter``
  overrides the exporter mixin's two extension points,
  ``_translate_data`` (abstract, meant to be implemented: it returns our bytes) and
  ``_initialize_channel_and_stub`` (builds the stub on the mixin's channel, also on reconnect): the
  stub is the official method path with an identity request serialiser, so gRPC sends the
  pre-encoded bytes and the mixin's retry, backoff, reconnect and metrics run unchanged.

The ``otlp_traces_encoder`` setting ("fast", default, or "official") chooses between them.
"""

from __future__ import annotations

import logging
import operator
import struct
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

from ..request._server_span import ServerSpan

if TYPE_CHECKING:
    import requests
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, Status

_logger = logging.getLogger("otel_monitor")

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_UINT64_MASK = (1 << 64) - 1
_SMALL = [bytes((n,)) for n in range(128)]

# wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; a tag is (field << 3) | type
_LEN, _VARINT, _FIXED64, _FIXED32 = 2, 0, 1, 5


def _tag(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    n = len(payload)
    return tag + (_SMALL[n] if n < 128 else _varint(n)) + payload


# AnyValue: 1 string, 2 bool, 3 int64, 4 double, 5 array, 6 kvlist, 7 bytes (a oneof: always written)
_ANY_STRING, _ANY_BOOL, _ANY_INT = _tag(1, _LEN), _tag(2, _VARINT), _tag(3, _VARINT)
_ANY_DOUBLE, _ANY_ARRAY, _ANY_KVLIST, _ANY_BYTES = _tag(4, _FIXED64), _tag(5, _LEN), _tag(6, _LEN), _tag(7, _LEN)
_ANY_TRUE, _ANY_FALSE = _ANY_BOOL + b"\x01", _ANY_BOOL + b"\x00"
_F1_LEN, _F2_LEN, _F3_LEN, _F4_LEN = _tag(1, _LEN), _tag(2, _LEN), _tag(3, _LEN), _tag(4, _LEN)
# Span fields
_S_TRACE_ID, _S_SPAN_ID, _S_TRACE_STATE, _S_PARENT = _tag(1, _LEN), _tag(2, _LEN), _tag(3, _LEN), _tag(4, _LEN)
_S_NAME, _S_KIND, _S_START, _S_END = _tag(5, _LEN), _tag(6, _VARINT), _tag(7, _FIXED64), _tag(8, _FIXED64)
_S_ATTR, _S_DROPPED_ATTR, _S_EVENT, _S_DROPPED_EVENTS = (
    _tag(9, _LEN),
    _tag(10, _VARINT),
    _tag(11, _LEN),
    _tag(12, _VARINT),
)
_S_LINK, _S_DROPPED_LINKS, _S_STATUS, _S_FLAGS = _tag(13, _LEN), _tag(14, _VARINT), _tag(15, _LEN), _tag(16, _FIXED32)
# Event: 1 time fixed64, 2 name, 3 attributes, 4 dropped; Link: 1 trace id, 2 span id, 4 attributes, 5 dropped, 6 flags
_E_TIME, _E_DROPPED = _tag(1, _FIXED64), _tag(4, _VARINT)
_L_DROPPED, _L_FLAGS = _tag(5, _VARINT), _tag(6, _FIXED32)
# Status: 2 message, 3 code
_ST_MESSAGE, _ST_CODE = _tag(2, _LEN), _tag(3, _VARINT)
_FLAGS_LOCAL = _S_FLAGS + _pack_fixed32(0x100)  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_FLAGS_REMOTE = _S_FLAGS + _pack_fixed32(0x300)  # ... | SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_LINK_FLAGS_LOCAL, _LINK_FLAGS_REMOTE = _L_FLAGS + _pack_fixed32(0x100), _L_FLAGS + _pack_fixed32(0x300)
# SpanKind.INTERNAL..CONSUMER (0..4 in the API) are SPAN_KIND_INTERNAL..CONSUMER (1..5) in OTLP
_KINDS = [_S_KIND + _SMALL[n + 1] for n in range(5)]


def _str(tag: bytes, value: str) -> bytes:
    return _delimited(tag, value.encode("utf-8"))


def _int64(value: int) -> bytes:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"Value out of range: {value}")
    return _varint(value & _UINT64_MASK)


def _any_value(value: object) -> bytes:
    """The AnyValue message body, as the official ``_encode_value`` chooses the variant."""
    kind = type(value)
    if kind is str:
        return _str(_ANY_STRING, value)  # type: ignore[arg-type]
    if kind is bool:
        return _ANY_TRUE if value else _ANY_FALSE
    if kind is int:
        return _ANY_INT + _int64(value)  # type: ignore[arg-type]
    if kind is float:
        return _ANY_DOUBLE + _pack_double(value)
    # the general case, in the official order (bool before int: bool is an int)
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_TRUE if value else _ANY_FALSE
    if isinstance(value, str):
        return _str(_ANY_STRING, value)
    if isinstance(value, int):
        return _ANY_INT + _int64(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _delimited(_ANY_BYTES, value)
    if isinstance(value, Sequence):
        return _delimited(_ANY_ARRAY, b"".join([_delimited(_F1_LEN, _any_value(item)) for item in value]))
    if isinstance(value, Mapping):
        pairs = [_delimited(_F1_LEN, _key_value(str(key), item)) for key, item in value.items()]
        return _delimited(_ANY_KVLIST, b"".join(pairs))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: object) -> bytes:
    encoded_key = key.encode("utf-8")
    head = _delimited(_F1_LEN, encoded_key) if encoded_key else b""
    return head + _delimited(_F2_LEN, _any_value(value))


#: (key, value) -> the KeyValue message after its field tag (its length, then its body), for a str
#: key and a value of type str or int: most attributes of a service's spans repeat (method, route,
#: status code, server address, user agent...). An attribute item is its own dict key: a whole
#: span's attributes are looked up in one C-level pass, once their values' types are known to be only
#: these two (``True == 1 == 1.0``: a bool or float must never be answered an int's bytes).
_ITEMS: dict[tuple[str, str | int], bytes] = {}
_CACHED_TYPES = frozenset((str, int))
#: entries kept; a full cache is cleared (the repeating attributes come back at once)
_ITEMS_BOUND = 4096


def _item(item: tuple[object, object]) -> bytes:
    """One attribute's KeyValue after its tag (b"": it cannot be encoded, which is logged)."""
    key, value = item
    cacheable = type(value) in _CACHED_TYPES and type(key) is str
    if cacheable:
        known = _ITEMS.get(item)  # type: ignore[arg-type]
        if known is not None:
            return known
    try:
        body = _delimited(b"", _key_value(key, value))  # type: ignore[arg-type]  # a non-str key raises
    except Exception as error:
        _logger.exception("Failed to encode key %s: %s", key, error)
        return b""
    if cacheable:
        if len(_ITEMS) >= _ITEMS_BOUND:
            _ITEMS.clear()
        _ITEMS[item] = body  # type: ignore[index]
    return body


def _attributes(tag: bytes, attributes: Mapping[str, object] | None) -> bytes:
    """Each attribute as a repeated KeyValue field; one that cannot be encoded is logged and skipped."""
    if not attributes:
        return b""
    # The SDK's attributes (a read-only view of BoundedAttributes) iterate through the Mapping ABC,
    # a Python call per key; their public copy() is one C-level dict copy.
    copy = getattr(attributes, "copy", None)
    return _dict_attributes(tag, copy() if copy is not None else attributes)


def _dict_attributes(tag: bytes, attributes: Mapping[str, object]) -> bytes:
    """:func:`_attributes` of a mapping that does not change while it is read (a dict, a copy)."""
    if _CACHED_TYPES.issuperset(map(type, attributes.values())):
        # (the items iterator hands each lookup the tuple it reuses: no tuple per attribute)
        bodies = list(map(_ITEMS.get, attributes.items()))  # type: ignore[arg-type]
        if all(bodies):  # no None (a cached body is never empty: it starts with its length)
            return tag + tag.join(bodies)  # type: ignore[arg-type]
    return b"".join([tag + body for body in map(_item, list(attributes.items())) if body])


def _uint(tag: bytes, value: int | None) -> bytes:
    return tag + _varint(value) if value else b""


def _fixed64(tag: bytes, value: int | None) -> bytes:
    return tag + _pack_fixed64(value) if value else b""


_TRACE_ID_HEAD, _SPAN_ID_HEAD, _PARENT_HEAD = _S_TRACE_ID + b"\x10", _S_SPAN_ID + b"\x08", _S_PARENT + b"\x08"
_LINK_TRACE_HEAD, _LINK_SPAN_HEAD = _F1_LEN + b"\x10", _F2_LEN + b"\x08"
#: start and end time (fields 7 and 8, fixed64) in one call, for a span that has both
_pack_times = struct.Struct("<BQBQ").pack
_START_TAG, _END_TAG = _S_START[0], _S_END[0]
#: Status messages without a description, by code (UNSET, OK, ERROR)
_STATUS_BY_CODE = [
    _S_STATUS + b"\x00",
    _S_STATUS + b"\x02" + _ST_CODE + b"\x01",
    _S_STATUS + b"\x02" + _ST_CODE + b"\x02",
]
_STATUS_UNSET = _STATUS_BY_CODE[0]
_UNSET, _SERVER = StatusCode.UNSET, SpanKind.SERVER
_SERVER_KIND = _KINDS[_SERVER.value]
#: span name -> its Name field (names repeat: a route's spans share one); cleared when full
_NAMES: dict[str, bytes] = {}


def _context_fields_reader() -> Callable[[SpanContext], tuple[int, int, bool, TraceState]]:
    """``(trace_id, span_id, is_remote, trace_state)`` of a ``SpanContext``: read as one C-level
    ``itemgetter`` from the tuple it is when its layout is the known one (checked here against its
    properties, each a Python call), else through the properties."""

    def by_property(context: SpanContext) -> tuple[int, int, bool, TraceState]:
        return context.trace_id, context.span_id, context.is_remote, context.trace_state

    probe = SpanContext(0x5A, 0x6B, True, TraceFlags(1), TraceState([("k", "v")]))
    by_index = operator.itemgetter(0, 1, 2, 4)
    try:
        got, want = by_index(probe), by_property(probe)
        known = isinstance(probe, tuple) and all(type(a) is type(b) and a == b for a, b in zip(got, want, strict=True))
    except (IndexError, TypeError, ValueError):
        known = False
    return by_index if known else by_property


_context_fields = _context_fields_reader()
#: id(status) -> (the status, its Status field): most spans share a few Status objects (the request
#: span's UNSET is one object); held, so an id is not reused while it is here; cleared when full
_STATUSES: dict[int, tuple[Status, bytes]] = {}


def _status(status: Status) -> bytes:
    known = _STATUSES.get(id(status))
    if known is not None and known[0] is status:
        return known[1]
    code = status.status_code
    description = status.description
    if description:
        body = [_str(_ST_MESSAGE, description)]
        if code is not _UNSET:
            body.append(_ST_CODE + _varint(code.value))
        field = _delimited(_S_STATUS, b"".join(body))
    else:
        field = _STATUS_UNSET if code is _UNSET else _STATUS_BY_CODE[code.value]
    if len(_STATUSES) >= 64:
        _STATUSES.clear()
    _STATUSES[id(status)] = (status, field)
    return field


#: attribute key -> the KeyValue's key field (tag, length, UTF-8) and the value's tag: for the
#: values that do not repeat (a path, a client address), written without the general path's calls
_KEY_HEADS: dict[str, bytes] = {}
#: a string AnyValue of n UTF-8 bytes (n < 126: its lengths one byte each), after the value's tag:
#: the AnyValue's length, the string's tag and length
_STRING_HEADS = [bytes((n + 2, _ANY_STRING[0], n)) for n in range(126)]
#: the span's Attributes tag with a KeyValue length (n < 2048), and the Span field's tag with a span
#: length (n < 4096): a request span and its attributes are this long
_ATTR_HEADS = [_S_ATTR + _varint(n) for n in range(2048)]
_SPAN_HEADS = [_F2_LEN + _varint(n) for n in range(4096)]
#: the head of a span: trace id and span id fields (tags, lengths, big-endian ids), with the parent
#: span id field; the ids as 64-bit halves
_pack_ids = struct.Struct(">HQQHQ").pack
_pack_ids_parent = struct.Struct(">HQQHQHQ").pack
_TRACE_HEAD16 = int.from_bytes(_TRACE_ID_HEAD, "big")
_SPAN_HEAD16 = int.from_bytes(_SPAN_ID_HEAD, "big")
_PARENT_HEAD16 = int.from_bytes(_PARENT_HEAD, "big")
#: the Kind field (tag and value as one little-endian 16-bit number) and both times
_pack_kind_times = struct.Struct("<HBQBQ").pack
_KIND_HEADS = [int.from_bytes(field, "little") for field in _KINDS]
_SERVER_HEAD = _KIND_HEADS[_SERVER.value]


def _key_head(key: str) -> bytes:
    """The KeyValue's key field and its value's tag (:data:`_KEY_HEADS`; a key that is not valid
    UTF-8 raises UnicodeEncodeError)."""
    raw = key.encode("utf-8")
    head = (_delimited(_F1_LEN, raw) if raw else b"") + _F2_LEN
    if len(_KEY_HEADS) >= _ITEMS_BOUND:
        _KEY_HEADS.clear()
    _KEY_HEADS[key] = head
    return head


def _attribute_field(key: str, value: object) -> bytes:
    """An attribute as a whole Attributes field of a span (b"": it cannot be encoded, which is logged)."""
    if type(value) is str and type(key) is str:
        # (a value that does not repeat, as a path or a client address: written here in one join)
        try:
            head = _KEY_HEADS.get(key) or _key_head(key)
            raw = value.encode("utf-8")
        except UnicodeEncodeError:  # (the general path logs it)
            raw = head = b"-" * 126
        n = len(raw)
        if n < 126 and len(head) < 64:  # (longer: the general path)
            return b"".join((_ATTR_HEADS[len(head) + n + 3], head, _STRING_HEADS[n], raw))
    body = _item((key, value))
    return _S_ATTR + body if body else b""


class _AttributeFields(dict[tuple[str, "str | int"], bytes]):
    """(key, value) -> the attribute's whole Attributes field in a span (its tag, length and
    KeyValue), for a str key and a str or int value: a span's attributes are looked up in one
    C-level pass, a miss written by :meth:`__missing__` (and kept) within that pass. Only for
    attributes whose values were checked to be str or int: ``True == 1 == 1.0``, and a bool or
    float must never be answered an int's bytes. Cleared when full (the repeating attributes come
    back at once)."""

    def __missing__(self, item: tuple[str, str | int]) -> bytes:
        key, value = item
        prefixes = _PREFIXES.get(key) if type(value) is str else None
        try:
            raw = value.encode() if prefixes is not None else None  # type: ignore[union-attr]
        except UnicodeEncodeError:  # (the general path logs it)
            raw = None
        if raw is not None and len(raw) < 126:
            # (a value that does not repeat, as a path or a client address: one concatenation)
            field = (prefixes[len(raw)] or _prefix(key, len(raw))) + raw  # type: ignore[index]
            if key in _UNREPEATED:
                return field
        else:
            field = _attribute_field(key, value)
            if not field or type(key) is not str or type(value) not in _CACHED_TYPES or key in _UNREPEATED:
                return field
            if type(value) is str and key not in _PREFIXES and len(_PREFIXES) < 64:
                _PREFIXES[key] = [b""] * 126  # (the key's next new values take the line above)
        if len(self) >= _ITEMS_BOUND:
            self._forget()
            if key in _UNREPEATED:
                return field
        self[item] = field  # (the items iterator makes a new tuple while this one is held)
        return field

    def _forget(self) -> None:
        """Empty the full cache; a key that filled a quarter of it with its values (a path, a client
        address: values that seldom repeat) has its values no longer kept (:data:`_UNREPEATED`)."""
        counts = Counter([key for key, _ in list(self)])  # (a copy in one C call: another encoding thread may add)
        for key, count in counts.most_common(4):
            if count >= _ITEMS_BOUND // 4 and len(_UNREPEATED) < 64:
                _UNREPEATED.add(key)
        self.clear()


#: attribute key -> the Attributes field's head for a str value of n UTF-8 bytes (n < 126): its
#: tag, length, key field, value tag, AnyValue length, string tag and length (b"": not made yet);
#: the keys (at most 64) whose str values missed the cache once
_PREFIXES: dict[str, list[bytes]] = {}
#: keys (at most 64) whose values are written anew each time, not kept: they filled a quarter of
#: the cache (each kept value costs a tuple, an insertion and its share of the next clearing)
_UNREPEATED: set[str] = set()


def _prefix(key: str, n: int) -> bytes:
    """The head of key's Attributes field for a str value of n UTF-8 bytes (kept in :data:`_PREFIXES`)."""
    head = _KEY_HEADS.get(key) or _key_head(key)
    size = len(head) + n + 3  # the KeyValue's length
    prefix = b"".join((_ATTR_HEADS[size] if size < 2048 else _S_ATTR + _varint(size), head, _STRING_HEADS[n]))
    _PREFIXES[key][n] = prefix
    return prefix


_SPAN_FIELDS = _AttributeFields()
_span_field = _SPAN_FIELDS.__getitem__


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message body (fields in field-number order, defaults omitted, as protobuf writes)."""
    attributes: bytes
    if type(span) is ServerSpan:
        # The request span (most spans of a service): its fields read directly, not through the
        # ReadableSpan properties (each builds a view or a tuple). It no longer changes once ended.
        context: SpanContext | None = span.context
        parent, name, kind = span.parent, span.name, span.kind
        start: int | None = span.start_time
        end, status = span.end_time, span.status
        own = span._attributes
        attributes = _dict_attributes(_S_ATTR, own) if own else b""
        events: Sequence[Event] = span._events
        links: Sequence[Link] = span._links
        dropped_attributes = span._dropped_attributes
        dropped_events, dropped_links = span._dropped_events, span._dropped_links
    else:
        context = span.get_span_context()
        parent, name, kind = span.parent, span.name, span.kind
        start, end, status = span.start_time, span.end_time, span.status
        attributes = _attributes(_S_ATTR, span.attributes)
        events, links = span.events, span.links
        dropped_attributes = span.dropped_attributes
        dropped_events, dropped_links = span.dropped_events, span.dropped_links
    if context is None:
        raise ValueError(f"span {name!r} has no span context")
    trace_id, span_id, _, trace_state = _context_fields(context)
    parts = [_TRACE_ID_HEAD, trace_id.to_bytes(16, "big"), _SPAN_ID_HEAD, span_id.to_bytes(8, "big")]
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        joined = ",".join([f"{key}={value}" for key, value in trace_state.items()])
        if joined:
            parts.append(_str(_S_TRACE_STATE, joined))
    parent_remote = False
    if parent is not None:
        _, parent_span_id, parent_remote, _ = _context_fields(parent)
        parts.append(_PARENT_HEAD)
        parts.append(parent_span_id.to_bytes(8, "big"))
    if name:
        field = _NAMES.get(name)
        if field is None:
            field = _str(_S_NAME, name)
            if type(name) is str:
                if len(_NAMES) >= _ITEMS_BOUND:
                    _NAMES.clear()
                _NAMES[name] = field
        parts.append(field)
    parts.append(_SERVER_KIND if kind is _SERVER else _KINDS[kind.value])
    if start and end:
        parts.append(_pack_times(_START_TAG, start, _END_TAG, end))
    elif start:
        parts.append(_S_START + _pack_fixed64(start))
    elif end:
        parts.append(_S_END + _pack_fixed64(end))
    parts.append(attributes)
    if dropped_attributes:
        parts.append(_S_DROPPED_ATTR + _varint(dropped_attributes))
    if events:
        for event in events:
            body = [_fixed64(_E_TIME, event.timestamp)]
            if event.name:
                body.append(_str(_F2_LEN, event.name))
            body.append(_attributes(_F3_LEN, event.attributes))
            body.append(_uint(_E_DROPPED, event.dropped_attributes))
            parts.append(_delimited(_S_EVENT, b"".join(body)))
    if dropped_events:
        parts.append(_S_DROPPED_EVENTS + _varint(dropped_events))
    if links:
        for link in links:
            linked = link.context
            body = [
                _LINK_TRACE_HEAD,
                linked.trace_id.to_bytes(16, "big"),
                _LINK_SPAN_HEAD,
                linked.span_id.to_bytes(8, "big"),
                _attributes(_F4_LEN, link.attributes),
                _uint(_L_DROPPED, link.dropped_attributes),
                _LINK_FLAGS_REMOTE if linked.is_remote else _LINK_FLAGS_LOCAL,
            ]
            parts.append(_delimited(_S_LINK, b"".join(body)))
    if dropped_links:
        parts.append(_S_DROPPED_LINKS + _varint(dropped_links))
    if status is not None:
        parts.append(_status(status))
    parts.append(_FLAGS_REMOTE if parent_remote else _FLAGS_LOCAL)
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    parts = [_str(_F1_LEN, scope.name) if scope.name else b""]
    if scope.version:
        parts.append(_str(_F2_LEN, scope.version))
    parts.append(_attributes(_F3_LEN, scope.attributes))
    return b"".join(parts)


_NO_SCOPE = object()  # no span's scope: the first span always looks its group up


class SpanEncoder:
    """Encodes batches of spans; remembers the encoding of the (few, immutable) resources seen."""

    def __init__(self) -> None:
        # id(resource) -> (resource, its Resource message body): the resource is held, so the id
        # cannot be reused by another object while it is here
        self._resources: dict[int, tuple[Resource, bytes]] = {}

    def _resource(self, resource: Resource) -> bytes:
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        encoded = _attributes(_F1_LEN, resource.attributes)
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, encoded)
        return encoded

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The serialised ``ExportTraceServiceRequest`` for ``spans``."""
        # Group as the official encoder does (by equal resource, then by equal scope, first seen
        # first), comparing each distinct object once rather than hashing every span's resource;
        # consecutive spans of one resource and scope (the usual batch) skip even that.
        groups: list[tuple[Resource, list[tuple[InstrumentationScope | None, list[bytes]]]]] = []
        by_resource: dict[int, list[tuple[InstrumentationScope | None, list[bytes]]]] = {}
        by_scope: dict[tuple[int, int], list[bytes]] = {}
        last_resource: object = None
        last_scope: object = _NO_SCOPE
        encoded: list[bytes] = []
        # the status seen last (spans share a few Status objects) and its Status field with the
        # Flags field, for a local and a remote parent
        last_status: object = None
        tail_local = tail_remote = b""
        for span in spans:
            body: bytes | None = None
            if type(span) is ServerSpan:  # its own fields (ReadableSpan's properties are Python calls)
                resource, scope = span._resource, span._instrumentation_scope or None
                # A request span of the usual shape (a name seen before, no trace state, events,
                # links or drops, both times set), written here in one join; any other: encode_span.
                trace_id, span_id, _, trace_state = _context_fields(span.context)
                name = _NAMES.get(span.name)
                start, end, status = span.start_time, span.end_time, span.status
                if not (
                    name is None
                    or not (start and end)
                    or status is None
                    or (trace_state is not DEFAULT_TRACE_STATE and trace_state)
                    or span._events
                    or span._links
                    or span._dropped_attributes
                    or span._dropped_events
                    or span._dropped_links
                ):
                    if status is not last_status:
                        last_status, status_field = status, _status(status)
                        tail_local, tail_remote = status_field + _FLAGS_LOCAL, status_field + _FLAGS_REMOTE
                    kind = span.kind
                    times = _pack_kind_times(
                        _SERVER_HEAD if kind is _SERVER else _KIND_HEADS[kind.value], _START_TAG, start, _END_TAG, end
                    )
                    parent = span.parent
                    if parent is None:
                        ids = _pack_ids(_TRACE_HEAD16, trace_id >> 64, trace_id & _UINT64_MASK, _SPAN_HEAD16, span_id)
                        tail = tail_local
                    else:
                        _, parent_id, remote, _ = _context_fields(parent)
                        ids = _pack_ids_parent(
                            _TRACE_HEAD16,
                            trace_id >> 64,
                            trace_id & _UINT64_MASK,
                            _SPAN_HEAD16,
                            span_id,
                            _PARENT_HEAD16,
                            parent_id,
                        )
                        tail = tail_remote if remote else tail_local
                    own = span._attributes
                    # (values known to be str or int: the span says so, else checked here)
                    if span.plain_values or _CACHED_TYPES.issuperset(map(type, own.values())):
                        body = b"".join([ids, name, times, *map(_span_field, own.items()), tail])  # type: ignore[arg-type]
                    else:  # (a bool, float or array value: never answered from the cache)
                        fields = [_attribute_field(key, value) for key, value in list(own.items())]
                        body = b"".join([ids, name, times, *fields, tail])
            else:
                resource, scope = span.resource, span.instrumentation_scope or None
            if resource is not last_resource or scope is not last_scope:
                last_resource, last_scope = resource, scope
                scopes = by_resource.get(id(resource))
                if scopes is None:
                    scopes = next((group for known, group in groups if known == resource), None)
                    if scopes is None:
                        scopes = []
                        groups.append((resource, scopes))
                    by_resource[id(resource)] = scopes
                key = (id(scopes), id(scope))
                found = by_scope.get(key)
                if found is None:
                    found = next((group for known, group in scopes if known == scope), None)
                    if found is None:
                        found = []
                        scopes.append((scope, found))
                    by_scope[key] = found
                encoded = found
            if body is None:
                body = encode_span(span)
            n = len(body)
            # the span's tag and length (a request span: well below 4,096 bytes)
            encoded += (_SPAN_HEADS[n] if n < 4096 else _F2_LEN + _varint(n), body)
        # Each message's length is the sum of its parts' lengths: the parts are joined once, at the end.
        out: list[bytes] = []
        for resource, scopes in groups:
            body_parts = [_delimited(_F1_LEN, self._resource(resource))]
            for scope, span_parts in scopes:
                scope_parts = [_delimited(_F1_LEN, _scope(scope)), *span_parts]
                if scope is not None and scope.schema_url:
                    scope_parts.append(_str(_F3_LEN, scope.schema_url))
                body_parts.append(_F2_LEN)
                body_parts.append(_varint(sum(map(len, scope_parts))))
                body_parts.extend(scope_parts)
            if resource.schema_url:
                body_parts.append(_str(_F3_LEN, resource.schema_url))
            out.append(_F1_LEN)
            out.append(_varint(sum(map(len, body_parts))))
            out.extend(body_parts)
        return b"".join(out)


class FastOTLPSpanExporter(_HttpSpanExporter):
    """The official OTLP/HTTP span exporter with :class:`SpanEncoder` serialising (see the module doc)."""

    def __init__(  # the official exporter's public arguments, in its order
        self,
        endpoint: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: Compression | None = None,
        session: requests.Session | None = None,
        *,
        max_request_size: int | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        super().__init__(
            endpoint,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            headers=headers,
            timeout=timeout,
            compression=compression,
            session=session,
            max_request_size=max_request_size,
            meter_provider=meter_provider,
        )
        self._encoder = SpanEncoder()
        self._fast = all(hasattr(self, name) for name in ("_metrics", "_client", "_max_request_size"))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._fast:
            return super().export(spans)
        if self._shutdown:
            _logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError

        with self._metrics.export_operation(len(spans)) as result:
            try:
                data = self._encoder.encode(spans)
            except Exception as error:  # noqa: BLE001 - as the official export: a failed batch, not a raise
                _logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            limit = self._max_request_size
            if limit > 0 and len(data) > limit:
                _logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.", len(data), limit
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(data)} bytes exceeds max_request_size {limit} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {"http.response.status_code": sent.status_code} if sent.status_code is not None else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
