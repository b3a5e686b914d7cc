"""What the request path's per-request shortcuts must keep: each test states a behaviour that a
cached or skipped step could lose (issue 26: the request thread's instructions)."""

from __future__ import annotations

from flask import Flask, abort, g, request
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from otel_monitor.request._server_span import ServerSpan
from otel_monitor.testing import Telemetry, closing_client

DURATION = "http.server.request.duration"


# -- the route hook ---------------------------------------------------------------------------------


def test_the_route_is_known_when_a_before_request_function_aborts(monitors):
    app = Flask("route_before_abort")

    @app.before_request
    def deny():
        abort(403)

    @app.get("/items/<name>")
    def item(name):
        return name

    telemetry = Telemetry(monitors(app, system_metrics=False))
    assert closing_client(app).get("/items/x").status_code == 403
    (span,) = telemetry.spans()
    assert span.name == "GET /items/<name>"
    assert span.attributes["http.route"] == "/items/<name>"
    assert span.attributes["http.response.status_code"] == 403


def test_the_route_is_known_when_an_apps_url_value_preprocessor_raises(monitors):
    app = Flask("route_preprocessor_raises")

    @app.url_value_preprocessor
    def pull_lang(endpoint, values):
        g.lang = values.pop("lang")  # a KeyError for a route without <lang>: a 500

    @app.get("/<lang>/about")
    def about():
        return g.lang

    @app.get("/plain")
    def plain():
        return "plain"

    telemetry = Telemetry(monitors(app, system_metrics=False))
    client = closing_client(app)
    assert client.get("/en/about").get_data() == b"en"
    assert client.get("/plain").status_code == 500
    spans = {s.attributes["http.route"]: s for s in telemetry.spans()}
    assert set(spans) == {"/<lang>/about", "/plain"}
    assert spans["/plain"].status.status_code is StatusCode.ERROR
    assert spans["/plain"].attributes["error.type"] == "KeyError"


def test_the_monitor_adds_no_flask_function_that_runs_per_request(monitors):
    app = Flask("no_before_request")
    app.add_url_rule("/", "index", lambda: "ok")
    monitors(app, system_metrics=False, analytics=False)
    assert app.before_request_funcs.get(None, []) == []
    assert app.url_value_preprocessors.get(None, []) == []
    assert app.after_request_funcs.get(None, []) == []


def test_a_route_set_by_the_app_wins_over_the_matched_rule(monitors):
    from otel_monitor import set_route

    app = Flask("route_key_wins")

    @app.get("/items/<name>")
    def item(name):
        set_route(request.environ, "/custom/{name}")
        return name

    telemetry = Telemetry(monitors(app, system_metrics=False))
    closing_client(app).get("/items/x")
    (span,) = telemetry.spans()
    assert span.attributes["http.route"] == "/custom/{name}"
    assert span.name == "GET /custom/{name}"


def test_the_route_of_a_handled_exception_in_a_before_request_function_is_known(monitors):
    app = Flask("route_before_raises")

    @app.before_request
    def fail():
        raise RuntimeError("before")

    @app.get("/items/<name>")
    def item(name):
        return name

    telemetry = Telemetry(monitors(app, system_metrics=False))
    assert closing_client(app).get("/items/x").status_code == 500
    (span,) = telemetry.spans()
    assert span.attributes["http.route"] == "/items/<name>"
    assert span.attributes["error.type"] == "RuntimeError"
    point = telemetry.point(DURATION, **{"http.route": "/items/<name>"})
    assert point.attributes["http.response.status_code"] == 500


def test_a_route_not_matched_records_no_route_and_the_request_goes_on(monitors):
    app = Flask("route_unmatched")
    app.add_url_rule("/", "index", lambda: "ok")
    telemetry = Telemetry(monitors(app, system_metrics=False))
    assert closing_client(app).get("/nowhere").status_code == 404
    (span,) = telemetry.spans()
    assert span.name == "GET"
    assert "http.route" not in span.attributes


# -- the response body ------------------------------------------------------------------------------


