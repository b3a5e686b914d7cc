"""The logs signal: Python logging records leave with trace and span ids, the pipeline's resource,
a bounded queue; never twice; fork-aware (the root handler follows the current pipeline)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
from flask import Flask

from otel_monitor import Monitor
from otel_monitor.telemetry import _logs, _providers
from otel_monitor.testing import closing_client

from .conftest import HANG_S, ROOT, wait_for_log


@pytest.fixture(autouse=True)
def _fresh_logs_state(monkeypatch):
    monkeypatch.setattr(_providers, "_order", [])
    _logs.remove_root_handler()
    yield
    _logs.remove_root_handler()


def _capture(monitor: Monitor):
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    monitor.pipeline.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return exporter


def _app(**settings) -> tuple[Flask, Monitor]:
    app = Flask("logs_app")

    @app.get("/")
    def index():
        logging.getLogger("shop.orders").warning("order %s placed", 42)
        return "ok"

    return app, Monitor(app, system_metrics=False, analytics=False, **settings)


def test_a_record_logged_in_a_request_carries_the_request_spans_ids_and_the_resource():
    app, monitor = _app(logs_exporter="console")
    exporter = _capture(monitor)
    from otel_monitor.testing import Telemetry

    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    (span,) = telemetry.spans()
    records = [r for r in exporter.get_finished_logs() if r.log_record.body == "order 42 placed"]
    assert len(records) == 1
    record = records[0].log_record
    assert record.trace_id == span.context.trace_id and record.span_id == span.context.span_id
    assert record.severity_text == "WARN"
    assert records[0].resource.attributes["service.instance.id"] == monitor.pipeline.instance_id
    monitor.shutdown(1)


def test_no_logs_exporter_means_no_logger_provider_and_no_root_handler():
    app, monitor = _app()
    assert monitor.pipeline.logger_provider is None
    assert not any(isinstance(h, _logs._RootHandler) for h in logging.getLogger().handlers)
    monitor.shutdown(1)


def test_an_opentelemetry_handler_already_on_the_root_logger_means_we_add_none(caplog):
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

    theirs = LoggingHandler(logger_provider=LoggerProvider())
    logging.getLogger().addHandler(theirs)
    try:
        with caplog.at_level(logging.INFO, logger="otel_monitor"):
            app, monitor = _app(logs_exporter="console")
            try:
                closing_client(app).get("/")  # the handler goes on at the first request
            finally:
                monitor.shutdown(1)
        assert not any(isinstance(h, _logs._RootHandler) for h in logging.getLogger().handlers)
        assert "logs are not exported a second time" in caplog.text
    finally:
        logging.getLogger().removeHandler(theirs)


def test_the_batch_queue_is_bounded_by_the_standard_variable(monkeypatch):
    monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "7")
    app, monitor = _app(logs_exporter="console")
    (processor,) = monitor.pipeline.logger_provider._multi_log_record_processor._log_record_processors
    assert processor._batch_processor._max_queue_size == 7
    monitor.shutdown(1)


@pytest.mark.integration
def test_logs_reach_the_collector_over_otlp_from_each_gunicorn_worker_under_preload(tmp_path, rotel):
    """Fork-aware: the root handler installed in the master writes into each worker's own pipeline."""
    from .conftest import free_port, stop_process, wait_for_port

    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "logapp.py").write_text(
        textwrap.dedent(
            """
            import logging, os
            from flask import Flask
            from otel_monitor import Monitor
            logging.getLogger().setLevel(logging.INFO)
            app = Flask("logapp")
            @app.get("/")
            def index():
                logging.getLogger("shop").info("served by %s", os.getpid())
                return str(os.getpid())
            Monitor(app, analytics=False, system_metrics=False)
            """
        )
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{app_dir}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rotel['http']}",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", f"127.0.0.1:{port}", "logapp:app"],
        cwd=str(tmp_path),
        env=env,
        stdout=open(tmp_path / "gunicorn.log", "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc=proc)
        import time
        import urllib.request

        pids = set()
        deadline = time.monotonic() + HANG_S  # until both workers answered (the kernel picks the worker)
        while len(pids) < 2 and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                pids.add(response.read().decode())
            time.sleep(0.02)
        patterns = [rf"served by {pid}" for pid in pids]
        text = wait_for_log(rotel["log"], patterns)
    finally:
        stop_process(proc)
    assert len(pids) == 2
    assert "Trace ID" in text
    for pid in pids:
        assert text.count(f"served by {pid}") >= 1


def test_the_global_opentelemetry_logger_writes_into_the_pipeline():
    from opentelemetry import _logs as otel_logs

    from otel_monitor.telemetry import _providers as providers

    app, monitor = _app(logs_exporter="console")
    if providers.installed().get("logs") != "ours":
        pytest.skip("this test process's global logger provider is not otel_monitor's")
    exporter = _capture(monitor)
    otel_logs.get_logger("user.module").emit(body="direct")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["direct"]
    monitor.shutdown(1)


def test_the_global_opentelemetry_logger_answers_enabled_and_takes_a_log_record():
    from opentelemetry import _logs as otel_logs

    from otel_monitor.telemetry import _providers as providers

    app, monitor = _app(logs_exporter="console")
    if providers.installed().get("logs") != "ours":
        pytest.skip("this test process's global logger provider is not otel_monitor's")
    exporter = _capture(monitor)
    logger = otel_logs.get_logger("user.module")
    assert isinstance(logger, otel_logs.Logger)
    assert logger.enabled(severity_number=otel_logs.SeverityNumber.INFO) is True
    logger.emit(otel_logs.LogRecord(body="a record", severity_number=otel_logs.SeverityNumber.WARN))
    [record] = exporter.get_finished_logs()
    assert (record.log_record.body, record.log_record.severity_number) == ("a record", otel_logs.SeverityNumber.WARN)
    monitor.shutdown(1)
    assert logger.enabled() is False  # no open monitor: nothing would record it


def _root_handlers() -> list:
    return [h for h in logging.getLogger().handlers if isinstance(h, _logs._RootHandler)]


def test_a_flask_app_gets_the_root_handler_at_its_first_request_after_its_logger_is_made():
    app, monitor = _app(logs_exporter="console")
    try:
        assert _root_handlers() == [] and "logger" not in app.__dict__  # nothing decided at Monitor(app)
        closing_client(app).get("/")
        assert len(_root_handlers()) == 1
        assert "logger" in app.__dict__  # Flask chose about its default handler before ours was there
        assert "first_request" not in [f.__name__ for f in app.before_request_funcs.get(None, [])]  # hook gone
        closing_client(app).get("/")
        assert len(_root_handlers()) == 1  # once
    finally:
        monitor.shutdown(1)


def test_wrap_installs_the_root_handler_when_it_returns(monitors):
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    monitors.wrap(application, logs_exporter="console", system_metrics=False)
    assert len(_root_handlers()) == 1
