"""What the request path's per-request shortcuts must keep: each test states a behaviour that a
cached or skipped step could lose (issue 26: the request thread's instructions)."""

from __future__ import annotations

from flask import Flask, abort, g, request
from opentelemetry import trace
from opentelemetry.trace import StatusCode

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


def test_a_route_set_by_the_app_in_the_environ_wins_over_the_matched_rule(monitors):
    from otel_monitor.request._request_path import ROUTE_KEY

    app = Flask("route_key_wins")

    @app.get("/items/<name>")
    def item(name):
        request.environ[ROUTE_KEY] = "/custom/{name}"
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
    app = Flask("list_body")

    def raw(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"he", b"llo"]

    telemetry = Telemetry(monitors(app, system_metrics=False, metrics_body_size=True))
    app.wsgi_app.wsgi_app = raw  # the monitored layer around a bare WSGI callable returning a list
    closing_client(app).get("/raw")
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
