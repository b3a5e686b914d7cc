"""A Flask app behind an instrumented outer layer (an ASGI server's OpenTelemetryMiddleware around a
WSGI adapter): one SERVER span per request, the outer one, carrying Flask's route, status and error."""

from __future__ import annotations

import asyncio

from a2wsgi import WSGIMiddleware
from flask import Flask
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.trace import SpanKind, StatusCode

from otel_monitor.testing import Telemetry


def _get(asgi_app, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
    }
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(asgi_app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def test_an_instrumented_asgi_layer_keeps_the_only_server_span_and_gets_flasks_route_and_error(monitors):
    app = Flask("mounted")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int):
        if order_id == 13:
            raise LookupError("no such order")
        return "ok"

    monitor = monitors(app, analytics=False, system_metrics=False)
    telemetry = Telemetry(monitor)
    outer = OpenTelemetryMiddleware(WSGIMiddleware(app), tracer_provider=monitor.tracer_provider)

    assert _get(outer, "/orders/7") == 200
    assert _get(outer, "/orders/13") == 500
    spans = telemetry.spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    route = "/orders/<int:order_id>"
    assert [(s.name, s.attributes["http.route"]) for s in servers] == [(f"GET {route}", route)] * 2
    ours = [s for s in spans if s.instrumentation_scope.name == "otel_monitor"]
    assert [s.kind for s in ours] == [SpanKind.INTERNAL] * 2
    assert all(s.parent is not None and s.parent.span_id in {p.context.span_id for p in servers} for s in ours)
    failed = servers[1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "LookupError" and failed.attributes["http.response.status_code"] == 500
    assert (
        telemetry.point(
            "http.server.request.duration", **{"http.route": "/orders/<int:order_id>", "http.response.status_code": 200}
        ).count
        == 1
    )


def test_without_an_outer_layer_the_flask_span_is_the_server_span(monitors):
    app = Flask("plain")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int):
        return "ok"

    monitor = monitors(app, analytics=False, system_metrics=False)
    telemetry = Telemetry(monitor)
    assert _get(WSGIMiddleware(app), "/orders/7") == 200
    (span,) = telemetry.spans()
    assert (span.kind, span.name, span.instrumentation_scope.name) == (
        SpanKind.SERVER,
        "GET /orders/<int:order_id>",
        "otel_monitor",
    )
