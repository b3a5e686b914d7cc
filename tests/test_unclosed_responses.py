"""A request is recorded exactly once whatever the server does with the response body.

close() called: recorded there (as PEP 3333 servers do). Never closed: recorded when the body is
garbage-collected, timed to its last byte if it was read to the end. active_requests returns to 0.
"""

from __future__ import annotations

import gc
import threading
import time

from flask import Flask

import otel_monitor
from otel_monitor import Monitor
from otel_monitor.request._request_path import _ABANDONED
from otel_monitor.testing import Telemetry


def flask_app():
    app = Flask("unclosed")

    @app.get("/x")
    def x():
        return "ok"

    monitor = Monitor(app, system_metrics=False, analytics=False)
    return app, monitor, Telemetry(monitor)


def count(telemetry) -> int:
    return sum(p.count for p in telemetry.points("http.server.request.duration"))


def active(telemetry) -> int:
    return sum(p.value for p in telemetry.points("http.server.active_requests"))


def test_a_hundred_unclosed_test_client_responses_are_each_counted_once_and_leave_none_active():
    app, monitor, telemetry = flask_app()
    client = app.test_client()  # the plain client users write their tests with: no close()
    for _ in range(100):
        client.get("/x")
    gc.collect()
    assert count(telemetry) == 100
    assert active(telemetry) == 0
    assert len(telemetry.spans()) == 100
    assert count(telemetry) == 100  # reading again adds nothing
    monitor.shutdown(1)


def test_an_unclosed_response_whose_body_was_read_is_recorded_with_its_status_and_route():
    app, monitor, telemetry = flask_app()
    response = app.test_client().get("/x")
    assert response.data == b"ok"
    del response
    gc.collect()
    point = telemetry.point("http.server.request.duration")
    assert point.count == 1
    assert point.attributes["http.route"] == "/x" and point.attributes["http.response.status_code"] == 200
    (span,) = telemetry.spans()
    assert span.name == "GET /x"
    monitor.shutdown(1)


def test_a_closed_response_is_not_recorded_again_when_it_is_collected():
    app, monitor, telemetry = flask_app()
    response = app.test_client().get("/x")
    response.close()
    del response
    gc.collect()
    assert count(telemetry) == 1 and len(telemetry.spans()) == 1
    monitor.shutdown(1)


def body_app(chunks, delay=0.0):
    def generate():
        for chunk in chunks:
            time.sleep(delay)
            yield chunk

    def app(environ, start_response):
        start_response("200 OK", [])
        return generate()

    wrapped = otel_monitor.wrap(app, system_metrics=False, service_name="unclosed", metrics_body_size=True)
    return wrapped, Telemetry(wrapped.monitor)


ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "x", "SERVER_PORT": "80"}


def test_an_exhausted_body_never_closed_is_timed_to_its_last_byte_not_to_its_collection():
    wrapped, telemetry = body_app([b"a", b"b"], delay=0.05)
    started = time.perf_counter()
    body = wrapped(dict(ENVIRON), lambda s, h, e=None: None)
    assert b"".join(body) == b"ab"
    last_byte = time.perf_counter()  # the body is exhausted
    time.sleep(0.2)  # the server drops it later
    del body
    gc.collect()
    point = telemetry.point("http.server.request.duration")
    # timed from before the call to no later than the last byte (not to the collection, after it)
    assert point.count == 1 and 0.1 <= point.sum <= last_byte - started
    assert telemetry.point("http.server.response.body.size").sum == 2
    (span,) = telemetry.spans()
    assert 0.1e9 <= span.end_time - span.start_time <= (last_byte - started) * 1e9
    wrapped.monitor.shutdown(1)


def test_a_body_dropped_without_iterating_or_closing_is_recorded_once_when_collected():
    wrapped, telemetry = body_app([b"never"])
    body = wrapped(dict(ENVIRON), lambda s, h, e=None: None)
    assert active(telemetry) == 1
    del body
    gc.collect()
    assert active(telemetry) == 0 and count(telemetry) == 1
    wrapped.monitor.shutdown(1)


def test_a_body_collected_in_a_reference_cycle_is_recorded_by_the_next_request_outside_any_lock():
    wrapped, telemetry = body_app([b"x"])
    body = wrapped(dict(ENVIRON), lambda s, h, e=None: None)
    cycle = [body]
    cycle.append(cycle)
    del body, cycle
    gc.collect()  # the finalizer only queues the request ...
    assert len(_ABANDONED) == 1
    follow_up = wrapped(dict(ENVIRON), lambda s, h, e=None: None)  # ... the next request records it
    assert len(_ABANDONED) == 0
    follow_up.close()
    assert count(telemetry) == 2 and active(telemetry) == 0
    wrapped.monitor.shutdown(1)


