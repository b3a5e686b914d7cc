"""Bad input on the request path: same status and body as the app without monitoring, bounded cost."""

from __future__ import annotations

import io
import logging
from typing import NamedTuple

import pytest
from flask import Flask, abort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_monitor import Monitor
from otel_monitor.request._request_path import _GETTER
from otel_monitor.request._tracecontext import MAX_TRACEPARENT, parse_traceparent
from otel_monitor.testing import Telemetry


def make_app(monitored: bool):
    app = Flask("differential")

    @app.before_request
    def maybe_fail():
        from flask import request

        if request.path == "/before-fails":
            raise RuntimeError("before_request failed")

    @app.get("/")
    def index():
        return "home"

    @app.route("/items/<name>", methods=["GET", "POST"])
    def item(name):
        return {"name": name}

    @app.get("/none")
    def returns_none():
        return None

    @app.get("/forbidden")
    def forbidden():
        abort(403)

    @app.get("/before-fails")
    def before_fails():
        return "unreachable"

    monitor = Monitor(app, system_metrics=False) if monitored else None
    return app, monitor


class Apps(NamedTuple):
    bare: Flask
    monitored: Flask
    telemetry: Telemetry


@pytest.fixture(scope="module")
def apps():
    """The app bare and monitored, shared by the module's tests (hypothesis runs hundreds of examples)."""
    bare, _ = make_app(False)
    monitored, monitor = make_app(True)
    yield Apps(bare, monitored, Telemetry(monitor))
    monitor.shutdown(timeout=2)


def call(app, environ):
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = [(k, v) for k, v in headers if k.lower() not in ("date",)]

    env = dict(environ)
    env.setdefault("wsgi.input", io.BytesIO(b""))
    env.setdefault("wsgi.errors", io.StringIO())
    try:
        result = app(env, start_response)
    except Exception as exc:  # noqa: BLE001 - an invalid environ may make the app itself raise: so must we, the same
        return ("raised", type(exc)), None, b""
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured.get("status"), captured.get("headers"), body


def base_environ(**overrides):
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "REMOTE_ADDR": "127.0.0.1",
    }
    env.update(overrides)
    return env


def assert_same(apps, environ):
    assert call(apps.monitored, environ) == call(apps.bare, environ)


@pytest.mark.parametrize(
    "overrides",
    [
        {"PATH_INFO": "/items/%FF"},
        {"PATH_INFO": "/items/\x00"},
        {"PATH_INFO": "/../etc/passwd"},
        {"PATH_INFO": ""},
        {"PATH_INFO": "/items/\xff\xfe"},
        {"PATH_INFO": "/items/\udcff"},
        {"SERVER_PORT": "abc"},
        {"HTTP_HOST": "x:abc"},
        {"HTTP_HOST": "example.com:abc"},
        {"HTTP_HOST": "[::1]:xyz"},
        {"HTTP_HOST": ":::"},
        {"wsgi.url_scheme": "gopher"},
        {"QUERY_STRING": "a=%FF&&=&token"},
        {"REQUEST_METHOD": "HEAD"},
        {"REQUEST_METHOD": "OPTIONS"},
        {"REQUEST_METHOD": "DELETE", "PATH_INFO": "/"},
        {"PATH_INFO": "/none"},
        {"PATH_INFO": "/forbidden"},
        {"PATH_INFO": "/before-fails"},
        {"CONTENT_LENGTH": "abc"},
        {"CONTENT_LENGTH": "-5"},
    ],
)
def test_odd_requests_get_exactly_the_response_of_the_bare_app(overrides, apps):
    assert_same(apps, base_environ(**overrides))


def test_nothing_stays_active_after_failing_and_odd_requests(apps):
    for path in ("/before-fails", "/none", "/forbidden"):
        call(apps.monitored, base_environ(PATH_INFO=path))
    assert sum(p.value for p in apps.telemetry.points("http.server.active_requests")) == 0


environ_values = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)), max_size=60
)


@settings(deadline=None, suppress_health_check=list(HealthCheck))  # examples: the profile (conftest)
@given(
    path=environ_values,
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "FOO", "", "G E T"]),
    host=environ_values,
    port=environ_values,
    query=environ_values,
    traceparent=environ_values,
    baggage=environ_values,
    user_agent=environ_values,
)
def test_property_any_environ_gets_the_bare_apps_response(
    apps, path, method, host, port, query, traceparent, baggage, user_agent
):
    # WSGI strings are latin-1 "bytes as str"; encode what hypothesis gives us that way.
    def wsgi(text):
        return text.encode("utf-8", "surrogateescape").decode("latin-1")

    env = base_environ(
        PATH_INFO="/" + wsgi(path),
        REQUEST_METHOD=method,
        HTTP_HOST=wsgi(host),
        SERVER_PORT=wsgi(port),
        QUERY_STRING=wsgi(query),
        HTTP_TRACEPARENT=wsgi(traceparent),
        HTTP_BAGGAGE=wsgi(baggage),
        HTTP_USER_AGENT=wsgi(user_agent),
    )
    assert_same(apps, env)


