"""Spans and request metrics for success, 404, 500 and excluded URLs (stable semantic conventions)."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from otel_monitor.testing import Telemetry, closing_client

DURATION = "http.server.request.duration"


def test_a_matched_request_gives_one_server_span_named_by_method_and_route_template(monitored):
    app, monitor, telemetry, client = monitored
    assert client.get("/users/42?x=1", headers={"User-Agent": "pytest-agent"}).status_code == 200
    (span,) = telemetry.spans()
    assert span.name == "GET /users/<int:user_id>"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes)
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "/users/<int:user_id>"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/users/42"
    assert attrs["url.query"] == "x=1"
    assert attrs["url.scheme"] == "http"
    assert attrs["user_agent.original"] == "pytest-agent"
    assert "error.type" not in attrs


def test_the_duration_histogram_is_in_seconds_with_route_method_status_attributes(monitored):
    app, monitor, telemetry, client = monitored
    for _ in range(3):
        client.get("/users/7")
    metric = telemetry.metrics()[DURATION]
    assert metric.unit == "s"
    point = telemetry.point(DURATION, **{"http.route": "/users/<int:user_id>"})
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.route": "/users/<int:user_id>",
        "http.response.status_code": 200,
    }
    assert point.count == 3
    assert 0 < point.sum < 3  # seconds, not milliseconds


def test_an_unmatched_url_has_no_route_attribute_and_one_series_for_all_404s(monitored):
    app, monitor, telemetry, client = monitored
    for i in range(50):
        assert client.get(f"/no/such/page/{i}").status_code == 404
    spans = telemetry.spans()
    assert {s.name for s in spans} == {"GET"}
    assert all("http.route" not in s.attributes for s in spans)
    points = [p for p in telemetry.points(DURATION) if p.attributes.get("http.response.status_code") == 404]
    assert len(points) == 1 and points[0].count == 50
    assert "http.route" not in points[0].attributes


def test_an_exception_in_a_view_gives_a_500_an_error_span_and_error_type(monitored):
    app, monitor, telemetry, client = monitored
    assert client.get("/fail").status_code == 500
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    point = telemetry.point(DURATION, **{"http.route": "/fail"})
    assert point.attributes["error.type"] == "ValueError"
    assert point.attributes["http.response.status_code"] == 500


def test_the_metrics_endpoint_produces_neither_spans_nor_request_metrics(monitored):
    app, monitor, telemetry, client = monitored
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert telemetry.spans() == []
    assert telemetry.points(DURATION) == []


def test_excluded_urls_produce_neither_spans_nor_metrics(monitors):
    app, monitor = monitors.app(excluded_urls="^/users/,healthz")
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    client.get("/users/1")
    client.get("/")
    assert [s.name for s in telemetry.spans()] == ["GET /"]
    assert [p.attributes.get("http.route") for p in telemetry.points(DURATION)] == ["/"]


def test_active_requests_reads_zero_after_requests_complete(monitored):
    app, monitor, telemetry, client = monitored
    client.get("/")
    client.get("/fail")
    (point,) = telemetry.points("http.server.active_requests")
    assert point.value == 0
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http"}


def test_body_sizes_are_off_by_default_and_recorded_in_bytes_when_turned_on(monitored, monitors):
    app, monitor, telemetry, client = monitored
    client.post("/echo", data=b"x" * 1234)
    assert set(telemetry.metrics()) & {"http.server.request.body.size", "http.server.response.body.size"} == set()
    app, monitor = monitors.app(metrics_body_size=True)
    telemetry, client = Telemetry(monitor), closing_client(app)
    client.post("/echo", data=b"x" * 1234)
    request_size = telemetry.point("http.server.request.body.size", **{"http.route": "/echo"})
    response_size = telemetry.point("http.server.response.body.size", **{"http.route": "/echo"})
    assert (request_size.sum, response_size.sum) == (1234, 1234)
    assert telemetry.metrics()["http.server.request.body.size"].unit == "By"


def test_an_incoming_w3c_traceparent_makes_the_server_span_its_child(monitored):
    app, monitor, telemetry, client = monitored
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    client.get("/", headers={"traceparent": parent, "baggage": "tenant=acme"})
    (span,) = telemetry.spans()
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.parent.is_remote


@pytest.mark.parametrize("method", ["FOOBAR", "X" * 10_000])
def test_unknown_http_methods_are_recorded_as_OTHER(monitored, method):
    app, monitor, telemetry, client = monitored
    client.open("/", method=method)
    (span,) = telemetry.spans()
    assert span.attributes["http.request.method"] == "_OTHER"
    assert {p.attributes["http.request.method"] for p in telemetry.points(DURATION)} == {"_OTHER"}


def test_sensitive_query_values_are_redacted_in_spans(monitored):
    app, monitor, telemetry, client = monitored
    client.get("/?token=s3cr3t&password=hunter2&page=2")
    (span,) = telemetry.spans()
    assert span.attributes["url.query"] == "token=REDACTED&password=REDACTED&page=2"


def test_the_resource_carries_service_name_and_a_unique_instance_id(monitors):
    app1, m1 = monitors.app(service_name="svc-a")
    app2, m2 = monitors.app(service_name="svc-b")
    r1, r2 = m1.pipeline.resource.attributes, m2.pipeline.resource.attributes
    assert (r1["service.name"], r2["service.name"]) == ("svc-a", "svc-b")
    assert r1["service.instance.id"] != r2["service.instance.id"]


def test_a_sampler_sees_the_request_attributes_at_span_creation(monitored):
    # The HTTP semantic conventions: method, path, scheme and server address MUST be given at span
    # creation, so that a sampler can decide on them (e.g. drop health checks by url.path).
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    app, monitor, telemetry, client = monitored
    seen = []

    class RecordingSampler:
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None):
            seen.append((name, kind, dict(attributes or {})))
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links)

        def get_description(self):
            return "recording"

    monitor.pipeline.tracer.sampler = RecordingSampler()
    client.get("/users/5?q=1", headers={"Host": "shop.example:8443"})
    ((name, kind, attributes),) = seen
    assert (name, kind) == ("GET", SpanKind.SERVER)
    assert {
        k: attributes[k]
        for k in ("http.request.method", "url.path", "url.query", "url.scheme", "server.address", "server.port")
    } == {
        "http.request.method": "GET",
        "url.path": "/users/5",
        "url.query": "q=1",
        "url.scheme": "http",
        "server.address": "shop.example",
        "server.port": 8443,
    }


def test_response_attributes_respect_the_sdk_attribute_value_length_limit(monkeypatch, monitors):
    # Our direct write of the final attributes must not bypass a limit the user configured.
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8")
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    closing_client(app).get("/users/42")
    (span,) = telemetry.spans()
    assert span.attributes["http.route"] == "/users/<"
    assert span.attributes["http.response.status_code"] == 200


def test_many_distinct_host_headers_keep_correct_addresses_in_bounded_memory(monitored):
    app, monitor, telemetry, client = monitored
    for i in range(300):
        client.get("/", headers={"Host": f"h{i}.example:{1000 + i}"})
    last = telemetry.spans()[-1]
    assert (last.attributes["server.address"], last.attributes["server.port"]) == ("h299.example", 1299)
    assert len(app.wsgi_app._shared) <= 256
