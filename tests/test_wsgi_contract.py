"""PEP 3333 contract of the request path: streaming, close(), errors mid-stream, concurrency."""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry.trace import StatusCode

from otel_monitor.testing import Telemetry

from .conftest import HANG_S


class Body:
    """An app iterable that records how it is used."""

    def __init__(self, chunks, delay=0.0, fail_at=None):
        self.chunks, self.delay, self.fail_at = chunks, delay, fail_at
        self.close_calls = 0

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if self.fail_at == i:
                raise OSError("disk went away mid-stream")
            time.sleep(self.delay)
            yield chunk

    def close(self):
        self.close_calls += 1


def make(monitors, body_factory):
    bodies = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        body = body_factory()
        bodies.append(body)
        return body

    wrapped = monitors.wrap(app, system_metrics=False, service_name="contract", metrics_body_size=True)
    return wrapped, Telemetry(wrapped.monitor), bodies


def environ(path="/stream"):
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": None,
    }


def active(telemetry):
    points = telemetry.points("http.server.active_requests")
    return sum(p.value for p in points)


def test_a_streaming_response_is_timed_to_its_last_chunk_and_active_until_read_to_the_end(monitors):
    app, telemetry, bodies = make(monitors, lambda: Body([b"a", b"b", b"c"], delay=0.1))
    result = app(environ(), lambda s, h, e=None: None)
    assert active(telemetry) == 1
    assert b"".join(result) == b"abc"
    # Read to the end but not closed (yet, or ever: a test client): a reading of the metrics
    # records it, timed to its last chunk; close() then adds nothing (docs/request-path.md).
    assert active(telemetry) == 0
    result.close()
    assert active(telemetry) == 0 and bodies[0].close_calls == 1
    (span,) = telemetry.spans()
    assert (span.end_time - span.start_time) / 1e9 >= 0.3
    point = telemetry.point("http.server.request.duration")
    assert point.sum >= 0.3
    assert telemetry.point("http.server.response.body.size").sum == 3


def test_close_without_iterating_calls_the_inner_close_once_and_ends_the_span(monitors):
    app, telemetry, bodies = make(monitors, lambda: Body([b"never sent"]))
    result = app(environ(), lambda s, h, e=None: None)
    result.close()
    result.close()  # a second close is harmless
    assert bodies[0].close_calls == 1
    assert len(telemetry.spans()) == 1
    assert active(telemetry) == 0


def test_a_client_disconnect_mid_stream_closes_the_inner_iterable_once(monitors):
    app, telemetry, bodies = make(monitors, lambda: Body([b"1", b"2", b"3"]))
    result = app(environ(), lambda s, h, e=None: None)
    iterator = iter(result)
    next(iterator)
    result.close()  # what a server does when the client goes away
    assert bodies[0].close_calls == 1
    assert len(telemetry.spans()) == 1 and active(telemetry) == 0


def test_a_generator_raising_mid_stream_reaches_the_server_and_marks_the_span_failed(monitors):
    app, telemetry, bodies = make(monitors, lambda: Body([b"1", b"2"], fail_at=1))
    result = app(environ(), lambda s, h, e=None: None)
    with pytest.raises(OSError, match="mid-stream"):
        b"".join(result)
    result.close()
    assert bodies[0].close_calls == 1
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "OSError"
    assert telemetry.point("http.server.request.duration").attributes["error.type"] == "OSError"
    assert active(telemetry) == 0


def test_an_exception_before_start_response_propagates_unchanged_and_is_recorded(monitors):
    def app(environ, start_response):
        raise KeyError("missing")

    wrapped = monitors.wrap(app, system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    with pytest.raises(KeyError):
        wrapped(environ("/"), lambda s, h, e=None: None)
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == "KeyError"
    # No response was started: the server answers 500, and that is the recorded status.
    assert span.attributes["http.response.status_code"] == 500
    point = telemetry.point("http.server.request.duration")
    assert point.attributes["http.response.status_code"] == 500 and point.attributes["error.type"] == "KeyError"
    assert active(telemetry) == 0


def test_concurrent_requests_and_a_slow_one_count_exactly_and_return_active_to_zero(monitors):
    release = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            release.wait(HANG_S)  # released by the test, however long the fast requests take
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = monitors.wrap(app, system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    errors = []

    def call(path):
        try:
            result = wrapped(environ(path), lambda s, h, e=None: None)
            b"".join(result)
            result.close()
        except Exception as exc:  # noqa: BLE001 - any error is collected and asserted on
            errors.append(exc)

    slow = threading.Thread(target=call, args=("/slow",))
    slow.start()
    workers = [threading.Thread(target=lambda: [call("/fast") for _ in range(100)]) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert active(telemetry) == 1  # only the slow request is in flight
    release.set()
    slow.join(HANG_S)
    assert errors == []
    assert len(telemetry.spans()) == 801
    assert telemetry.point("http.server.request.duration").count == 801
    assert active(telemetry) == 0


def test_a_real_client_disconnecting_mid_stream_ends_the_request_cleanly(monitors):
    """Werkzeug's threaded server, a raw socket that reads one chunk and hangs up."""
    import socket

    from werkzeug.serving import make_server

    app, telemetry, bodies = make(monitors, lambda: Body([b"x" * 65536] * 200, delay=0.01))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
        client.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        client.close()
        deadline = time.monotonic() + HANG_S
        while time.monotonic() < deadline and not (bodies and bodies[0].close_calls):
            time.sleep(0.05)
        assert bodies[0].close_calls == 1
        assert len(telemetry.spans()) == 1 and active(telemetry) == 0
    finally:
        server.shutdown()


def test_an_exception_in_an_unsampled_request_still_gives_its_class_and_status_to_the_metric(monitors):
    def app(environ, start_response):
        raise KeyError("missing")

    wrapped = monitors.wrap(app, system_metrics=False, traces_sampler="always_off")
    telemetry = Telemetry(wrapped.monitor)
    with pytest.raises(KeyError):
        wrapped(environ("/"), lambda s, h, e=None: None)
    assert telemetry.spans() == []
    point = telemetry.point("http.server.request.duration")
    assert point.attributes["error.type"] == "KeyError" and point.attributes["http.response.status_code"] == 500