def test_a_generator_body_runs_with_the_request_span_current_at_its_start_each_step_and_close(monitors):
    app = Flask("generator_body")
    seen: list[tuple[str, int]] = []

    @app.get("/stream")
    def stream():
        def chunks():
            try:
                seen.append(("first", trace.get_current_span().get_span_context().span_id))
                yield b"a"
                seen.append(("second", trace.get_current_span().get_span_context().span_id))
                yield b"bc"
            finally:
                seen.append(("close", trace.get_current_span().get_span_context().span_id))

        return app.response_class(chunks())

    telemetry = Telemetry(monitors(app, system_metrics=False))
    response = closing_client(app).get("/stream")
    assert response.get_data() == b"abc"
    (span,) = telemetry.spans()
    request_span = span.context.span_id
    assert [step for step, _ in seen] == ["first", "second", "close"]
    assert all(span_id == request_span for _, span_id in seen)
    assert span.attributes["http.response.status_code"] == 200
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached between steps


def test_a_list_body_ends_its_request_with_its_status_and_size(monitors):
    def raw(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"he", b"llo"]

    wrapped = monitors.wrap(raw, system_metrics=False, metrics_body_size=True, analytics=False)
    telemetry = Telemetry(wrapped.monitor)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/raw", "SERVER_NAME": "localhost", "SERVER_PORT": "80"}
    environ.update({"wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"})
    body = wrapped(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"hello"
    body.close()
    (span,) = telemetry.spans()
    assert span.attributes["http.response.status_code"] == 201
    assert telemetry.point("http.server.response.body.size", **{"http.response.status_code": 201}).sum == 5
    assert telemetry.point(DURATION, **{"http.response.status_code": 201}).count == 1


def test_the_request_span_is_current_in_a_response_close_callback(monitors):
    app = Flask("close_callback")
    seen: list[int] = []

    @app.get("/")
    def index():
        response = app.response_class("ok")
        response.call_on_close(lambda: seen.append(trace.get_current_span().get_span_context().span_id))
        return response

    telemetry = Telemetry(monitors(app, system_metrics=False))
    closing_client(app).get("/")
    (span,) = telemetry.spans()
    assert seen == [span.context.span_id]


# -- what is cached per request key -----------------------------------------------------------------


def test_status_texts_and_names_are_each_requests_own_when_they_alternate(monitors):
    app = Flask("alternating")

    @app.get("/a/<int:n>")
    def a(n):
        return ("x", 200 + n)

    @app.route("/b", methods=["GET", "POST"])
    def b():
        return ("y", 404 if request.method == "POST" else 200)

    telemetry = Telemetry(monitors(app, system_metrics=False))
    client = closing_client(app)
    expected = []
    for i in range(3):
        for path, method, status, name in (
            (f"/a/{i}", "GET", 200 + i, "GET /a/<int:n>"),
            ("/b", "POST", 404, "POST /b"),
            ("/b", "GET", 200, "GET /b"),
        ):
            assert client.open(path, method=method).status_code == status
            expected.append((name, status, method))
    got = [
        (s.name, s.attributes["http.response.status_code"], s.attributes["http.request.method"])
        for s in telemetry.spans()
    ]
    assert sorted(got) == sorted(expected)
    assert telemetry.point(DURATION, **{"http.route": "/b", "http.request.method": "POST"}).count == 3


def test_the_server_address_port_and_protocol_are_each_requests_own(monitors):
    app = Flask("addresses")
    app.add_url_rule("/", "index", lambda: "ok")
    telemetry = Telemetry(monitors(app, system_metrics=False))
    client = closing_client(app)
    for host, protocol in (("a.example:8080", "HTTP/1.1"), ("b.example", "HTTP/1.0"), ("a.example:8080", "HTTP/1.0")):
        client.get("/", headers={"Host": host}, environ_overrides={"SERVER_PROTOCOL": protocol})
    got = [
        (
            s.attributes["server.address"],
            s.attributes.get("server.port"),
            s.attributes["network.protocol.version"],
        )
        for s in telemetry.spans()
    ]
    assert sorted(got, key=str) == sorted(
        [("a.example", 8080, "1.1"), ("b.example", None, "1.0"), ("a.example", 8080, "1.0")], key=str
    )


def test_a_span_attribute_set_by_the_view_stays_on_its_own_request_only(monitors):
    app = Flask("own_attributes")

    @app.get("/<int:n>")
    def index(n):
        if n == 1:
            trace.get_current_span().set_attribute("app.only_first", True)
        return "ok"

    telemetry = Telemetry(monitors(app, system_metrics=False))
    client = closing_client(app)
    client.get("/1")
    client.get("/2")
    spans = sorted(telemetry.spans(), key=lambda s: s.attributes["url.path"])
    assert spans[0].attributes.get("app.only_first") is True
    assert "app.only_first" not in spans[1].attributes


# -- the light span's construction and its processors -----------------------------------------------


def light_spans(*processors, sampler=None, ids=None):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from otel_monitor.request._server_span import ServerSpans, SpanProcessors
    from otel_monitor.telemetry._ids import PrivateIdGenerator

    chain = SpanProcessors()
    for processor in processors:
        chain.add_span_processor(processor)
    return ServerSpans(
        chain,
        Resource.create({"service.name": "fast-paths"}),
        ids or PrivateIdGenerator(),
        sampler or ALWAYS_ON,
        SpanLimits(max_attribute_length=None),
        InstrumentationScope("fast-paths"),
        "always_on" if sampler is None else "",
    )


class EndedSpans(SpanProcessor):
    reads_ended_spans_only = True

    def __init__(self):
        self.ended = []

    def on_end(self, span):
        self.ended.append(span)


def test_a_sampled_light_span_is_exported_once_and_reaches_every_processor_in_their_order():
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class Ordered(EndedSpans):
        def __init__(self, name, order):
            super().__init__()
            self.name, self.order = name, order

        def on_end(self, span):
            self.order.append(self.name)

    exporter = InMemorySpanExporter()
    order: list[str] = []
    first, last = Ordered("first", order), Ordered("last", order)
    batch = BatchSpanProcessor(exporter)
    spans = light_spans(first, batch, last)
    try:
        span = spans.start("GET /x", None, SpanKind.SERVER, 1, None, {"url.path": "/x"})
        assert type(span) is ServerSpan and span.sampled
        span.end_request("GET /x", {"http.response.status_code": 200}, None, 2)
        assert order == ["first", "last"]
        assert batch.force_flush(30_000)
        (exported,) = exporter.get_finished_spans()
        assert exported is span
        assert dict(exported.attributes) == {"url.path": "/x", "http.response.status_code": 200}
    finally:
        batch.shutdown()


def test_a_record_only_light_span_reaches_the_processors_but_is_not_exported():
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class RecordOnly(Sampler):
        def should_sample(self, *args, **kwargs):
            return SamplingResult(Decision.RECORD_ONLY)

        def get_description(self):
            return "RecordOnly"

    exporter = InMemorySpanExporter()
    seen = EndedSpans()
    batch = BatchSpanProcessor(exporter)
    spans = light_spans(batch, seen, sampler=RecordOnly())
    try:
        span = spans.start("GET", None, SpanKind.SERVER, 1, None, {})
        assert type(span) is ServerSpan and span.is_recording() and not span.sampled
        assert not span.get_span_context().trace_flags.sampled
        span.end()
        assert seen.ended == [span]
        assert batch.force_flush(30_000)
        assert exporter.get_finished_spans() == ()
    finally:
        batch.shutdown()


def test_light_span_ids_are_random_valid_and_as_the_api_constructor_makes_them():
    from opentelemetry.trace import SpanContext

    spans = light_spans()
    contexts = [spans.start("GET", None, SpanKind.SERVER, 1, None, {}).get_span_context() for _ in range(2000)]
    assert len({c.trace_id for c in contexts}) == 2000
    assert len({c.span_id for c in contexts}) == 2000
    for context in contexts:
        assert 0 < context.trace_id < 2**128 and 0 < context.span_id < 2**64
        expected = SpanContext(context.trace_id, context.span_id, False, context.trace_flags, context.trace_state)
        assert context == expected and context.is_valid == expected.is_valid is True
        assert context.trace_flags.sampled and context.trace_flags.random_trace_id


def test_a_light_span_under_a_remote_parent_keeps_its_trace_and_state():
    from opentelemetry.trace import SpanContext, TraceFlags, TraceState

    parent = SpanContext(0xABC, 0xDEF, True, TraceFlags(TraceFlags.SAMPLED), TraceState([("k", "v")]))
    span = light_spans().start("GET", None, SpanKind.SERVER, 1, parent, {})
    context = span.get_span_context()
    assert context.trace_id == 0xABC and context.span_id not in (0, 0xDEF)
    assert context.trace_state == parent.trace_state and context.is_valid
    assert span.parent is parent


def test_an_id_generator_without_random_bits_is_asked_for_each_id():
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class Counting(IdGenerator):
        def __init__(self):
            self.calls = 0

        def generate_span_id(self):
            self.calls += 1
            return 7

        def generate_trace_id(self):
            self.calls += 1
            return 9

    ids = Counting()
    context = light_spans(ids=ids).start("GET", None, SpanKind.SERVER, 1, None, {}).get_span_context()
    assert (context.trace_id, context.span_id, ids.calls) == (9, 7, 2)


def test_readable_span_methods_read_the_light_spans_fields():
    import json

    span = light_spans().start("GET /a", None, SpanKind.SERVER, 1_000, None, {"url.path": "/a"})
    span.add_event("e", {"k": 1}, 1_500)
    span.set_status(StatusCode.ERROR, "bad")
    span.end(2_000)
    as_json = json.loads(span.to_json())
    assert as_json["name"] == "GET /a" and as_json["kind"] == "SpanKind.SERVER"
    assert as_json["attributes"] == {"url.path": "/a"}
    assert as_json["status"]["status_code"] == "ERROR" and as_json["status"]["description"] == "bad"
    assert [e["name"] for e in as_json["events"]] == ["e"]
    assert span._name == span.name and span._end_time == span.end_time == 2_000
    assert span._span_context is span.context and span._status is span.status


def test_a_light_span_started_past_the_attribute_count_limit_keeps_the_sdks_rule():
    from opentelemetry.sdk.trace import SpanLimits

    bounded = light_spans()
    bounded.limits = SpanLimits(max_span_attributes=1, max_attribute_length=None)
    bounded.max_attributes = 1
    over = bounded.start("GET /a", None, SpanKind.SERVER, 1_000, None, {"url.path": "/a", "url.scheme": "http"})
    assert type(over) is ServerSpan and len(over.attributes) == 1  # the SDK's rule: the newest kept
    assert over.dropped_attributes == 1
    assert over.resource is bounded.resource and over.instrumentation_scope is bounded.scope


def test_status_lines_are_each_requests_own_and_their_cache_is_bounded():
    from otel_monitor.request import _request_path

    for i in range(400):
        assert _request_path._status_code(f"{200 + i % 300} Reason {i}") == 200 + i % 300
    assert _request_path._status_code("abc Odd") is None
    assert "abc Odd" not in _request_path._STATUS_CODES
    assert len(_request_path._STATUS_CODES) <= _request_path._MAX_STATUS_TEXTS


def test_span_names_per_route_are_bounded_and_right_past_the_bound(monitors):
    app = Flask("many_routes")
    for i in range(1100):
        app.add_url_rule(f"/r{i}", f"r{i}", lambda: "ok")
    telemetry = Telemetry(monitors(app, system_metrics=False, analytics=False))
    client = closing_client(app)
    for i in (0, 1099):
        client.get(f"/r{i}")
    shared = next(iter(app.wsgi_app._shared.values()))
    for i in range(2, 1099):
        assert shared.span_name(f"/r{i}") == f"GET /r{i}"
    assert len(shared.names) <= 1024
    assert sorted(s.name for s in telemetry.spans()) == ["GET /r0", "GET /r1099"]


# -- the profiler's wake-up ----------------------------------------------------------------------------


def test_a_request_wakes_the_idle_profiler_and_the_signals_field_follows_its_event(monitors):
    app = Flask("wakes_profiler")

    @app.get("/")
    def index():
        return "ok"

    # no profiler thread: it would clear the signal again whenever it finds nothing served
    monitor = monitors(app, system_metrics=False, profiling=False)
    client = closing_client(app)
    assert client.get("/").status_code == 200
    signal = monitor.pipeline.serving_started
    signal.clear()  # what the profiler does when it goes idle
    assert (signal.on, signal.is_set()) == (False, False)
    assert client.get("/").status_code == 200
    assert (signal.on, signal.is_set()) == (True, True)


def test_request_spans_are_marked_plain_only_while_the_request_path_captures_no_headers(monitors):
    # (a captured header is a list of strings: the OTLP encoder must then check each span's values)
    plain, capturing = Flask("plain_values"), Flask("captured_headers")
    for app in (plain, capturing):
        app.get("/")(lambda: "ok")
    telemetry = Telemetry(monitors(plain, system_metrics=False))
    captured = Telemetry(monitors(capturing, system_metrics=False, capture_headers_server_request=("x-tenant",)))
    assert closing_client(plain).get("/").status_code == 200
    assert closing_client(capturing).get("/", headers={"X-Tenant": "a"}).status_code == 200
    (span,) = telemetry.spans()
    (other,) = captured.spans()
    assert type(span) is ServerSpan and span.plain_values
    assert type(other) is ServerSpan and not other.plain_values
    assert other.attributes["http.request.header.x-tenant"] == ("a",)