VALID_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-" + "0" * 32 + "-" + "0" * 16 + "-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x" * 1_000_000,
        " " * 32_768 + "\n" + VALID_PARENT,
        VALID_PARENT + "-" + " " * 32_000 + "\nx",  # quadratic in the stock propagator's regex: ~4 s
    ],
)
def test_a_malformed_or_oversized_traceparent_starts_a_new_root_trace(traceparent, apps):
    apps.telemetry.clear()
    status, _, _ = call(apps.monitored, base_environ(HTTP_TRACEPARENT=traceparent))
    assert status.startswith("200")
    (span,) = apps.telemetry.spans()
    assert span.parent is None


class CountingStr(str):
    """A header value that counts how often anything reads its characters."""

    reads = 0

    def __getitem__(self, key):
        CountingStr.reads += 1
        return str.__getitem__(self, key)

    def __iter__(self):
        CountingStr.reads += 1
        return str.__iter__(self)

    def strip(self, chars=None):
        CountingStr.reads += 1
        return str.strip(self, chars)

    def split(self, sep=None, maxsplit=-1):
        CountingStr.reads += 1
        return str.split(self, sep, maxsplit)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("traceparent", VALID_PARENT + "-" + " " * 32_000 + "\nx"),  # oversized and line-broken
        ("traceparent", "0" * (MAX_TRACEPARENT + 1)),  # oversized only
        ("traceparent", VALID_PARENT[:20] + "\r\n" + VALID_PARENT[20:]),  # line-broken only
        ("tracestate", "a=b," * 4096),
        ("baggage", "k=v," * 4096),
    ],
)
def test_oversized_or_line_broken_headers_are_refused_before_any_parsing(header, value):
    # The cost of a hostile header is bounded by refusing it on its length and line breaks (one
    # linear scan): the value never reaches a parser, whose cost may grow faster than the input.
    CountingStr.reads = 0
    assert _GETTER.get({"HTTP_" + header.upper(): CountingStr(value)}, header) is None
    assert CountingStr.reads == 0
    assert parse_traceparent(CountingStr("0" * (MAX_TRACEPARENT + 1))) is None and CountingStr.reads == 0


@pytest.mark.parametrize("tracestate", [",".join(f"k{i}=v{i}" for i in range(1000)), "a=b\r\nc=d"])
def test_a_huge_or_line_broken_tracestate_is_dropped_but_the_parent_kept(tracestate, apps):
    apps.telemetry.clear()
    call(apps.monitored, base_environ(HTTP_TRACEPARENT=VALID_PARENT, HTTP_TRACESTATE=tracestate))
    (span,) = apps.telemetry.spans()
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert len(span.context.trace_state) == 0


@pytest.mark.parametrize("baggage", ["k=" + "v" * 1_000_000, ",".join(f"k{i}=v" for i in range(500))])
def test_huge_baggage_is_capped_and_nothing_huge_is_logged(caplog, baggage, apps):
    with caplog.at_level(logging.DEBUG):
        status, _, _ = call(apps.monitored, base_environ(HTTP_BAGGAGE=baggage))
    assert status.startswith("200")
    assert sum(len(r.getMessage()) for r in caplog.records) < 2048


def test_hundreds_of_distinct_urls_methods_and_hosts_keep_the_series_bounded(monitors):
    app, monitor = make_app(True)
    monitors.own(monitor)
    telemetry = Telemetry(monitor)
    for i in range(300):  # a series per value would make 900 of them (3,000 made 9,000: 12 s for the same check)
        call(app, base_environ(PATH_INFO=f"/items/{i}"))
        call(app, base_environ(PATH_INFO=f"/no/such/{i}"))
        call(app, base_environ(HTTP_HOST=f"host{i}.example:{i}"))
    for i in range(50):
        call(app, base_environ(REQUEST_METHOD=f"M{i}"))
    series = {tuple(sorted(p.attributes.items())) for p in telemetry.points("http.server.request.duration")}
    # routes x methods x statuses: /items/<name>, unmatched 404, / ; GET and _OTHER (405s)
    assert len(series) <= 5, series
    assert len(monitor.pipeline.request_metrics._series) == len(series)
