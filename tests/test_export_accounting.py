"""Every span an export loses is counted with its reason; Retry-After holds back the next export."""

from __future__ import annotations

import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_monitor import Monitor
from otel_monitor.telemetry._export_accounting import EXPORTED_METRIC, AccountedSpanExporter, lost_spans
from otel_monitor.testing import closing_client

from .conftest import HANG_S, free_port


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that answers every POST with ``status`` (and ``retry_after``)."""

    status = 503
    retry_after: str | None = None
    posts: list = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.posts.append(time.monotonic())
        self.send_response(Receiver.status)
        if Receiver.retry_after:
            self.send_header("Retry-After", Receiver.retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.status, Receiver.retry_after, Receiver.posts = 503, None, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _app(port: int, **settings):
    app = Flask("accounting")
    app.add_url_rule("/", "index", lambda: "ok")
    monitor = Monitor(
        app,
        system_metrics=False,
        traces_exporter="otlp",
        metrics_exporter="none",
        logs_exporter="none",  # the receiver counts span posts only
        otlp_protocol="http/protobuf",
        otlp_endpoint=f"http://127.0.0.1:{port}",
        **settings,
    )
    return app, monitor


def _exported(monitor) -> dict:
    """error.type (None: exported) -> spans, from the pipeline's own metrics."""
    result: dict = {}
    data = monitor.pipeline.reader.snapshot()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == EXPORTED_METRIC:
                    for p in metric.data.data_points:
                        assert p.attributes["otel.component.type"] == "otlp_http_span_exporter"
                        key = p.attributes.get("error.type")
                        result[key] = result.get(key, 0) + p.value
    return result


def test_spans_a_collector_answers_503_for_are_all_counted_as_lost_and_logged_once(receiver, caplog):
    app, monitor = _app(receiver, otlp_timeout=1)
    client = closing_client(app)
    with caplog.at_level(logging.WARNING):
        for _ in range(300):
            client.get("/")
        assert monitor.tracer_provider.force_flush(HANG_S * 1000)
        assert _exported(monitor) == {"503": 300}
        assert lost_spans(monitor.pipeline.reader.snapshot()) == {"503": 300}
        for _ in range(300):
            client.get("/")
        assert monitor.tracer_provider.force_flush(HANG_S * 1000)
    assert _exported(monitor) == {"503": 600}
    health = client.get("/otel-monitor/health").get_json()
    assert health["telemetry"] == {"spans_lost": {"503": 600}, "logs_lost": {}}  # what the health card shows
    exposition = client.get("/metrics").get_data(as_text=True)
    exported = [line for line in exposition.splitlines() if line.startswith("otel_sdk_exporter_span_exported_total")]
    # (the family's lines in the message: a run under load once found no such line, cause unknown)
    assert [line for line in exported if re.search(r'error_type="503"[^}]*\} 600$', line)], exported or exposition
    ours = [r for r in caplog.records if "not exported" in r.getMessage()]
    assert len(ours) == 1 and "503" in ours[0].getMessage()
    sdk = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter") and "Failed to export" in r.msg]
    assert len(sdk) <= 1  # the SDK logs every batch; we let one line through per minute
    monitor.shutdown(timeout=2)


def test_spans_sent_to_a_closed_port_are_all_counted_as_lost():
    app, monitor = _app(free_port(), otlp_timeout=1)
    client = closing_client(app)
    for _ in range(700):
        client.get("/")
    assert monitor.tracer_provider.force_flush(HANG_S * 1000)
    lost = _exported(monitor)
    assert None not in lost and sum(lost.values()) == 700, lost
    monitor.shutdown(timeout=2)


def test_retry_after_beyond_the_export_timeout_holds_back_the_next_posts(receiver):
    Receiver.retry_after = "30"
    app, monitor = _app(receiver, otlp_timeout=2)
    client = closing_client(app)
    client.get("/")
    assert monitor.tracer_provider.force_flush(HANG_S * 1000)  # one post: 503, Retry-After: 30
    for _ in range(3):  # what three more batch intervals would export, forced: the SDK alone posts each
        for _ in range(50):
            client.get("/")
        assert monitor.tracer_provider.force_flush(HANG_S * 1000)
    assert len(Receiver.posts) == 1
    assert _exported(monitor) == {"503": 1, "retry_after": 150}
    monitor.shutdown(timeout=2)


def _accounted(inner):
    reader = InMemoryMetricReader()
    return AccountedSpanExporter(inner, MeterProvider(metric_readers=[reader]), timeout_s=1.0), reader


def _spans(n: int) -> list:
    exporter = InMemorySpanExporter()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for _ in range(n):
        provider.get_tracer("t").start_span("s").end()
    return list(exporter.get_finished_spans())


