"""Real parts: the example app served on 127.0.0.1, scraped and checked by promtool; OTLP to a real
receiver (rotel); process exit time with the collector down."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable

import pytest

from .conftest import HANG_S, ROOT, free_port, wait_for_log, wait_for_port

pytestmark = pytest.mark.integration


def fetch(url: str, timeout: float = 10) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def scrape_until(url: str, expected: str | Callable[[str], bool], timeout: float = HANG_S) -> str:
    """The body once it contains ``expected`` (or satisfies it), or the last one after ``timeout``.

    A request is recorded when the server closes its response (PEP 3333), which can be a moment
    after the client has read it.
    """
    done = expected if callable(expected) else (lambda body: expected in body)
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = fetch(url)
        assert status == 200, body
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def drive(base: str, paths: list[str]) -> None:
    for path in paths:
        fetch(base + path)


def test_metrics_scraped_over_http_pass_promtool_check_metrics(example_server):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: .ci/run installs the Debian package prometheus"
    base = example_server()
    drive(base, ["/", "/api/users", "/api/users/3", "/api/users/999", "/api/error", "/nope", "/api/slow"])
    body = scrape_until(base + "/metrics", 'http_route="/api/slow"')
    assert 'http_route="/api/users/<int:user_id>"' in body and 'http_route="/api/slow"' in body
    assert fetch(base + "/metrics")[2]["Content-Type"].startswith("text/plain")
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_negotiate_openmetrics_when_asked(example_server):
    base = example_server()
    request = urllib.request.Request(
        base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().decode().rstrip().endswith("# EOF")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_and_metrics_reach_a_real_otlp_receiver(example_server, rotel, protocol):
    port = rotel["grpc"] if protocol == "grpc" else rotel["http"]
    service = "example-" + protocol.replace("/", "-")
    base = example_server(
        {
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        }
    )
    drive(base, ["/api/users/7", "/api/error"])
    wait_for_log(
        rotel["log"],
        [
            rf"service\.name: Str\({re.escape(service)}\)",
            r"Name\s*: GET /api/users/<int:user_id>",
            r"Name\s*: GET /api/error",
            r"http\.route: Str\(/api/users/<int:user_id>\)",
            r"Name: http\.server\.request\.duration",
            r"Name: system\.memory\.usage",
            r"Name: shop\.users\.registered",
        ],
    )


EXIT_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from flask import Flask
    from otel_monitor import Monitor
    app = Flask("exit_test")
    app.add_url_rule("/", "i", lambda: "ok")
    Monitor(app, traces_exporter="otlp", metrics_exporter="otlp", otlp_endpoint={endpoint!r},
            otlp_protocol={protocol!r}, otlp_timeout={otlp_timeout}, shutdown_timeout=2)
    client = app.test_client()
    for _ in range(500):
        client.get("/", buffered=True)
    print("served", flush=True)
""")

#: each OTLP export may wait this long (the setting's maximum): a flush at exit that waited for
#: the collector would keep the process alive for a minute or more ...
EXPORT_TIMEOUT_S = 60
#: ... where a bounded exit takes shutdown_timeout (2 s) plus start-up and teardown. The bound only
#: tells the two apart; how long the exit takes is measured by benchmarks/run.py (``exit``).
HUNG_AFTER_S = 45


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("collector", ["closed-port", "blackhole"])
def test_process_exit_is_bounded_by_the_shutdown_timeout_when_the_collector_is_down(tmp_path, protocol, collector):
    import socket

    listener = None
    port = free_port()
    if collector == "blackhole":  # accepts connections, never answers
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen(100)
    script = EXIT_SCRIPT.format(
        root=str(ROOT), endpoint=f"http://127.0.0.1:{port}", protocol=protocol, otlp_timeout=EXPORT_TIMEOUT_S
    )
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=HUNG_AFTER_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stage = "served, then no exit" if "served" in out else "no exit"
        pytest.fail(f"{stage} after {HUNG_AFTER_S} s: the flush at exit waits for the collector")
    finally:
        if listener:
            listener.close()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "served" in result.stdout


def test_metrics_can_also_be_served_on_a_separate_port(example_server):
    port = free_port()
    base = example_server({"OTEL_MONITOR_METRICS_PORT": str(port)})
    drive(base, ["/api/users/1"])
    wait_for_port(port)
    body = scrape_until(f"http://127.0.0.1:{port}/metrics", "http_server_request_duration_seconds")
    assert "http_server_request_duration_seconds" in body
    assert fetch(f"http://127.0.0.1:{port}/api/users/1")[0] == 404  # only the metrics there
