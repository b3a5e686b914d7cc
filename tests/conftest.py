"""Shared fixtures: fresh Flask apps with a monitor and in-memory telemetry, free ports, servers.

No test asserts on wall-clock time or throughput (that is benchmarks/' job): waits are polls whose
bound (``HANG_S``) only ends a test that hangs, and loops are bounded by count.

Make monitors in tests through the ``monitors`` fixture (``monitors.app()``, ``monitors(app, ...)``,
``monitors.wrap(...)``): it shuts each one down after the test, also when the test fails. A test
that leaves a pipeline running fails at teardown.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from hypothesis import settings as _hypothesis_settings

import otel_monitor
from otel_monitor import Monitor
from otel_monitor.testing import Telemetry, closing_client

ROOT = Path(__file__).resolve().parent.parent

# Property tests: a short run in CI, a long one by hand (HYPOTHESIS_PROFILE=fuzz).

_hypothesis_settings.register_profile("ci", max_examples=150, deadline=None)
_hypothesis_settings.register_profile("fuzz", max_examples=20_000, deadline=None)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


@pytest.fixture(autouse=True)
def _no_pipeline_outlives_its_test(request):
    """A test that leaves a pipeline running fails; the pipeline is shut down so the next ones start clean.

    Own monitors with the ``monitors`` fixture (or a fixture of your own that shuts them down).
    """
    from otel_monitor.telemetry import _runtime

    before = weakref.WeakSet(_runtime._live)
    yield
    leaked = []
    for runtime in list(_runtime._live):
        pipeline = runtime.current
        if runtime in before or pipeline is None or pipeline.pid != os.getpid() or pipeline._shutdown_done:
            continue
        leaked.append(runtime.service_name)
        pipeline.shutdown(timeout=2)
    if leaked:
        pytest.fail(
            f"{request.node.nodeid} left {len(leaked)} pipeline(s) running ({', '.join(leaked)})", pytrace=False
        )


_Stoppable = TypeVar("_Stoppable")


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


class Monitors:
    """Makes monitors for one test and owns them: the ``monitors`` fixture shuts each one down.

    A bare ``monitor.shutdown()`` at the end of a test is skipped when an assert fails, leaving
    the pipeline's threads, exporters and at-exit flush running into the tests after it.
    """

    def __init__(self) -> None:
        self._owned: list[Any] = []

    def __call__(self, app: Any = None, **settings: Any) -> Monitor:
        """``Monitor(app, **settings)``, exactly: no defaults changed."""
        return self.own(Monitor(app, **settings))

    def app(self, **settings: Any) -> tuple[Flask, Monitor]:
        """:func:`build_app` (the standard test routes, system gauges off unless given)."""
        app, monitor = build_app(**settings)
        return app, self.own(monitor)

    def wrap(self, application: Callable, **settings: Any) -> Any:
        """``otel_monitor.wrap(application, **settings)``."""
        wrapped = otel_monitor.wrap(application, **settings)
        monitor = getattr(wrapped, "monitor", None)
        if monitor is not None:  # None when OTEL_SDK_DISABLED returned the app unwrapped
            self.own(monitor)
        return wrapped

    def own(self, thing: _Stoppable) -> _Stoppable:
        """Shut ``thing`` (a Monitor or a Pipeline made some other way) down at teardown."""
        self._owned.append(thing)
        return thing

    def shutdown_all(self) -> None:
        # Newest first, like nested context managers; shutting down twice is harmless, so a test
        # may still call shutdown() itself when shutting down is what it tests.
        errors = []
        while self._owned:
            try:
                self._owned.pop().shutdown(timeout=2)
            except Exception as exc:  # noqa: BLE001 - shut the others down first, then report it
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def monitors() -> Iterator[Monitors]:
    """A :class:`Monitors` factory; every monitor it made is shut down after the test, pass or fail."""
    owner = Monitors()
    yield owner
    owner.shutdown_all()  # pytest runs this after a failed test too


@pytest.fixture
def monitored(monitors):
    """(app, monitor, telemetry, client) with system gauges off (they are tested on their own)."""
    app, monitor = monitors.app()
    return app, monitor, Telemetry(monitor), closing_client(app)


#: how long a poll waits for a state before calling the test hung: generous, so that a busy
#: machine (CI, or a 2-core box at load 6) only makes a test slower, never red
HANG_S = 60.0


def completes(fn: Callable[[], Any], hang_after: float = HANG_S) -> Any:
    """``fn()``'s result; fails the test if it is still running after ``hang_after`` seconds.

    For behaviour whose failure is a hang (an export waiting out a 60 s timeout, a shutdown that
    never returns): the bound only tells a hang from a slow machine, it measures nothing.
    """
    import threading

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread below
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="completes", daemon=True)
    thread.start()
    thread.join(hang_after)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} still running after {hang_after:g} s: it hangs")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = HANG_S, proc: subprocess.Popen | None = None) -> None:
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


def wait_for_log(path: Path, patterns: list[str], timeout: float = HANG_S) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if all(re.search(p, text) for p in patterns):
            return text
        time.sleep(0.2)
    missing = [p for p in patterns if not re.search(p, text)]
    raise AssertionError(f"rotel never logged {missing}; log tail:\n{text[-3000:]}")