def test_a_finalizer_running_while_the_request_metrics_lock_is_held_does_not_deadlock():
    wrapped, telemetry = body_app([b"x"])
    metrics = wrapped.monitor.pipeline.request_metrics
    body = wrapped(dict(ENVIRON), lambda s, h, e=None: None)
    done = threading.Event()

    def collect_under_our_lock():
        with metrics._lock:  # what a GC pass during record() looks like
            nonlocal body
            body = None
            gc.collect()
        done.set()

    worker = threading.Thread(target=collect_under_our_lock, daemon=True)
    worker.start()
    assert done.wait(10), "the finalizer blocked on the request-metrics lock"
    assert count(telemetry) == 1
    wrapped.monitor.shutdown(1)


def scraped_count(client) -> int:
    """``http.server.request.duration``'s count on ``/metrics``, as Prometheus would read it."""
    text = client.get("/metrics").get_data(as_text=True)
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("http_server_request_duration_seconds_count{")
    )


def test_unclosed_error_responses_of_the_plain_test_client_are_counted_by_the_next_scrape_without_the_gc():
    app = Flask("unclosed_errors")

    @app.get("/boom")
    def boom():
        raise ValueError("boom")

    app.logger.disabled = True  # Flask's traceback log is not what is tested
    monitor = Monitor(app, system_metrics=False, analytics=False)
    client = app.test_client()  # responses never closed
    gc.disable()  # Flask's exception and routing tracebacks make cycles: nothing may wait for the collector
    try:
        for _ in range(7):
            assert client.get("/boom").status_code == 500
        assert scraped_count(app.test_client()) == 7
        for _ in range(50):
            assert client.get("/missing").status_code == 404
        assert scraped_count(app.test_client()) == 57
    finally:
        gc.enable()
    gc.collect()
    assert scraped_count(app.test_client()) == 57  # counted once: the collection adds nothing
    assert monitor.pipeline.active == set()
    monitor.shutdown(1)


def test_no_response_body_outlives_a_collection_through_the_exceptions_traceback():
    from otel_monitor.request._request_path import _ResponseBody

    app = Flask("unclosed_errors")

    @app.get("/boom")
    def boom():
        raise ValueError("boom")

    app.logger.disabled = True
    monitor = Monitor(app, system_metrics=False, analytics=False)
    client = app.test_client()
    for _ in range(7):
        client.get("/boom")
    gc.collect()
    assert [o for o in gc.get_objects() if type(o) is _ResponseBody] == []
    telemetry = Telemetry(monitor)
    assert count(telemetry) == 7
    monitor.shutdown(1)


def test_a_body_ended_by_a_scrape_and_closed_later_is_counted_once_and_closed_once():
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return Body([b"o", b"k"])

    wrapped = otel_monitor.wrap(app, system_metrics=False, service_name="unclosed")
    telemetry = Telemetry(wrapped.monitor)
    body = wrapped(dict(ENVIRON), lambda s, h, e=None: None)
    assert b"".join(body) == b"ok"
    assert count(telemetry) == 1  # every byte handed out: the scrape records it
    body.close()  # the server's close() comes after the scrape
    assert closed == [True] and count(telemetry) == 1 and len(telemetry.spans()) == 1
    wrapped.monitor.shutdown(1)


def test_a_body_read_to_its_content_length_but_not_exhausted_is_timed_to_that_byte():
    def app(environ, start_response):
        def generate():
            yield b"ok"
            time.sleep(0.3)  # never reached: the consumer stops at the declared length
            yield b""

        start_response("200 OK", [("content-length", "2")])
        return generate()

    wrapped = otel_monitor.wrap(app, system_metrics=False, service_name="unclosed")
    telemetry = Telemetry(wrapped.monitor)
    started = time.perf_counter()
    body = wrapped(dict(ENVIRON), lambda s, h, e=None: None)
    assert next(iter(body)) == b"ok"
    last_byte = time.perf_counter()
    time.sleep(0.2)  # the scrape comes later: the duration must not stretch to it
    point = telemetry.point("http.server.request.duration")
    assert point.count == 1 and point.sum <= last_byte - started
    assert active(telemetry) == 0
    del body
    wrapped.monitor.shutdown(1)
