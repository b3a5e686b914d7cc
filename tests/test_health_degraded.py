"""``/health`` reports the degraded modes: the instance serves requests, its monitoring is impaired.

``degraded`` lists them (metrics merged from this worker only, history not written, exports
failing); any of them makes a ``healthy`` instance ``degraded`` (200), never ``unhealthy`` (503),
and ``/health/ready`` stays ready.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask

from otel_monitor.analytics import analytics_of
from otel_monitor.testing import closing_client

from .conftest import ROOT, free_port, stop_process, wait_for_port


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver answering every POST with ``status``."""

    status = 503

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(Collector.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    Collector.status = 503
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _app(monitors, **settings):
    app = Flask("degraded")
    app.add_url_rule("/", "index", lambda: "ok")
    monitor = monitors(app, system_metrics=False, **settings)
    return app, monitor, closing_client(app)


def test_failing_span_exports_make_health_degraded_naming_the_signal_and_a_success_clears_it(collector, monitors):
    app, monitor, client = _app(
        monitors,
        traces_exporter="otlp",
        metrics_exporter="none",
        logs_exporter="none",
        otlp_protocol="http/protobuf",
        otlp_endpoint=f"http://127.0.0.1:{collector}",
        otlp_timeout=1,
    )
    assert client.get("/otel-monitor/health").get_json()["degraded"] == []
    client.get("/")
    monitor.tracer_provider.force_flush(5000)
    response = client.get("/otel-monitor/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert [c["status"] for c in body["checks"]] == ["ok"] * len(body["checks"])  # no check is why
    assert body["degraded"] == [
        {
            "mode": "exports_failing",
            "detail": "exports failing: the last export of traces failed",
            "signals": {"traces": "503"},
        }
    ]
    assert client.get("/otel-monitor/health/ready").status_code == 200
    Collector.status = 200
    client.get("/")
    monitor.tracer_provider.force_flush(5000)
    body = client.get("/otel-monitor/health").get_json()
    assert (body["status"], body["degraded"]) == ("healthy", [])


def test_failing_metric_pushes_are_reported_as_exports_failing(collector, monitors):
    app, monitor, client = _app(
        monitors,
        traces_exporter="none",
        metrics_exporter="otlp",
        logs_exporter="none",
        otlp_protocol="http/protobuf",
        otlp_endpoint=f"http://127.0.0.1:{collector}",
        otlp_timeout=1,
    )
    client.get("/")
    monitor.pipeline.export_metrics()
    body = client.get("/otel-monitor/health").get_json()
    assert [(m["mode"], m["signals"]) for m in body["degraded"]] == [("exports_failing", {"metrics": "export_failed"})]


def test_a_history_file_that_cannot_be_written_makes_health_say_history_not_written(tmp_path, monitors):
    directory = tmp_path / "history"
    directory.mkdir()
    app, monitor, client = _app(monitors, analytics_db=str(directory / "monitoring.db"))
    state = analytics_of(monitor)
    client.get("/")
    assert state.write_history() > 0
    assert client.get("/otel-monitor/health").get_json()["degraded"] == []
    shutil.rmtree(directory)  # a tmp cleaner, a removed volume: the file cannot be opened any more
    client.get("/")
    with pytest.raises(sqlite3.OperationalError):  # the background job logs it (rate-limited)
        state.write_history()
    body = client.get("/otel-monitor/health").get_json()
    assert body["status"] == "degraded"
    (mode,) = body["degraded"]
    assert (mode["mode"], mode["reason"]) == ("history_not_written", "OperationalError")
    assert str(tmp_path) not in str(body)  # no path in a page that may be public


APP = textwrap.dedent(
    """
    from flask import Flask
    from otel_monitor import Monitor

    app = Flask("degradedapp")
    app.add_url_rule("/", "index", lambda: "ok")
    Monitor(app, system_metrics=False)
    """
)


def _get_json(url: str) -> dict:
    import json

    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _gunicorn(tmp_path, group) -> tuple[subprocess.Popen, str]:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "degradedapp.py").write_text(APP)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MONITORING_"))},
        "PYTHONPATH": f"{ROOT}:{app_dir}",
        "OTEL_MONITOR_MULTIPROCESS_DIR": str(group),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "degradedapp:app"],
        cwd=str(app_dir),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gunicorn.log", "w"),
    )
    wait_for_port(port, timeout=30, proc=proc)
    return proc, f"http://127.0.0.1:{port}"


@pytest.mark.integration
def test_a_worker_directory_that_cannot_be_written_makes_health_say_metrics_from_this_worker_only(tmp_path):
    group = tmp_path / "group"
    proc, base = _gunicorn(tmp_path, group)
    try:
        urllib.request.urlopen(base + "/metrics", timeout=10).read()
        assert _get_json(base + "/otel-monitor/health")["degraded"] == []
        shutil.rmtree(group)  # the directory is gone (a tmp cleaner): the worker cannot publish
        deadline = time.monotonic() + 60
        body: dict = {}
        while time.monotonic() < deadline:
            urllib.request.urlopen(base + "/metrics", timeout=10).read()  # a scrape publishes first
            body = _get_json(base + "/otel-monitor/health")
            if body["degraded"]:
                break
            time.sleep(0.2)
        assert body["status"] == "degraded"
        assert [m["mode"] for m in body["degraded"]] == ["metrics_this_worker_only"]
        assert body["degraded"][0]["detail"].startswith("metrics merged from this worker only")
    finally:
        stop_process(proc)


@pytest.mark.integration
def test_a_worker_directory_that_cannot_be_made_makes_health_say_metrics_from_this_worker_only(tmp_path):
    group = tmp_path / "not-a-directory"
    group.write_text("")  # the configured path cannot be the workers' directory
    proc, base = _gunicorn(tmp_path, group)
    try:
        body = _get_json(base + "/otel-monitor/health")
        assert body["status"] == "degraded"
        assert [m["mode"] for m in body["degraded"]] == ["metrics_this_worker_only"]
    finally:
        stop_process(proc)


def test_a_history_file_that_cannot_be_used_makes_health_say_history_not_written(tmp_path, monitors):
    from otel_monitor.analytics.history import History

    path = str(tmp_path / "monitoring.db")
    assert History(path, "another", (0.5, 1.0), 7, time.time).usable  # written with other latency buckets
    app, monitor, client = _app(monitors, analytics_db=path)
    client.get("/")
    assert analytics_of(monitor).write_history() == 0
    body = client.get("/otel-monitor/health").get_json()
    assert body["degraded"] == [
        {
            "mode": "history_not_written",
            "detail": "history not written: the history file cannot be used "
            "(windows beyond 15 minutes miss those minutes)",
            "reason": "unusable",
        }
    ]
