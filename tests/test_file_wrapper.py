"""wsgi.file_wrapper responses keep the server's sendfile path and are timed at close()."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import urllib.request
from wsgiref.util import FileWrapper

import pytest
from flask import Flask, send_file

from otel_monitor import Monitor
from otel_monitor.testing import Telemetry

from .conftest import ROOT, free_port, stop_process, wait_for_port


def environ(**extra):
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/file",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.file_wrapper": FileWrapper,
        **extra,
    }


@pytest.fixture
def file_app(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"x" * 100_000)
    app = Flask("files")

    @app.get("/file")
    def serve():
        return send_file(path, mimetype="application/octet-stream")

    monitor = Monitor(app, system_metrics=False, analytics=False, metrics_body_size=True)
    yield app, Telemetry(monitor)
    monitor.shutdown(1)


def test_the_server_gets_back_its_own_file_wrapper_and_the_request_ends_at_its_close(file_app):
    app, telemetry = file_app
    statuses = []
    result = app.wsgi_app(environ(), lambda status, headers, exc_info=None: statuses.append(status))
    assert type(result) is FileWrapper  # what a server checks before using sendfile
    assert statuses == ["200 OK"]
    assert telemetry.points("http.server.request.duration") == []  # not before close()
    assert sum(p.value for p in telemetry.points("http.server.active_requests")) == 1
    result.close()
    point = telemetry.point("http.server.request.duration")
    assert point.count == 1 and point.attributes["http.route"] == "/file"
    assert telemetry.point("http.server.response.body.size").sum == 100_000
    assert sum(p.value for p in telemetry.points("http.server.active_requests")) == 0
    (span,) = telemetry.spans()
    assert span.name == "GET /file"


def test_a_file_wrapper_the_server_drops_without_close_is_still_recorded_once(file_app):
    app, telemetry = file_app
    result = app.wsgi_app(environ(), lambda status, headers, exc_info=None: None)
    result.filelike.close()
    del result
    gc.collect()
    assert telemetry.point("http.server.request.duration").count == 1
    assert sum(p.value for p in telemetry.points("http.server.active_requests")) == 0


def test_without_a_server_file_wrapper_the_body_is_wrapped_and_timed_as_before(file_app):
    app, telemetry = file_app
    env = environ()
    del env["wsgi.file_wrapper"]
    result = app.wsgi_app(env, lambda status, headers, exc_info=None: None)
    assert b"".join(result) == b"x" * 100_000
    result.close()
    assert telemetry.point("http.server.response.body.size").sum == 100_000


SENDFILE_PROBE = """
import gunicorn.http.wsgi as _wsgi

_original = _wsgi.Response.sendfile


def _sendfile(self, respiter):
    sent = _original(self, respiter)
    with open({marker!r}, "a") as out:
        out.write(f"{{type(respiter).__name__}} {{sent}}\\n")
    return sent


_wsgi.Response.sendfile = _sendfile
"""


@pytest.mark.integration
def test_under_real_gunicorn_send_file_goes_out_through_sendfile_and_is_measured(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(1_000_000))
    marker = tmp_path / "sendfile.log"
    config = tmp_path / "probe.py"
    config.write_text(SENDFILE_PROBE.format(marker=str(marker)))
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "-c", str(config)]
        + ["tests.apps.file_app:app"],
        cwd=str(ROOT),
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FILE_APP_PATH": str(path),
            "OTEL_MONITOR_METRICS_BODY_SIZE": "true",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc=proc)
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/file", timeout=10) as response:
                assert response.read() == path.read_bytes()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        stop_process(proc)
    assert marker.read_text().splitlines() == ["FileWrapper True"] * 3
    count = re.search(
        r'^http_server_request_duration_seconds_count\{[^}]*http_route="/file"[^}]*\} (\S+)$', metrics, re.M
    )
    size = re.search(r'^http_server_response_body_size_bytes_sum\{[^}]*http_route="/file"[^}]*\} (\S+)$', metrics, re.M)
    assert count and float(count.group(1)) == 3
    assert size and float(size.group(1)) == 3_000_000
