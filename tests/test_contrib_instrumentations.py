"""Real contrib instrumentations under real gunicorn (with and without --preload) into a real rotel:
user and contrib spans are children of the request span, one trace across two monitored services,
and our own metric pushes produce no telemetry about themselves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import HANG_S, ROOT, free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration

SPAN_RE = re.compile(
    r"Trace ID\s*: (?P<trace>[0-9a-f]+)\s+Parent ID\s*: (?P<parent>[0-9a-f]*)\s+ID\s*: (?P<id>[0-9a-f]+)\s+"
    r"Name\s*: (?P<name>[^\n]+?)\s+Kind\s*: (?P<kind>\w+)"
)


def _gunicorn(tmp_path: Path, name: str, env: dict, *extra: str) -> tuple[str, subprocess.Popen]:
    port = free_port()
    log = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", *extra, "tests.apps.contrib_app:app"],
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc=proc)
    return f"http://127.0.0.1:{port}", proc


def _spans(log: Path) -> list[dict]:
    return [m.groupdict() for m in SPAN_RE.finditer(log.read_text(errors="replace"))]


def test_one_trace_spans_two_services_with_contrib_and_manual_spans_under_gunicorn(tmp_path, rotel):
    otlp = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rotel['http']}",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",  # many pushes: each would be a stray span if not suppressed
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_MONITOR_ANALYTICS": "false",
    }
    b_url, b_proc = _gunicorn(tmp_path, "b", {**otlp, "OTEL_SERVICE_NAME": "svc-b"})  # no --preload
    a_url, a_proc = _gunicorn(tmp_path, "a", {**otlp, "OTEL_SERVICE_NAME": "svc-a", "PEER_URL": b_url}, "--preload")
    try:
        for _ in range(4):
            with urllib.request.urlopen(a_url + "/a", timeout=10) as response:
                assert response.status == 200
        deadline = time.monotonic() + HANG_S
        traces: dict[str, list[dict]] = {}
        while time.monotonic() < deadline:
            traces = {}
            for span in _spans(rotel["log"]):
                traces.setdefault(span["trace"], []).append(span)
            complete = [t for t in traces.values() if len(t) >= 5]
            if len(complete) >= 4:
                break
            time.sleep(0.3)
        time.sleep(1.5)  # a few more metric pushes: none may appear as a span
        spans = _spans(rotel["log"])
    finally:
        stop_process(a_proc)
        stop_process(b_proc)
    by_trace: dict[str, list[dict]] = {}
    for span in spans:
        by_trace.setdefault(span["trace"], []).append(span)
    request_traces = [t for t in by_trace.values() if any(s["name"] == "GET /a" for s in t)]
    assert len(request_traces) == 4, {k: [s["name"] for s in v] for k, v in by_trace.items()}
    for trace_spans in request_traces:
        by_name = {s["name"]: s for s in trace_spans}
        assert set(by_name) >= {"GET /a", "GET", "GET /b/<int:n>", "manual-work", "select"}, sorted(by_name)
        assert by_name["GET /a"]["parent"] == "" and by_name["GET /a"]["kind"] == "SPAN_KIND_SERVER"
        assert by_name["GET"]["parent"] == by_name["GET /a"]["id"]  # requests' CLIENT span in A
        assert by_name["GET /b/<int:n>"]["parent"] == by_name["GET"]["id"]  # B's SERVER span
        assert by_name["manual-work"]["parent"] == by_name["GET /b/<int:n>"]["id"]
        db_spans = [s for s in trace_spans if s["name"] == "select"]  # sqlite3 / SQLAlchemy CLIENT spans
        assert db_spans and all(s["parent"] == by_name["manual-work"]["id"] for s in db_spans)
    stray = [s for s in spans if s["name"].startswith("POST")]
    assert stray == [], "our own OTLP pushes produced spans"
    # every span belongs to a request (SQLAlchemy's connect-time PRAGMA aside): no root spans of our own
    assert [s["name"] for s in spans if s not in sum(request_traces, []) and s["name"] != "PRAGMA"] == []
