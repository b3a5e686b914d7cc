"""Collector and exporter faults: the app never notices, shutdown is bounded, drops are counted."""

from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from otel_monitor.settings import resolve_settings
from otel_monitor.telemetry import pipeline as pipeline_module
from otel_monitor.telemetry.pipeline import span_exporters
from otel_monitor.testing import Telemetry, closing_client

from .conftest import completes, free_port


def app_with(monitors, **settings):
    app = Flask("faults")
    app.add_url_rule("/", "index", lambda: "ok")
    monitor = monitors(app, system_metrics=False, **settings)
    return app, monitor


@pytest.fixture
def blackhole():
    """A socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(200)
    yield listener.getsockname()[1]
    listener.close()


#: every OTLP export may wait this long (the setting's maximum): work that waited for the dead
#: collector on the request path or in shutdown() would hang for a minute, which completes() reports
EXPORT_TIMEOUT_S = 60


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("target", ["closed-port", "blackhole"])
def test_a_dead_collector_never_holds_up_or_fails_a_request_and_shutdown_is_bounded(
    protocol, target, blackhole, monitors
):
    port = blackhole if target == "blackhole" else free_port()
    dead_app, dead = app_with(
        monitors,
        traces_exporter="otlp",
        metrics_exporter="otlp",
        otlp_protocol=protocol,
        otlp_endpoint=f"http://127.0.0.1:{port}",
        otlp_timeout=EXPORT_TIMEOUT_S,
        metric_export_interval=200,
        shutdown_timeout=1,
    )
    client = closing_client(dead_app)

    def serve() -> list[int]:
        return [client.get("/").status_code for _ in range(400)]

    # export never runs on the request path: 400 requests while exports wait on the dead collector
    assert completes(serve) == [200] * 400
    assert completes(dead.shutdown) in (True, False)  # bounded by shutdown_timeout, not the export


class Flaky(BaseHTTPRequestHandler):
    calls: list = []
    status = 503

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Flaky.calls.append(time.monotonic())
        if len(Flaky.calls) == 1:
            self.send_response(Flaky.status)
            self.send_header("Retry-After", "1")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [503, 429])
def test_an_overloaded_http_receiver_is_retried_after_its_retry_after(status, monitors):
    Flaky.calls, Flaky.status = [], status
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    settings = resolve_settings(
        {"traces_exporter": "otlp", "otlp_endpoint": f"http://127.0.0.1:{port}", "otlp_timeout": 5}
    )
    (exporter,) = span_exporters(settings)
    app, monitor = app_with(monitors)
    Telemetry(monitor)
    closing_client(app).get("/")
    from opentelemetry.sdk.trace.export import SpanExportResult

    spans = monitor.tracer_provider._active_span_processor._span_processors[-1].span_exporter.get_finished_spans()
    assert exporter.export(list(spans)) is SpanExportResult.SUCCESS
    assert len(Flaky.calls) == 2
    # honoured Retry-After: 1 (less jitter); a busy machine only makes the gap longer
    assert Flaky.calls[1] - Flaky.calls[0] >= 0.7
    server.shutdown()


def test_grpc_unavailable_is_retried_with_bounded_backoff(monitors):
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    calls = []

    def export(request, context):
        calls.append(time.monotonic())
        if len(calls) == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "busy")
        return trace_service_pb2.ExportTraceServiceResponse()

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
                response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings = resolve_settings(
        {
            "traces_exporter": "otlp",
            "otlp_protocol": "grpc",
            "otlp_endpoint": f"http://127.0.0.1:{port}",
            "otlp_timeout": 5,
        }
    )
    (exporter,) = span_exporters(settings)
    app, monitor = app_with(monitors)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert exporter.export(telemetry.spans()) is SpanExportResult.SUCCESS
    assert len(calls) == 2
    server.stop(0)


def test_shutdown_with_thousands_of_spans_queued_and_the_collector_dead_is_bounded(blackhole, monitors):
    app, monitor = app_with(
        monitors,
        traces_exporter="otlp",
        metrics_exporter="none",
        otlp_endpoint=f"http://127.0.0.1:{blackhole}",
        otlp_timeout=EXPORT_TIMEOUT_S,
        shutdown_timeout=2,
    )
    client = closing_client(app)
    for _ in range(2500):  # the queue (2,048) full: more than a shutdown can flush
        client.get("/")
    completes(monitor.shutdown)  # never raises; waits shutdown_timeout, not the stuck export's 60 s


def test_sustained_load_with_the_collector_dead_drops_spans_counts_them_and_logs_once(caplog, blackhole, monitors):
    app, monitor = app_with(
        monitors,
        traces_exporter="otlp",
        metrics_exporter="none",
        otlp_endpoint=f"http://127.0.0.1:{blackhole}",
        otlp_timeout=EXPORT_TIMEOUT_S,  # the first export holds its batch for the whole test
        shutdown_timeout=1,
    )
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    with caplog.at_level(logging.WARNING):
        started = time.time()
        for _ in range(3000):
            client.get("/")
        # the SDK logs "Queue full" once per 20-second bucket of the clock (its DuplicateFilter)
        buckets = int(time.time() // 20) - int(started // 20) + 1
    queue = telemetry.point("otel.sdk.processor.span.queue.size", **{"otel.component.type": "batching_span_processor"})
    assert queue.value <= 2048
    dropped = telemetry.point("otel.sdk.processor.span.processed", **{"error.type": "queue_full"})
    # the queue (2048) and the one batch stuck in the export (at most 512) hold the rest
    assert dropped.value >= 3000 - 2048 - 512
    # hundreds of drops, one log line per 20 s at most
    assert sum("Queue full" in r.getMessage() for r in caplog.records) <= buckets
    assert "otel_sdk_processor_span_processed_total" in client.get("/metrics").get_data(as_text=True)


def test_exceptions_inside_the_tracer_and_the_meter_never_change_the_response(monkeypatch, caplog, monitors):
    app, monitor = app_with(monitors)
    client = closing_client(app)
    pipeline = monitor.pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("sdk bug")

    # the id generator: the SDK's span draws its ids with generate_span_id, the light request span
    # with the generator's random_bits, which its ServerSpans took when they were made
    monkeypatch.setattr(pipeline.tracer.id_generator, "generate_span_id", broken)
    assert pipeline.server_spans is not None
    monkeypatch.setattr(pipeline.server_spans, "_bits", broken)
    response = client.get("/")
    assert (response.status_code, response.data) == (200, b"ok")
    monkeypatch.undo()
    monkeypatch.setattr(pipeline.request_metrics, "record", broken)
    for _ in range(5):
        response = client.get("/")
        assert (response.status_code, response.data) == (200, b"ok")
    assert sum("sdk bug" in r.getMessage() for r in caplog.records) == 2  # once per kind of failure


class Exploding(SpanExporter):
    """An exporter with a bug: it counts the spans it is handed, then raises."""

    def __init__(self) -> None:
        self.handed = 0

    def export(self, spans):
        self.handed += len(spans)
        raise RuntimeError("exporter bug")

    def shutdown(self):
        pass


class ExportingInline(SpanProcessor):
    """Exports each span on the thread that ends it, with no guard (as some third-party processors do)."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def on_end(self, span):
        self.exporter.export((span,))


