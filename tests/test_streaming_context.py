"""The request context is current while the response body is iterated and closed."""

from __future__ import annotations

from flask import Flask, Response, stream_with_context
from opentelemetry import trace

import otel_monitor
from otel_monitor import Monitor
from otel_monitor.testing import Telemetry, closing_client


def test_spans_started_in_a_flask_streaming_generator_are_children_of_the_request_span():
    app = Flask("streaming")
    monitor = Monitor(app, system_metrics=False, analytics=False)
    telemetry = Telemetry(monitor)

    @app.get("/stream")
    def stream():
        def generate():
            for i in range(3):
                with monitor.tracer.start_as_current_span(f"chunk {i}"):
                    yield f"{i}\n"

        return Response(stream_with_context(generate()))

    assert closing_client(app).get("/stream").data == b"0\n1\n2\n"
    spans = {s.name: s for s in telemetry.spans()}
    server = spans["GET /stream"]
    for i in range(3):
        chunk = spans[f"chunk {i}"]
        assert chunk.context.trace_id == server.context.trace_id
        assert chunk.parent.span_id == server.context.span_id
    monitor.shutdown(1)


class Body:
    """A body that notes the current span at each step and at close()."""

    def __init__(self):
        self.seen: list[tuple[str, int]] = []

    def __iter__(self):
        for i in range(2):
            self.seen.append((f"chunk {i}", trace.get_current_span().get_span_context().span_id))
            yield b"x"
        self.seen.append(("end", trace.get_current_span().get_span_context().span_id))

    def close(self):
        self.seen.append(("close", trace.get_current_span().get_span_context().span_id))


def test_the_request_span_is_current_at_each_step_and_at_close_but_not_between_chunks():
    bodies = []

    def app(environ, start_response):
        start_response("200 OK", [])
        bodies.append(Body())
        return bodies[-1]

    wrapped = otel_monitor.wrap(app, system_metrics=False, service_name="streaming")
    telemetry = Telemetry(wrapped.monitor)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "x", "SERVER_PORT": "80"}
    body = wrapped(environ, lambda s, h, e=None: None)
    between = []
    for _ in body:
        between.append(trace.get_current_span().get_span_context().is_valid)  # the server's code
    body.close()
    (span,) = telemetry.spans()
    assert bodies[0].seen == [(step, span.context.span_id) for step in ("chunk 0", "chunk 1", "end", "close")]
    assert between == [False, False]
    assert not trace.get_current_span().get_span_context().is_valid
    wrapped.monitor.shutdown(1)