def test_exported_spans_are_counted_without_an_error_type():
    exporter, reader = _accounted(InMemorySpanExporter())
    assert exporter.export(_spans(3)) is SpanExportResult.SUCCESS
    (point,) = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert point.value == 3 and "error.type" not in point.attributes


def test_an_exporter_that_raises_loses_the_batch_counted_by_exception_type(caplog):
    class Broken(InMemorySpanExporter):
        def export(self, spans):
            raise ConnectionError("refused\r\nforged line")

    exporter, reader = _accounted(Broken())
    assert exporter.export(_spans(2)) is SpanExportResult.FAILURE
    assert lost_spans(reader.get_metrics_data()) == {"ConnectionError": 2}
    assert "\r\n" not in caplog.records[-1].getMessage()


def test_spans_exported_after_shutdown_are_counted_as_lost_to_shutdown():
    exporter, reader = _accounted(InMemorySpanExporter())
    exporter.shutdown()
    assert exporter.export(_spans(4)) is SpanExportResult.FAILURE
    assert lost_spans(reader.get_metrics_data()) == {"shutdown": 4}


def test_spans_still_queued_when_the_shutdown_timeout_ends_are_counted_as_lost_to_shutdown():
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_monitor.telemetry._export_accounting import count_unexported_at_shutdown

    release, exporting = threading.Event(), threading.Event()

    class Stuck(InMemorySpanExporter):
        def export(self, spans):
            exporting.set()
            release.wait(HANG_S)  # a collector that does not answer
            return SpanExportResult.FAILURE

    exporter, reader = _accounted(Stuck())
    processor = count_unexported_at_shutdown(
        BatchSpanProcessor(exporter, max_queue_size=2048, max_export_batch_size=512, schedule_delay_millis=50)
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    for _ in range(1500):
        provider.get_tracer("t").start_span("s").end()
    assert exporting.wait(HANG_S)  # the first batch is in the stuck export
    # What a bounded shutdown does: the SDK's batch processor gives its worker 100 ms, then shuts
    # the exporter down with the rest still queued (BatchSpanProcessor.shutdown() itself waits 30 s).
    processor._batch_processor.shutdown(timeout_millis=100)
    release.set()
    deadline = time.monotonic() + HANG_S
    while sum(lost_spans(reader.get_metrics_data()).values()) < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    lost = lost_spans(reader.get_metrics_data())
    assert sum(lost.values()) == 1500, lost
    assert lost["shutdown"] >= 1500 - 512


# -- log records, and an export that ends after its timeout -----------------------------------------


def test_log_records_a_collector_answers_503_for_are_counted_as_lost_by_reason(receiver, monkeypatch):
    from otel_monitor.telemetry import _logs, _providers
    from otel_monitor.telemetry._export_accounting import LOG_EXPORTED_METRIC, lost_logs

    monkeypatch.setattr(_providers, "_order", [])  # this monitor serves the process's logs
    _logs.remove_root_handler()

    app = Flask("accounting_logs")

    @app.get("/")
    def index():
        logging.getLogger("shop").warning("order placed")
        return "ok"

    monitor = Monitor(
        app,
        system_metrics=False,
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="otlp",
        otlp_protocol="http/protobuf",
        otlp_endpoint=f"http://127.0.0.1:{receiver}",
        otlp_timeout=1,
    )
    try:
        client = closing_client(app)
        for _ in range(40):
            client.get("/")
        assert monitor.pipeline.logger_provider.force_flush(5000)
        data = monitor.pipeline.reader.snapshot()
        assert lost_logs(data) == {"503": 40}
        health = client.get("/otel-monitor/health").get_json()
        assert health["telemetry"]["logs_lost"] == {"503": 40}
        exposition = client.get("/metrics").get_data(as_text=True)
        name = LOG_EXPORTED_METRIC.replace(".", "_") + "_total"
        assert re.search(rf'^{name}\{{[^}}]*error_type="503"[^}}]*\}} 40$', exposition, re.M), exposition
    finally:
        monitor.shutdown(timeout=2)
        _logs.remove_root_handler()


class Slow(BaseHTTPRequestHandler):
    """Receives every batch, and answers after ``delay`` seconds (past the exporter's timeout)."""

    delay = 1.3
    received: list = []

    def do_POST(self):
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        Slow.received.append(sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans))
        time.sleep(Slow.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_export_answered_after_its_timeout_is_counted_lost_once_with_the_sdks_own_metrics_on(monkeypatch):
    # The SDK's exporters count their own outcome under the same metric name when this variable
    # is set (on the global meter provider: ours); a timed-out batch was counted lost twice.
    from otel_monitor.telemetry import _providers

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    monkeypatch.setattr(_providers, "_order", [])  # this monitor is the one behind the global providers
    Slow.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app, monitor = _app(server.server_address[1], otlp_timeout=1)
    try:
        client = closing_client(app)
        for _ in range(300):
            client.get("/")
        if _providers.installed().get("metrics") != "ours":
            pytest.skip("this test process's global meter provider is not otel_monitor's")
        monitor.tracer_provider.force_flush(10_000)
        lost = lost_spans(monitor.pipeline.reader.snapshot())
        assert sum(Slow.received) == 300  # the collector got every span ...
        assert lost == {"ReadTimeout": 300}  # ... which the exporter could not know: lost, once
    finally:
        monitor.shutdown(timeout=2)
        server.shutdown()
        server.server_close()


# -- the exporter's public surface: its session= argument, no patched methods ------------------------


def test_the_export_session_tells_the_running_export_its_status_and_retry_after(receiver):
    from otel_monitor.telemetry._export_accounting import current_outcome, observed_export
    from otel_monitor.telemetry._export_session import ExportSession

    Receiver.retry_after = "30"
    session = ExportSession()
    url = f"http://127.0.0.1:{receiver}/v1/traces"
    assert session.post(url, data=b"x", timeout=HANG_S).status_code == 503  # outside an export: a plain session
    assert current_outcome() is None
    with observed_export() as outcome:
        session.post(url, data=b"x", timeout=HANG_S)
    assert outcome.status == 503 and outcome.error is None
    assert 25 < outcome.not_before - time.monotonic() <= 30
    import requests

    with observed_export() as outcome:
        with pytest.raises(requests.ConnectionError):
            session.post(f"http://127.0.0.1:{free_port()}/v1/traces", data=b"x", timeout=HANG_S)
    assert (outcome.status, outcome.error) == (None, "ConnectionError")
    assert current_outcome() is None  # each export's outcome ends with it


def test_a_retry_whose_deadline_passed_is_a_timeout_and_the_export_keeps_the_cause_its_attempts_met(receiver):
    """The SDK's retry hands the session max(deadline - now, 0) (at load 10 its backoff wakes after the
    deadline): no request is sent, requests' ValueError for a zero timeout becomes a Timeout, and the
    503 the earlier attempt got stays the export's outcome."""
    import requests

    from otel_monitor.telemetry._export_accounting import observed_export
    from otel_monitor.telemetry._export_session import ExportSession

    session = ExportSession()
    url = f"http://127.0.0.1:{receiver}/v1/traces"
    with observed_export() as outcome:
        session.post(url, data=b"x", timeout=HANG_S)
        with pytest.raises(requests.Timeout):
            session.post(url, data=b"x", timeout=0.0)
    assert (outcome.status, outcome.error) == (503, None)
    with observed_export() as outcome:
        with pytest.raises(requests.Timeout):
            session.post(url, data=b"x", timeout=0.0)
    assert (outcome.status, outcome.error) == (None, "Timeout")


def test_retry_after_is_read_as_seconds_or_an_http_date():
    from email.utils import formatdate

    from otel_monitor.telemetry._export_session import retry_after_s

    assert retry_after_s("120") == 120.0
    assert retry_after_s(formatdate(1_000_030.0, usegmt=True), now=1_000_000.0) == 30.0
    assert retry_after_s(formatdate(1_000_000.0, usegmt=True), now=1_000_030.0) == 0.0  # already past
    assert retry_after_s("soon") is None and retry_after_s(None) is None and retry_after_s("nan") is None


def test_the_sdk_exporter_gets_our_session_as_an_argument_and_keeps_its_own_methods(monkeypatch):
    from otel_monitor.settings import resolve_settings
    from otel_monitor.telemetry._export_session import ExportSession, export_session
    from otel_monitor.telemetry.pipeline import span_exporters

    settings = resolve_settings(
        {"traces_exporter": "otlp", "otlp_protocol": "http/protobuf", "otlp_endpoint": "http://127.0.0.1:9"},
        environ={},
    )
    (exporter,) = span_exporters(settings)
    accounted = AccountedSpanExporter(exporter, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    assert accounted.exporter is exporter
    # No method replaced on the live client (what a setattr on _submit used to do).
    assert not any(callable(value) for value in vars(exporter._client).values())
    assert isinstance(export_session("traces"), ExportSession)
    # A credential provider's session (the SDK's own variables) is left to the exporter.
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER", "my_provider")
    assert export_session("traces") is None and isinstance(export_session("logs"), ExportSession)
    exporter.shutdown()