def test_an_exporter_that_raises_never_reaches_the_request(monkeypatch, monitors, caplog):
    # The pipeline's own exporter (as OTLP would be wired, but raising) runs on the batch thread;
    # one run inline by another processor raises inside span.end(), on the request's own thread.
    batched, inline = Exploding(), Exploding()
    monkeypatch.setattr(pipeline_module, "span_exporters", lambda settings: [batched])
    app = Flask("faults")
    app.add_url_rule("/users/<int:user_id>", "user", lambda user_id: {"id": user_id})
    monitor = monitors(app, system_metrics=False)
    telemetry = Telemetry(monitor)  # before the inline processor, which stops the ones after it
    monitor.tracer_provider.add_span_processor(ExportingInline(inline))
    client = closing_client(app)
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        for _ in range(50):
            response = client.get("/users/7")
            assert (response.status_code, response.get_json()) == (200, {"id": 7})
    assert monitor.tracer_provider.force_flush(5000)
    assert (batched.handed, inline.handed) == (50, 50)  # both really ran and raised, once per span
    assert [s.name for s in telemetry.spans()] == ["GET /users/<int:user_id>"] * 50
    assert telemetry.point("http.server.request.duration", **{"http.route": "/users/<int:user_id>"}).count == 50
    logged = [r.getMessage() for r in caplog.records if r.name == "otel_monitor" and "exporter bug" in r.getMessage()]
    # once for the inline raise on the request's thread, once for the batch export's lost spans:
    # not per request, not per batch
    assert len(logged) == 2, logged
    assert "recording request telemetry (RuntimeError: exporter bug)" in logged[0]
    assert "span(s) not exported (RuntimeError: exporter bug)" in logged[1]
