"""otel_monitor.telemetry._otlp_encode writes exactly the official encoder's bytes, and its exporters keep the
official transport (a real local HTTP sink and a real gRPC server receive the spans)."""

from __future__ import annotations

import http.server
import logging
import threading
from concurrent import futures

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as OfficialGrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as OfficialHttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_monitor.request._server_span import ServerSpan, ServerSpans, SpanProcessors
from otel_monitor.settings import resolve_settings
from otel_monitor.telemetry import _otlp_encode
from otel_monitor.telemetry._otlp_encode import FastOTLPSpanExporter, SpanEncoder
from otel_monitor.telemetry._otlp_grpc import FastGrpcOTLPSpanExporter
from otel_monitor.telemetry.pipeline import span_exporters

INT64 = st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=12)
primitives = st.one_of(texts, st.booleans(), INT64, st.floats(), st.binary(max_size=8))
arrays = st.one_of(
    st.lists(st.one_of(texts, st.none()), max_size=4).map(tuple),
    st.lists(st.booleans(), max_size=4).map(tuple),
    st.lists(INT64, max_size=4).map(tuple),
    st.lists(st.floats(), max_size=4),
)
values = st.recursive(
    st.one_of(primitives, arrays, st.none()),
    lambda inner: st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
attribute_dicts = st.dictionaries(texts, values, max_size=6)


@st.composite
def bounded_attributes(draw: st.DrawFn) -> BoundedAttributes | dict | None:
    """Plain dicts, None, or bounded attributes that dropped some (a dropped count to encode)."""
    attributes = draw(attribute_dicts)
    choice = draw(st.sampled_from(("dict", "none", "bounded")))
    if choice == "dict":
        return attributes
    if choice == "none":
        return None
    return BoundedAttributes(maxlen=draw(st.integers(0, 6)), attributes=attributes, immutable=False)


trace_ids = st.integers(1, 2**128 - 1)
span_ids = st.integers(1, 2**64 - 1)
times = st.one_of(st.none(), st.integers(0, 2**64 - 1))
trace_states = st.lists(
    st.tuples(st.sampled_from(("a", "vendor", "k1", "rojo")), st.sampled_from(("1", "00f067aa", "x"))),
    max_size=3,
    unique_by=lambda pair: pair[0],
).map(TraceState)


@st.composite
def contexts(draw: st.DrawFn) -> SpanContext:
    return SpanContext(
        draw(trace_ids),
        draw(span_ids),
        draw(st.booleans()),
        TraceFlags(draw(st.sampled_from((0, 1)))),
        draw(st.one_of(st.none(), trace_states)),
    )


def bounded(items: list, maxlen: int) -> BoundedList:
    result = BoundedList(maxlen)
    result.extend(items)
    return result


# Resources and scopes come from small pools that hold equal but distinct objects: the official
# encoder groups by equality, so ours must too.
RESOURCES = [
    Resource({"service.name": "a", "n": 1}),
    Resource({"service.name": "a", "n": 1}),
    Resource({"service.name": "b", "list": (1, 2)}, schema_url="https://opentelemetry.io/schemas/1.26.0"),
    Resource({}),
]
SCOPES = [
    None,
    InstrumentationScope("otel_monitor", "1.0", "https://opentelemetry.io/schemas/1.26.0"),
    InstrumentationScope("otel_monitor", "1.0", "https://opentelemetry.io/schemas/1.26.0"),
    InstrumentationScope("user", None, None, {"scope.attr": True}),
    InstrumentationScope("", "", ""),
]


@st.composite
def spans(draw: st.DrawFn) -> ReadableSpan:
    events = [
        Event(draw(texts), draw(bounded_attributes()), draw(st.integers(0, 2**64 - 1)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    links = [Link(draw(contexts()), draw(bounded_attributes())) for _ in range(draw(st.integers(0, 3)))]
    code = draw(st.sampled_from(list(StatusCode)))
    return ReadableSpan(
        name=draw(texts),
        context=draw(contexts()),
        parent=draw(st.one_of(st.none(), contexts())),
        resource=draw(st.sampled_from(RESOURCES)),
        attributes=draw(bounded_attributes()),
        events=bounded(events, draw(st.integers(0, 3))) if draw(st.booleans()) else tuple(events),
        links=bounded(links, draw(st.integers(0, 3))) if draw(st.booleans()) else tuple(links),
        kind=draw(st.sampled_from(list(SpanKind))),
        status=Status(code, draw(st.one_of(st.none(), texts)) if code is StatusCode.ERROR else None),
        start_time=draw(times),
        end_time=draw(times),
        instrumentation_scope=draw(st.sampled_from(SCOPES)),
    )


def official_bytes(batch: list[ReadableSpan]) -> bytes:
    return encode_spans(batch).SerializePartialToString()


@settings(suppress_health_check=[HealthCheck.too_slow])  # examples: the conftest profile
@given(st.lists(spans(), max_size=6))
def test_random_span_batches_encode_to_the_official_encoders_bytes(batch):
    logging.disable(logging.ERROR)  # values the official encoder cannot encode are logged by both
    try:
        assert SpanEncoder().encode(batch) == official_bytes(batch)
    finally:
        logging.disable(logging.NOTSET)


def test_a_value_that_cannot_be_encoded_skips_only_its_attribute_and_is_logged(caplog):
    span = ReadableSpan(
        "GET /",
        SpanContext(1, 2, False),
        resource=RESOURCES[0],
        attributes={"too.big": 2**63, "kept": 1, "bad.type": object()},
    )
    ours = SpanEncoder().encode([span])
    assert ours == official_bytes([span])
    decoded = trace_service_pb2.ExportTraceServiceRequest.FromString(ours)
    assert [kv.key for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes] == ["kept"]
    assert sum("Failed to encode key too.big" in r.getMessage() for r in caplog.records) == 2  # ours + official


def test_the_cached_resource_is_re_encoded_for_another_resource_object():
    encoder = SpanEncoder()
    first = ReadableSpan("a", SpanContext(1, 2, False), resource=RESOURCES[0])
    second = ReadableSpan("b", SpanContext(1, 3, False), resource=RESOURCES[2])
    assert encoder.encode([first]) == official_bytes([first])
    assert encoder.encode([second]) == official_bytes([second])
    assert encoder.encode([first, second, first]) == official_bytes([first, second, first])


def sample_batch(count: int = 5) -> list[ReadableSpan]:
    return [
        ReadableSpan(
            f"GET /items/{n}",
            SpanContext(0xABC + n, 0xDEF + n, False),
            parent=SpanContext(0xABC + n, 7, True),
            resource=RESOURCES[2],
            attributes={"http.request.method": "GET", "http.response.status_code": 200},
            kind=SpanKind.SERVER,
            start_time=1_700_000_000_000_000_000 + n,
            end_time=1_700_000_000_000_100_000 + n,
            instrumentation_scope=SCOPES[1],
        )
        for n in range(count)
    ]


class Sink:
    """A local OTLP/HTTP receiver: records each request body; answers with the next status."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.bodies.append(body)
                status = sink.statuses.pop(0) if sink.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    receiver = Sink()
    yield receiver
    receiver.close()


def test_the_http_exporter_posts_the_official_bytes_to_the_endpoint(sink):
    batch = sample_batch()
    exporter = FastOTLPSpanExporter(endpoint=sink.url, timeout=5)
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    official = OfficialHttpExporter(endpoint=sink.url, timeout=5)
    assert official.export(batch) is SpanExportResult.SUCCESS
    assert sink.bodies[0] == sink.bodies[1] == official_bytes(batch)


def test_the_http_exporter_keeps_the_official_retry_on_a_retryable_status(sink):
    sink.statuses = [503]
    exporter = FastOTLPSpanExporter(endpoint=sink.url, timeout=10)
    assert exporter.export(sample_batch(2)) is SpanExportResult.SUCCESS
    assert len(sink.bodies) == 2 and sink.bodies[0] == sink.bodies[1] == official_bytes(sample_batch(2))


def test_the_http_exporter_reports_a_rejected_batch_as_a_failure(sink):
    sink.statuses = [400]
    exporter = FastOTLPSpanExporter(endpoint=sink.url, timeout=5)
    assert exporter.export(sample_batch(2)) is SpanExportResult.FAILURE
    assert len(sink.bodies) == 1


def test_the_http_exporter_drops_a_batch_over_the_request_size_limit_without_sending(sink):
    exporter = FastOTLPSpanExporter(endpoint=sink.url, timeout=5, max_request_size=100)
    assert exporter.export(sample_batch(5)) is SpanExportResult.FAILURE
    assert sink.bodies == []


def test_the_http_exporter_refuses_batches_after_shutdown(sink):
    exporter = FastOTLPSpanExporter(endpoint=sink.url, timeout=5)
    exporter.shutdown()
    assert exporter.export(sample_batch(1)) is SpanExportResult.FAILURE
    assert sink.bodies == []


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_the_grpc_exporter_sends_the_official_request_to_a_real_grpc_server():
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        batch = sample_batch()
        ours = FastGrpcOTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10)
        official = OfficialGrpcExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10)
        assert ours.export(batch) is SpanExportResult.SUCCESS
        assert official.export(batch) is SpanExportResult.SUCCESS
        ours.shutdown()
        official.shutdown()
    finally:
        server.stop(None)
    assert len(collector.requests) == 2
    assert collector.requests[0] == collector.requests[1] == encode_spans(batch)


@pytest.mark.parametrize(
    ("protocol", "encoder", "expected"),
    [
        ("http/protobuf", None, FastOTLPSpanExporter),
        ("grpc", None, FastGrpcOTLPSpanExporter),
        ("http/protobuf", "official", OfficialHttpExporter),
        ("grpc", "official", OfficialGrpcExporter),
    ],
)
def test_the_pipeline_builds_the_fast_exporters_unless_the_official_encoder_is_chosen(protocol, encoder, expected):
    options = {"otlp_endpoint": "http://127.0.0.1:4318", "otlp_protocol": protocol}
    if encoder is not None:
        options["otlp_traces_encoder"] = encoder
    (exporter,) = span_exporters(resolve_settings(options, environ={}))
    assert type(exporter) is expected
    exporter.shutdown()


def test_equal_values_of_another_type_are_not_answered_from_the_attribute_cache():
    # True == 1 == 1.0 as dict keys: each must keep its own AnyValue (bool, int, double, string).
    values = [1, True, 1.0, "1", 0, False, 0.0, 2, 2.0, "x", "x"]
    batch = [
        ReadableSpan(f"s{n}", SpanContext(1, n + 1, False), resource=RESOURCES[0], attributes={"k": value, "n": 7})
        for n, value in enumerate(values)
    ]
    encoder = SpanEncoder()
    for span in batch + batch[::-1]:
        assert encoder.encode([span]) == official_bytes([span])
    assert encoder.encode(batch) == official_bytes(batch)


class CountingIds(IdGenerator):
    """Distinct ids without the random module (hypothesis draws everything else)."""

    def __init__(self) -> None:
        self.last = 0

    def generate_span_id(self) -> int:
        self.last += 1
        return self.last

    def generate_trace_id(self) -> int:
        self.last += 1
        return (self.last << 64) | 0xABC


def light_spans() -> SearchStrategy[ServerSpan]:
    """Request spans in the light structure, written through its API (values cleaned as the SDK does)."""
    factory = ServerSpans(
        SpanProcessors(),
        RESOURCES[0],
        CountingIds(),
        ALWAYS_ON,
        SpanLimits(max_attributes=8, max_events=2, max_links=2),
        SCOPES[1],
        "always_on",
    )
    own_values = st.one_of(texts, st.integers(-(2**63), 2**63 - 1))

    @st.composite
    def build(draw: st.DrawFn) -> ServerSpan:
        parent = draw(st.one_of(st.none(), contexts()))
        span = factory.start(
            draw(texts), None, draw(st.sampled_from(list(SpanKind))), draw(st.integers(1, 2**63)), parent
        )
        assert type(span) is ServerSpan
        span.set_own(draw(st.dictionaries(texts, own_values, max_size=6)))
        span.set_attributes(draw(st.dictionaries(texts, st.one_of(primitives, arrays), max_size=4)))
        for _ in range(draw(st.integers(0, 3))):
            span.add_event(draw(texts), draw(st.dictionaries(texts, primitives, max_size=3)), draw(times))
        for _ in range(draw(st.integers(0, 3))):
            span.add_link(draw(contexts()), draw(st.dictionaries(texts, primitives, max_size=2)))
        if draw(st.booleans()):
            span.update_name(draw(texts))
        code = draw(st.sampled_from(list(StatusCode)))
        span.set_status(Status(code, draw(st.one_of(st.none(), texts)) if code is StatusCode.ERROR else None))
        span.end(draw(st.one_of(st.none(), st.integers(2**63 + 1, 2**64 - 1))))
        return span

    return build()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(light_spans(), max_size=5))
def test_random_light_request_spans_encode_to_the_official_encoders_bytes(batch):
    # The encoder reads the light span's fields directly (not through ReadableSpan's properties).
    logging.disable(logging.ERROR)
    try:
        assert SpanEncoder().encode(batch) == official_bytes(batch)
        # again, once their names are known: the usual shape (no events, links, drops or trace
        # state) is then written inside the batch loop
        assert SpanEncoder().encode(batch) == official_bytes(batch)
    finally:
        logging.disable(logging.NOTSET)


def general_path_refused(span: ReadableSpan) -> bytes:
    raise AssertionError(f"{span.name!r} took the general path")


@pytest.mark.parametrize("parent", [None, SpanContext(0x1F, 0x2E, True, TraceFlags(1))], ids=["root", "remote-parent"])
@pytest.mark.parametrize("code", [StatusCode.UNSET, StatusCode.ERROR])
def test_a_request_span_of_the_usual_shape_is_written_in_one_join_with_the_official_bytes(parent, code, monkeypatch):
    factory = ServerSpans(
        SpanProcessors(), RESOURCES[0], CountingIds(), ALWAYS_ON, SpanLimits(), SCOPES[1], "always_on"
    )
    spans = []
    for n in range(3):
        own = {"http.request.method": "GET", "url.path": f"/users/{n}", "server.port": 8000}
        span = factory.start("GET /users/<id>", None, SpanKind.SERVER, 1_000 + n, parent, own)
        assert type(span) is ServerSpan
        error = Status(StatusCode.ERROR, "boom") if code is StatusCode.ERROR else None
        span.end_request("GET /users/<id>", {"http.response.status_code": 200 + n}, error, 2_000 + n)
        spans.append(span)
    first = SpanEncoder().encode(spans)  # the name becomes known here
    monkeypatch.setattr(_otlp_encode, "encode_span", general_path_refused)
    assert first == SpanEncoder().encode(spans) == official_bytes(spans)


def test_the_fast_exporter_takes_the_official_exporters_public_arguments_in_their_order():
    import inspect

    def public(cls):
        return [
            (p.name, p.kind) for p in inspect.signature(cls.__init__).parameters.values() if not p.name.startswith("_")
        ]

    assert public(FastOTLPSpanExporter) == public(OfficialHttpExporter)


def request_spans(attribute_dicts: list[dict], statuses: list[Status | None] | None = None) -> list[ServerSpan]:
    """Request spans of the usual shape (the light structure, as the request path ends them). The
    factory is told whether the request path's own values are all str or int, as the pipeline tells it
    (they are not when it captures headers)."""
    plain = all(type(value) in (str, int) for own in attribute_dicts for value in own.values())
    factory = ServerSpans(
        SpanProcessors(),
        RESOURCES[0],
        CountingIds(),
        ALWAYS_ON,
        SpanLimits(),
        SCOPES[1],
        "always_on",
        own_values_plain=plain,
    )
    spans = []
    for n, own in enumerate(attribute_dicts):
        span = factory.start("GET /users/<id>", None, SpanKind.SERVER, 1_000 + n, None, dict(own))
        assert type(span) is ServerSpan
        status = statuses[n % len(statuses)] if statuses else None
        span.end_request("GET /users/<id>", {}, status, 2_000 + n)
        spans.append(span)
    return spans


def test_new_string_values_are_written_with_the_official_bytes_on_their_first_and_later_misses(monkeypatch):
    # Each span brings values the attribute cache has not seen (a path, a client address): the first
    # miss of a key goes the general way, the next ones through the key's prefixes (one per value
    # length: 0, 1, 125 bytes; 126 and longer the general way again; multi-byte UTF-8 counted in
    # bytes); an empty key, and keys long enough that the KeyValue's length takes two bytes.
    values = ["", "x", "é", "€" * 41, "a" * 125, "a" * 126, "b" * 300, "/users/7?q=ü"]
    long_key = "k" * 2100
    dicts = [
        {"url.path": f"{value}{n}", "": value, long_key: value, "client.address": f"127.0.0.{n}", "server.port": n}
        for n in range(3)
        for value in values
    ]
    spans = request_spans(dicts)
    monkeypatch.setattr(_otlp_encode, "_PREFIXES", {})  # (earlier tests' keys may have filled it)
    SpanEncoder().encode(spans[:1])  # the route's name becomes known
    monkeypatch.setattr(_otlp_encode, "encode_span", general_path_refused)
    assert SpanEncoder().encode(spans) == official_bytes(spans)
    assert {"url.path", "", long_key, "client.address"} <= set(_otlp_encode._PREFIXES)
    assert SpanEncoder().encode(spans) == official_bytes(spans)  # (now every field from the cache)


def test_a_string_value_that_is_not_utf_8_skips_only_its_attribute_on_the_request_span_path(caplog):
    spans = request_spans([{"url.path": f"/{n}", "bad": f"\ud800{n}", "kept": "yes"} for n in range(3)])
    SpanEncoder().encode(spans)
    ours = SpanEncoder().encode(spans)
    decoded = trace_service_pb2.ExportTraceServiceRequest.FromString(ours)
    for span in decoded.resource_spans[0].scope_spans[0].spans:
        assert [kv.key for kv in span.attributes] == ["url.path", "kept"]
    assert any("Failed to encode key bad" in record.getMessage() for record in caplog.records)


def test_request_span_values_equal_to_cached_ints_keep_their_own_type():
    # the int 1 is cached first; True, 1.0 and "1" under the same key must not be answered its bytes
    dicts = [{"k": value, "n": 7} for value in (1, True, 1.0, "1", 1, 0, False, 0.0, 1)]
    spans = request_spans(dicts[:1]) + request_spans(dicts[1:])
    SpanEncoder().encode(spans[:1])
    assert SpanEncoder().encode(spans) == official_bytes(spans)
    for span in spans:
        assert SpanEncoder().encode([span]) == official_bytes([span])


def test_a_full_attribute_cache_is_cleared_and_a_key_whose_values_do_not_repeat_is_no_longer_kept(monkeypatch):
    monkeypatch.setattr(_otlp_encode, "_ITEMS_BOUND", 16)
    monkeypatch.setattr(_otlp_encode, "_UNREPEATED", set())
    cache = _otlp_encode._SPAN_FIELDS
    cache.clear()
    spans = request_spans([{"url.path": f"/users/{n}", "m": "GET", "p": 80 + n % 3} for n in range(40)])
    SpanEncoder().encode(spans[:1])
    assert SpanEncoder().encode(spans) == official_bytes(spans)
    # the first clearing found url.path's values filling the cache: they are written, not kept
    assert _otlp_encode._UNREPEATED == {"url.path"}
    assert SpanEncoder().encode(spans) == official_bytes(spans)
    assert {key for key, _ in cache} == {"m", "p"}
    assert len(cache) <= 16


def test_request_spans_of_alternating_statuses_each_get_their_own_status_field():
    statuses = [None, Status(StatusCode.ERROR, "boom"), Status(StatusCode.ERROR), Status(StatusCode.ERROR, "other")]
    spans = request_spans([{"url.path": f"/{n}"} for n in range(8)], statuses)
    SpanEncoder().encode(spans[:1])
    assert SpanEncoder().encode(spans) == official_bytes(spans)


def test_a_bool_float_or_list_set_by_user_code_on_a_plain_request_span_keeps_its_own_type():
    # The request path's own values are str and int (the span is marked plain and the encoder skips
    # its type check); a value of another type written through the API unmarks the span.
    factory = ServerSpans(
        SpanProcessors(), RESOURCES[0], CountingIds(), ALWAYS_ON, SpanLimits(), SCOPES[1], "always_on"
    )
    spans = []
    for n, value in enumerate((1, True, 1.0, ["a", "b"], "1")):
        span = factory.start("GET /users/<id>", None, SpanKind.SERVER, 1_000 + n, None, {"n": 7})
        assert type(span) is ServerSpan and span.plain_values
        span.set_attribute("k", value)
        assert span.plain_values is (type(value) in (str, int))
        span.end_request("GET /users/<id>", {}, None, 2_000 + n)
        spans.append(span)
    SpanEncoder().encode(spans[:1])  # ("k", 1) cached
    assert SpanEncoder().encode(spans) == official_bytes(spans)
