"""Standard variables honoured as the SDK specification and the semantic conventions say.

``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES``, the header-capture variables, the known HTTP
methods, the exemplar filter, and the request-duration buckets (our own setting).
"""

from __future__ import annotations

import pytest
from flask import Flask, Response
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter, TraceBasedExemplarFilter

from otel_monitor import SettingsError, resolve_settings
from otel_monitor.testing import Telemetry, closing_client

DURATION = "http.server.request.duration"


def index_app(name: str = "flask_import_name") -> Flask:
    app = Flask(name)
    app.add_url_rule("/", "index", lambda: "ok")
    return app


# -- service.name ----------------------------------------------------------------------------------


def test_service_name_in_otel_resource_attributes_wins_over_the_flask_import_name(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=calendar,deployment.environment=prod")
    monitor = monitors(index_app(), system_metrics=False, analytics=False)
    attributes = monitor.pipeline.resource.attributes
    assert attributes["service.name"] == "calendar"
    assert attributes["deployment.environment"] == "prod"


def test_otel_service_name_wins_over_otel_resource_attributes(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=calendar")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "caldav")
    monitor = monitors(index_app(), system_metrics=False, analytics=False)
    assert monitor.pipeline.resource.attributes["service.name"] == "caldav"


def test_service_name_in_otel_resource_attributes_wins_over_the_wrap_default_too(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=plain-wsgi")

    def application(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    wrapped = monitors.wrap(application, system_metrics=False)
    assert wrapped.monitor.pipeline.resource.attributes["service.name"] == "plain-wsgi"


def test_without_either_variable_the_flask_import_name_is_the_default(monitors):
    monitor = monitors(index_app("shop"), system_metrics=False, analytics=False)
    assert monitor.pipeline.resource.attributes["service.name"] == "shop"


# -- captured headers ------------------------------------------------------------------------------


def test_configured_request_and_response_headers_are_span_attributes_as_lists_of_strings(monkeypatch, monitors):
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-.*, Accept , authorization"
    )
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "content-type,x-cache,set-cookie")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "x-request-secret.*")
    app = Flask("headers")

    @app.get("/")
    def index():
        response = Response("ok", content_type="text/plain")
        response.headers.add("X-Cache", "miss")
        response.headers.add("X-Cache", "hit")
        response.set_cookie("session", "s3cret")
        response.headers["X-Not-Captured"] = "1"
        return response

    monitor = monitors(app, system_metrics=False, analytics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get(
        "/",
        headers={
            "X-Request-Id": "r-42",
            "X-Request-Secret-Token": "s3cret",
            "Accept": "text/html",
            "Authorization": "Bearer s3cret",
            "X-Other": "not captured",
        },
    )
    (span,) = telemetry.spans()
    captured = {k: v for k, v in span.attributes.items() if ".header." in k}
    assert captured == {
        "http.request.header.x-request-id": ("r-42",),
        "http.request.header.x-request-secret-token": ("[REDACTED]",),
        "http.request.header.accept": ("text/html",),
        "http.request.header.authorization": ("[REDACTED]",),  # credentials are never recorded
        "http.response.header.content-type": ("text/plain",),
        "http.response.header.x-cache": ("miss", "hit"),
        "http.response.header.set-cookie": ("[REDACTED]",),
    }


def test_no_header_is_captured_unless_configured(monitors):
    app = index_app()
    monitor = monitors(app, system_metrics=False, analytics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/", headers={"X-Request-Id": "r-42"})
    (span,) = telemetry.spans()
    assert not [k for k in span.attributes if ".header." in k]


def test_a_capture_pattern_that_is_not_a_regular_expression_is_a_start_up_error():
    with pytest.raises(SettingsError, match=r"^capture_headers_server_request: bad value"):
        resolve_settings(environ={"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-(unclosed"})


# -- known methods ---------------------------------------------------------------------------------


def caldav_app() -> Flask:
    app = Flask("caldav")

    @app.route("/calendars/<name>", methods=["PROPFIND", "REPORT", "MKCALENDAR", "POST"])
    def calendar(name):
        return "", 207

    return app


def test_listed_methods_of_a_caldav_server_are_recorded_as_themselves(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PROPFIND,REPORT,MKCALENDAR")
    app = caldav_app()
    monitor = monitors(app, system_metrics=False, analytics=False)
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    for method in ("PROPFIND", "REPORT", "MKCALENDAR"):
        assert client.open("/calendars/work", method=method).status_code == 207
    spans = telemetry.spans()
    assert [s.name for s in spans] == [
        "PROPFIND /calendars/<name>",
        "REPORT /calendars/<name>",
        "MKCALENDAR /calendars/<name>",
    ]
    assert [s.attributes["http.request.method"] for s in spans] == ["PROPFIND", "REPORT", "MKCALENDAR"]
    assert not [s for s in spans if "http.request.method_original" in s.attributes]
    assert {p.attributes["http.request.method"] for p in telemetry.points(DURATION)} == {
        "PROPFIND",
        "REPORT",
        "MKCALENDAR",
    }


def test_the_list_replaces_the_defaults_and_is_case_sensitive(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PROPFIND")
    app = caldav_app()
    monitor = monitors(app, system_metrics=False, analytics=False)
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    client.open("/calendars/work", method="POST")  # a default method, not in the list
    client.open("/calendars/work", method="propfind")  # not PROPFIND: methods are case-sensitive
    post, lower = telemetry.spans()
    for span, original in ((post, "POST"), (lower, "propfind")):
        assert span.attributes["http.request.method"] == "_OTHER"
        assert span.attributes["http.request.method_original"] == original
    assert post.name == "HTTP /calendars/<name>"  # the semantic conventions' name for _OTHER


def test_without_the_variable_caldav_methods_are_other_with_their_original(monitors):
    app = caldav_app()
    monitor = monitors(app, system_metrics=False, analytics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).open("/calendars/work", method="PROPFIND")
    (span,) = telemetry.spans()
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PROPFIND"
    assert span.name == "HTTP /calendars/<name>"


@pytest.mark.parametrize("value", ["GET,PROP FIND", "GET,_OTHER", " , "])
def test_a_bad_known_methods_list_is_a_start_up_error(value):
    with pytest.raises(SettingsError, match=r"^http_known_methods: bad value"):
        resolve_settings(environ={"OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS": value})


# -- exemplar filter -------------------------------------------------------------------------------


def exemplars(telemetry) -> list:
    return [e for p in telemetry.points(DURATION) for e in p.exemplars]


@pytest.mark.parametrize(
    "value, sdk_filter", [("always_on", AlwaysOnExemplarFilter), ("always_off", AlwaysOffExemplarFilter)]
)
def test_otel_metrics_exemplar_filter_reaches_the_sdk(monkeypatch, monitors, value, sdk_filter):
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", value)
    _, monitor = monitors.app(analytics=False)
    assert type(monitor.pipeline.meter_provider._sdk_config.exemplar_filter) is sdk_filter


def test_always_off_keeps_no_exemplar_on_the_request_histogram(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "always_off")
    app, monitor = monitors.app(analytics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    assert len(telemetry.spans()) == 1 and exemplars(telemetry) == []


def test_always_on_keeps_exemplars_of_unsampled_requests(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "always_on")
    app, monitor = monitors.app(analytics=False, traces_sampler="always_off")
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    assert telemetry.spans() == []
    [exemplar] = exemplars(telemetry)
    assert exemplar.trace_id and exemplar.span_id


@pytest.mark.parametrize("value", [None, "trace_based"])
def test_trace_based_keeps_exemplars_of_sampled_requests_only(monkeypatch, monitors, value):
    if value:
        monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", value)
    sampled_app, sampled = monitors.app(analytics=False)
    unsampled_app, unsampled = monitors.app(analytics=False, traces_sampler="always_off")
    closing_client(sampled_app).get("/")
    closing_client(unsampled_app).get("/")
    assert len(exemplars(Telemetry(sampled))) == 1
    assert exemplars(Telemetry(unsampled)) == []
    expected = TraceBasedExemplarFilter if value else AlwaysOffExemplarFilter  # no push exporter: off by default
    assert type(sampled.pipeline.meter_provider._sdk_config.exemplar_filter) is expected


# -- request-duration buckets ----------------------------------------------------------------------


def test_the_request_duration_buckets_can_be_set(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_MONITOR_HTTP_SERVER_DURATION_BUCKETS", "0.05, 0.5,2")
    app, monitor = monitors.app(analytics=False)
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    client.get("/")
    assert tuple(telemetry.point(DURATION).explicit_bounds) == (0.05, 0.5, 2.0)
    scraped = client.get("/metrics").get_data(as_text=True)
    assert [
        line.split('le="')[1].split('"')[0]
        for line in scraped.splitlines()
        if line.startswith("http_server_request_duration_seconds_bucket")
    ] == ["0.05", "0.5", "2.0", "+Inf"]


def test_the_default_buckets_are_the_semantic_conventions_advisory_ones_and_two_finer():
    advisory = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
    assert resolve_settings({}).http_server_duration_buckets == (0.001, 0.0025, *advisory)


@pytest.mark.parametrize("value", ["1,0.5", "0.1,x", "-1,2", "0.1,0.1"])
def test_bad_buckets_are_a_start_up_error(value):
    with pytest.raises(SettingsError, match=r"^http_server_duration_buckets: bad value"):
        resolve_settings(environ={"OTEL_MONITOR_HTTP_SERVER_DURATION_BUCKETS": value})


def test_wrap_honours_the_known_methods_too(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "REPORT")

    def application(environ, start_response):
        start_response("207 Multi-Status", [])
        return [b""]

    wrapped = monitors.wrap(application, system_metrics=False, service_name="dav")
    telemetry = Telemetry(wrapped.monitor)
    body = wrapped(
        {"REQUEST_METHOD": "REPORT", "PATH_INFO": "/", "SERVER_NAME": "x", "SERVER_PORT": "80"}, lambda *a: None
    )
    body.close()
    (span,) = telemetry.spans()
    assert span.name == "REPORT" and span.attributes["http.request.method"] == "REPORT"
