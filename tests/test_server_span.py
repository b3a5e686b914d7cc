"""The request span's light structure (otel_monitor.request._server_span): nothing lost, nothing changed.

Every span (ids, parents, attributes, events, status) and every request count still reaches an
in-memory exporter and a real OTLP/HTTP receiver under concurrent requests; user code writes to the
current span with the usual API; a span processor the application adds still gets the SDK's span.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.serving import make_server

from otel_monitor.request._server_span import ServerSpan
from otel_monitor.testing import Telemetry, closing_client

from .conftest import HANG_S

THREADS = 8
PER_THREAD = 25


class OTLPReceiver:
    """A local OTLP/HTTP trace receiver that decodes and keeps every export request."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list:
        return [
            span
            for request in self.requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = OTLPReceiver()
    yield r
    r.close()


def traced_app() -> Flask:
    app = Flask("server_span_app")
    tracer = trace.get_tracer("server_span_test")

    @app.get("/ok/<int:n>")
    def ok(n: int):
        current = trace.get_current_span()
        current.set_attribute("app.n", n)
        current.add_event("app.checked", {"app.n": n})
        with tracer.start_as_current_span("app.child") as child:
            child.set_attribute("app.n", n)
        return str(n)

    @app.get("/fail/<int:n>")
    def fail(n: int):
        raise RuntimeError(f"failure {n}")

    return app


def test_every_span_and_every_count_reaches_the_exporters_under_concurrent_requests(monitors, receiver):
    app = traced_app()
    monitor = monitors(
        app,
        traces_sampler="always_on",
        traces_exporter="otlp",
        metrics_exporter="none",
        logs_exporter="none",
        otlp_endpoint=receiver.endpoint,
        system_metrics=False,
    )
    telemetry = Telemetry(monitor)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"

    def get(n: int) -> int:
        path = f"/fail/{n}" if n % 5 == 0 else f"/ok/{n}"
        try:
            with urllib.request.urlopen(base + path, timeout=HANG_S) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            statuses = list(pool.map(get, range(THREADS * PER_THREAD)))
    finally:
        server.shutdown()
        server.server_close()
    total = THREADS * PER_THREAD
    failed = sum(1 for n in range(total) if n % 5 == 0)
    assert statuses.count(500) == failed and statuses.count(200) == total - failed
    assert monitor.tracer_provider.force_flush(int(HANG_S * 1000))

    spans = telemetry.spans()
    servers = {s.context.span_id: s for s in spans if s.kind is SpanKind.SERVER}
    children = [s for s in spans if s.name == "app.child"]
    assert len(servers) == total and len(children) == total - failed
    assert all(type(s) is ServerSpan for s in servers.values())  # the light path served them all
    for child in children:
        parent = servers[child.parent.span_id]
        assert child.context.trace_id == parent.context.trace_id
        assert parent.attributes["app.n"] == child.attributes["app.n"]
        assert parent.name == "GET /ok/<int:n>"
        assert [(e.name, dict(e.attributes)) for e in parent.events] == [
            ("app.checked", {"app.n": child.attributes["app.n"]})
        ]
        assert parent.status.status_code is StatusCode.UNSET
    failures = [s for s in servers.values() if s.name == "GET /fail/<int:n>"]
    assert len(failures) == failed
    for span in failures:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["http.response.status_code"] == 500
        assert span.attributes["error.type"] == "RuntimeError"
        assert [e.name for e in span.events] == ["exception"]
        assert span.events[0].attributes["exception.type"] == "RuntimeError"

    # the same spans, with the same parents, reached the OTLP receiver (a batch the worker thread
    # was sending when force_flush ran may land just after it)
    deadline = time.monotonic() + HANG_S
    while len(receiver.spans()) < len(spans) and time.monotonic() < deadline:
        time.sleep(0.05)
    exported = receiver.spans()
    by_id = {int.from_bytes(s.span_id, "big"): s for s in exported}
    assert len(exported) == len(spans) == len(by_id)
    for span in spans:
        sent = by_id[span.context.span_id]
        assert int.from_bytes(sent.trace_id, "big") == span.context.trace_id
        assert (int.from_bytes(sent.parent_span_id, "big") if sent.parent_span_id else None) == (
            span.parent.span_id if span.parent else None
        )
        assert sent.name == span.name
        assert {a.key for a in sent.attributes} == set(span.attributes)
        assert [e.name for e in sent.events] == [e.name for e in span.events]
        assert sent.status.code == span.status.status_code.value

    # and every request was counted
    assert telemetry.point("http.server.request.duration", **{"http.route": "/ok/<int:n>"}).count == total - failed
    assert telemetry.point("http.server.request.duration", **{"http.route": "/fail/<int:n>"}).count == failed


def test_user_code_reaches_the_request_span_through_the_current_span(monitors):
    app = Flask("current_span_app")
    seen = {}

    @app.get("/")
    def index():
        span = trace.get_current_span()
        seen["context"] = span.get_span_context()
        span.set_attributes({"app.user": "u1", "app.items": [1, 2], "": "dropped"})
        span.record_exception(ValueError("bad input"))
        span.set_status(StatusCode.ERROR, "bad input")
        span.add_link(trace.SpanContext(1, 2, False, trace.TraceFlags(1)), {"app.link": True})
        return "ok"

    monitor = monitors(app, traces_sampler="always_on", system_metrics=False)
    telemetry = Telemetry(monitor)
    assert closing_client(app).get("/").status_code == 200
    (span,) = telemetry.spans()
    assert span.get_span_context() == seen["context"]
    assert span.attributes["app.user"] == "u1" and span.attributes["app.items"] == (1, 2)
    assert "" not in span.attributes and span.dropped_attributes == 1
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes["exception.type"] == "ValueError"
    assert span.events[0].attributes["exception.message"] == "bad input"
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "bad input"
    assert [(link.context.span_id, dict(link.attributes)) for link in span.links] == [(2, {"app.link": True})]


def test_the_span_attribute_count_limit_drops_the_oldest_as_the_sdk_does(monitors, monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "12")
    app = Flask("limit_app")

    @app.get("/")
    def index():
        span = trace.get_current_span()
        for i in range(20):
            span.set_attribute(f"app.a{i}", i)
        return "ok"

    monitor = monitors(app, traces_sampler="always_on", system_metrics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    (span,) = telemetry.spans()
    assert len(span.attributes) == 12
    assert span.attributes["app.a19"] == 19 and "app.a0" not in span.attributes
    assert span.dropped_attributes > 0


def test_an_ended_request_span_ignores_further_writes(monitors):
    app = Flask("ended_app")
    kept = {}

    @app.get("/")
    def index():
        kept["span"] = trace.get_current_span()
        return "ok"

    monitor = monitors(app, traces_sampler="always_on", system_metrics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    span = kept["span"]
    span.set_attribute("app.late", 1)
    span.add_event("late")
    span.set_status(StatusCode.ERROR)
    span.update_name("renamed")
    (exported,) = telemetry.spans()
    assert not span.is_recording()
    assert "app.late" not in exported.attributes and not exported.events
    assert exported.status.status_code is StatusCode.UNSET and exported.name == "GET /"


class StampingProcessor(SpanProcessor):
    """An application's processor that writes to spans when they start (as many do)."""

    def __init__(self) -> None:
        self.started: list[object] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span)
        span.set_attribute("app.stamp", "yes")


def test_a_processor_added_by_the_application_still_receives_the_sdk_span(monitors):
    app = Flask("processor_app")

    @app.get("/")
    def index():
        return "ok"

    monitor = monitors(app, traces_sampler="always_on", system_metrics=False)
    telemetry = Telemetry(monitor)
    stamping = StampingProcessor()
    monitor.tracer_provider.add_span_processor(stamping)
    closing_client(app).get("/")
    (span,) = telemetry.spans()
    assert isinstance(stamping.started[0], SDKSpan)
    assert span.attributes["app.stamp"] == "yes"
    assert span.attributes["http.route"] == "/"


def test_an_unsampled_request_has_a_non_recording_span_with_real_ids(monitors):
    app = Flask("unsampled_app")
    seen = {}

    @app.get("/")
    def index():
        seen["span"] = trace.get_current_span()
        return "ok"

    monitor = monitors(app, traces_sampler="always_off", system_metrics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    span = seen["span"]
    assert not span.is_recording() and span.get_span_context().is_valid
    assert not span.get_span_context().trace_flags.sampled
    assert telemetry.spans() == []
    assert telemetry.point("http.server.request.duration", **{"http.route": "/"}).count == 1


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    ("sampler", "incoming_flags", "recorded"),
    [
        ("parentbased_always_on", "01", True),
        ("parentbased_always_on", "00", False),
        ("parentbased_always_off", "01", True),
        ("parentbased_always_off", "00", False),
        ("always_on", "00", True),
        ("always_off", "01", False),
        ("parentbased_traceidratio", "01", True),
        ("parentbased_traceidratio", "00", False),
    ],
)
def test_the_request_span_follows_the_settings_sampler_and_keeps_the_incoming_trace(
    monitors, sampler, incoming_flags, recorded
):
    app = Flask("sampling_app")
    seen = {}

    @app.get("/")
    def index():
        seen["context"] = trace.get_current_span().get_span_context()
        return "ok"

    monitor = monitors(app, traces_sampler=sampler, traces_sampler_arg=0.0, system_metrics=False)
    telemetry = Telemetry(monitor)
    headers = {"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-{incoming_flags}", "tracestate": "vendor=v1"}
    closing_client(app).get("/", headers=headers)
    context = seen["context"]
    assert format(context.trace_id, "032x") == TRACE_ID
    assert context.trace_flags.sampled is recorded
    assert context.trace_state.get("vendor") == "v1"
    spans = telemetry.spans()
    assert len(spans) == (1 if recorded else 0)
    if recorded:
        assert spans[0].parent.span_id == 0xB7AD6B7169203331 and spans[0].parent.is_remote


def test_threads_of_one_request_write_to_its_span_together_and_every_write_lands(monitors, monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "1000")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1000")
    app = Flask("threads_app")

    @app.get("/")
    def index():
        span = trace.get_current_span()

        def write(t: int) -> None:
            for i in range(50):
                span.set_attribute(f"app.t{t}.a{i}", i)
                span.add_event(f"t{t}.e{i}")

        threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_S)
        return "ok"

    monitor = monitors(app, traces_sampler="always_on", system_metrics=False)
    telemetry = Telemetry(monitor)
    assert closing_client(app).get("/").status_code == 200
    (span,) = telemetry.spans()
    written = {key: value for key, value in span.attributes.items() if key.startswith("app.t")}
    assert written == {f"app.t{t}.a{i}": i for t in range(4) for i in range(50)}
    assert sorted(e.name for e in span.events) == sorted(f"t{t}.e{i}" for t in range(4) for i in range(50))
    assert span.dropped_attributes == 0 and span.dropped_events == 0
    assert span.attributes["http.route"] == "/"


def test_the_official_otlp_encoder_and_ours_encode_the_light_span_to_the_same_bytes(monitors):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from otel_monitor.telemetry._otlp_encode import SpanEncoder

    app = traced_app()
    monitor = monitors(app, traces_sampler="always_on", system_metrics=False)
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    client.get("/ok/3?q=1", headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"})
    client.get("/fail/4")
    spans = telemetry.spans()
    assert sum(type(s) is ServerSpan for s in spans) == 2
    assert SpanEncoder().encode(spans) == encode_spans(spans).SerializeToString()
    assert '"name": "GET /fail/<int:n>"' in "".join(s.to_json() for s in spans)  # ConsoleSpanExporter's form


@pytest.mark.parametrize(
    ("trace_id", "span_id", "sampled", "state"),
    [
        (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, None),
        (1, 2**64 - 1, False, [("vendor", "opaque")]),
        (0, 5, True, None),  # an id generator's invalid ids stay invalid
        (2**128, 5, True, None),
        (7, 0, False, None),
    ],
)
def test_the_request_span_context_is_the_one_the_api_constructor_makes(trace_id, span_id, sampled, state):
    from opentelemetry.trace import SpanContext, TraceFlags, TraceState

    from otel_monitor.request._server_span import _span_context

    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    trace_state = TraceState(state) if state else None
    made = _span_context(trace_id, span_id, flags, trace_state)
    expected = SpanContext(trace_id, span_id, False, flags, trace_state)
    assert type(made) is SpanContext
    assert tuple(made) == tuple(expected)
    assert (made.is_valid, made.is_remote, made.trace_flags.sampled) == (
        expected.is_valid,
        False,
        sampled,
    )
    assert made.trace_state == expected.trace_state
