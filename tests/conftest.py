"""Shared fixtures: fresh Flask apps with a monitor and in-memory telemetry, free ports, servers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask

from otel_monitor import Monitor
from otel_monitor.testing import Telemetry, closing_client

ROOT = Path(__file__).resolve().parent.parent

# Property tests: a short run in CI, a long one by hand (HYPOTHESIS_PROFILE=fuzz).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", max_examples=150, deadline=None)
_hypothesis_settings.register_profile("fuzz", max_examples=20_000, deadline=None)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
_OTEL_ENV = [k for k in os.environ if k.startswith(("OTEL_", "MONITORING_"))]


@pytest.fixture(autouse=True)
def _fresh_log_rate_limits():
    """Each test sees its own first failure logged (the limiter is per process)."""
    from otel_monitor import _safe_log

    _safe_log._last.clear()
    yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """Tests start with no OTEL_* / MONITORING_* variables from the machine."""
    for key in list(os.environ):
        if key.startswith(("OTEL_", "MONITORING_")):
            monkeypatch.delenv(key, raising=False)
    yield


def build_app(**settings) -> tuple[Flask, Monitor]:
    app = Flask("test_app")

    @app.get("/")
    def index():
        return "ok"

    @app.get("/users/<int:user_id>")
    def user(user_id: int):
        return {"id": user_id}

    @app.get("/fail")
    def fail():
        raise ValueError("boom")

    @app.post("/echo")
    def echo():
        from flask import request

        return request.get_data()

    settings.setdefault("system_metrics", False)
    monitor = Monitor(app, **settings)
    return app, monitor


@pytest.fixture
def monitored():
    """(app, monitor, telemetry, client) with system gauges off (they are tested on their own)."""
    app, monitor = build_app()
    telemetry = Telemetry(monitor)
    yield app, monitor, telemetry, closing_client(app)
    monitor.shutdown(timeout=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def example_server(tmp_path):
    """Start examples/app.py on a free 127.0.0.1 port; yields (base_url, proc). Extra env via param."""
    procs = []

    def start(env: dict | None = None, args: tuple = ()) -> str:
        port = free_port()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        log = open(tmp_path / f"example-{port}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "app.py"), "--port", str(port), *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        procs.append(proc)
        wait_for_port(port, proc=proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        stop_process(proc)


# -- a real OTLP receiver: rotel's collector binary, shipped in the rotel PyPI package --------------


def rotel_binary() -> str:
    import rotel

    path = Path(rotel.__file__).parent / "rotel-agent"
    if not path.exists():
        pytest.fail("the rotel package ships no rotel-agent binary here")
    return str(path)


@pytest.fixture
def rotel(tmp_path):
    grpc_port, http_port = free_port(), free_port()
    log_path = tmp_path / "rotel.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            rotel_binary(),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log",
            "metrics",
            "--debug-log",
            "logs",
            "--debug-log-verbosity",
            "detailed",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(grpc_port, proc=proc)
    wait_for_port(http_port, proc=proc)
    yield {"grpc": grpc_port, "http": http_port, "log": log_path}
    stop_process(proc)


def wait_for_log(path: Path, patterns: list[str], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if all(re.search(p, text) for p in patterns):
            return text
        time.sleep(0.2)
    missing = [p for p in patterns if not re.search(p, text)]
    raise AssertionError(f"rotel never logged {missing}; log tail:\n{text[-3000:]}")
