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
The resource (the same object for every span of a process) is encoded once and cached.

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
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext

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


#: (key, value, type) -> the KeyValue message body, for scalar values: most attributes of a service's
#: spans repeat (method, route, status code, server address...); cleared when it grows past its bound
_KEY_VALUES: dict[tuple[str, object, type], bytes] = {}
_KEY_VALUES_BOUND = 4096
_CACHED_TYPES = frozenset((str, bool, int, float))


def _attributes(tag: bytes, attributes: Mapping[str, object] | None) -> bytes:
    """Each attribute as a repeated KeyValue field; one that cannot be encoded is logged and skipped."""
    if not attributes:
        return b""
    parts = []
    cache = _KEY_VALUES
    # The SDK's attributes (a read-only view of BoundedAttributes) iterate through the Mapping ABC,
    # a Python call per key; their public copy() is one C-level dict copy.
    copy = getattr(attributes, "copy", None)
    items = copy() if copy is not None else attributes
    for key, value in items.items():
        kind = type(value)
        cacheable = kind in _CACHED_TYPES and type(key) is str
        if cacheable:
            body = cache.get((key, value, kind))
            if body is not None:
                parts.append(tag)
                parts.append(body)
                continue
        try:
            body = _delimited(b"", _key_value(key, value))
        except Exception as error:
            _logger.exception("Failed to encode key %s: %s", key, error)
            continue
        if cacheable:
            if len(cache) >= _KEY_VALUES_BOUND:
                cache.clear()
            cache[(key, value, kind)] = body
        parts.append(tag)
        parts.append(body)
    return b"".join(parts)


def _uint(tag: bytes, value: int | None) -> bytes:
    return tag + _varint(value) if value else b""


def _fixed64(tag: bytes, value: int | None) -> bytes:
    return tag + _pack_fixed64(value) if value else b""


_TRACE_ID_HEAD, _SPAN_ID_HEAD, _PARENT_HEAD = _S_TRACE_ID + b"\x10", _S_SPAN_ID + b"\x08", _S_PARENT + b"\x08"
_LINK_TRACE_HEAD, _LINK_SPAN_HEAD = _F1_LEN + b"\x10", _F2_LEN + b"\x08"
#: Status messages without a description, by code (UNSET, OK, ERROR)
_STATUS_BY_CODE = [
    _S_STATUS + b"\x00",
    _S_STATUS + b"\x02" + _ST_CODE + b"\x01",
    _S_STATUS + b"\x02" + _ST_CODE + b"\x02",
]


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message body (fields in field-number order, defaults omitted, as protobuf writes)."""
    context = span.get_span_context()
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    parent: SpanContext | None = span.parent
    parts = [_TRACE_ID_HEAD, context.trace_id.to_bytes(16, "big"), _SPAN_ID_HEAD, context.span_id.to_bytes(8, "big")]
    trace_state = context.trace_state
    if trace_state:
        joined = ",".join([f"{key}={value}" for key, value in trace_state.items()])
        if joined:
            parts.append(_str(_S_TRACE_STATE, joined))
    if parent is not None:
        parts.append(_PARENT_HEAD)
        parts.append(parent.span_id.to_bytes(8, "big"))
    name = span.name
    if name:
        parts.append(_str(_S_NAME, name))
    parts.append(_KINDS[span.kind.value])
    if span.start_time:
        parts.append(_S_START + _pack_fixed64(span.start_time))
    if span.end_time:
        parts.append(_S_END + _pack_fixed64(span.end_time))
    parts.append(_attributes(_S_ATTR, span.attributes))
    if dropped := span.dropped_attributes:
        parts.append(_S_DROPPED_ATTR + _varint(dropped))
    events = span.events
    if events:
        for event in events:
            body = [_fixed64(_E_TIME, event.timestamp)]
            if event.name:
                body.append(_str(_F2_LEN, event.name))
            body.append(_attributes(_F3_LEN, event.attributes))
            body.append(_uint(_E_DROPPED, event.dropped_attributes))
            parts.append(_delimited(_S_EVENT, b"".join(body)))
    if dropped := span.dropped_events:
        parts.append(_S_DROPPED_EVENTS + _varint(dropped))
    links = span.links
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
    if dropped := span.dropped_links:
        parts.append(_S_DROPPED_LINKS + _varint(dropped))
    status = span.status
    if status is not None:
        code = status.status_code.value
        description = status.description
        if description:
            body = [_str(_ST_MESSAGE, description)]
            if code:
                body.append(_ST_CODE + _varint(code))
            parts.append(_delimited(_S_STATUS, b"".join(body)))
        else:
            parts.append(_STATUS_BY_CODE[code])
    parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    parts = [_str(_F1_LEN, scope.name) if scope.name else b""]
    if scope.version:
        parts.append(_str(_F2_LEN, scope.version))
    parts.append(_attributes(_F3_LEN, scope.attributes))
    return b"".join(parts)


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
        # first), comparing each distinct object once rather than hashing every span's resource.
        groups: list[tuple[Resource, list[tuple[InstrumentationScope | None, list[bytes]]]]] = []
        by_resource: dict[int, list[tuple[InstrumentationScope | None, list[bytes]]]] = {}
        by_scope: dict[tuple[int, int], list[bytes]] = {}
        for span in spans:
            resource = span.resource
            scopes = by_resource.get(id(resource))
            if scopes is None:
                scopes = next((group for known, group in groups if known == resource), None)
                if scopes is None:
                    scopes = []
                    groups.append((resource, scopes))
                by_resource[id(resource)] = scopes
            scope = span.instrumentation_scope or None
            key = (id(scopes), id(scope))
            encoded = by_scope.get(key)
            if encoded is None:
                encoded = next((group for known, group in scopes if known == scope), None)
                if encoded is None:
                    encoded = []
                    scopes.append((scope, encoded))
                by_scope[key] = encoded
            encoded.append(encode_span(span))
        out = []
        for resource, scopes in groups:
            body = [_delimited(_F1_LEN, self._resource(resource))]
            for scope, encoded in scopes:
                scope_body = [_delimited(_F1_LEN, _scope(scope))]
                scope_body.extend([_delimited(_F2_LEN, span) for span in encoded])
                if scope is not None and scope.schema_url:
                    scope_body.append(_str(_F3_LEN, scope.schema_url))
                body.append(_delimited(_F2_LEN, b"".join(scope_body)))
            if resource.schema_url:
                body.append(_str(_F3_LEN, resource.schema_url))
            out.append(_delimited(_F1_LEN, b"".join(body)))
        return b"".join(out)


class FastOTLPSpanExporter(_HttpSpanExporter):
    """The official OTLP/HTTP span exporter with :class:`SpanEncoder` serialising (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # the official exporter's arguments
        super().__init__(*args, **kwargs)
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
