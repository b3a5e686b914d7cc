"""Exporting logs over OTLP adds to the console, never replaces it.

A real app under a real server (werkzeug's dev server through ``app.run``, and gunicorn), with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set (so logs default to ``otlp``), prints on stderr exactly the
lines it prints without otel_monitor: a named logger's warning (Python's last resort), an
unhandled exception (Flask's default handler; gunicorn's error log), ``logging.error()`` (the
handler ``basicConfig()`` installs) and werkzeug's request lines -- with the collector up and down.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT, free_port, stop_process, wait_for_log, wait_for_port

APP = textwrap.dedent(
    """
    import logging, os, sys
    from flask import Flask

    app = Flask("consoleapp")

    @app.get("/named")
    def named():
        logging.getLogger("shop.orders").warning("line-one: order %s is late", 42)
        return "ok"

    @app.get("/boom")
    def boom():
        raise RuntimeError("line-two: unhandled")

    @app.get("/root")
    def root():
        logging.error("line-three: from the root logger")
        return "ok"

    if os.environ.get("WITH_MONITOR") == "1":
        from otel_monitor import Monitor

        Monitor(app, analytics=False, system_metrics=False)

    if __name__ == "__main__":
        if os.environ.get("CONFIGURE_IN_MAIN") == "1":  # after Monitor(app), as many scripts do
            logging.basicConfig(level=logging.INFO, format="configured %(levelname)s %(message)s")
        app.run(host="127.0.0.1", port=int(sys.argv[1]))
    """
)

#: werkzeug's request-line and Flask's default-handler time stamps, gunicorn's pids
_VARYING = [
    (re.compile(r"\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\]"), "[date]"),
    (re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\]"), "[date]"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:port"),
]


def _ours(text: str) -> list[str]:
    """The lines the app and its server print for the three requests, time stamps normalised."""
    keep = []
    for line in text.splitlines():
        if not (
            "line-" in line
            or line.startswith(("Traceback", "  File", "    ", "RuntimeError"))
            or re.search(r'"GET /(named|boom|root) ', line)
        ):
            continue
        for pattern, replacement in _VARYING:
            line = pattern.sub(replacement, line)
        keep.append(line)
    return keep


def _serve(
    tmp_path: Path, server: str, env: dict[str, str], name: str, before_stop: Callable[[], object] | None = None
) -> str:
    """Run the app under ``server``, send the three requests, (wait for ``before_stop()``,) stop it; its stderr."""
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "consoleapp.py").write_text(APP)
    port = free_port()
    if server == "werkzeug":
        command = [sys.executable, str(app_dir / "consoleapp.py"), str(port)]
    else:
        command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "consoleapp:app"]
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{app_dir}",
        "PYTHONUNBUFFERED": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        **env,
    }
    stderr_path = tmp_path / f"{name}.stderr"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(command, cwd=str(app_dir), env=full_env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_port(port, timeout=30, proc=proc)
            for path in ("/named", "/boom", "/root"):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
                except urllib.error.HTTPError as exc:
                    assert (path, exc.code) == ("/boom", 500)
            if before_stop is not None:
                before_stop()
        finally:
            stop_process(proc)  # read after the process ended: every line it wrote is in the file
    return stderr_path.read_text()


def _wait_for(path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.integration
@pytest.mark.parametrize("server", ["werkzeug", "gunicorn"])
def test_the_console_shows_exactly_the_lines_it_shows_without_otel_monitor_with_a_collector(server, tmp_path, rotel):
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rotel['http']}"}
    without = _ours(_serve(tmp_path, server, {}, "without"))

    def exported() -> None:  # the records are exported over OTLP as well (before the server stops)
        wait_for_log(rotel["log"], ["line-one: order 42 is late", "line-three: from the root logger"], timeout=60)

    monitored = _serve(tmp_path, server, {**endpoint, "WITH_MONITOR": "1"}, "with", before_stop=exported)
    # the baseline has all three lines and the traceback (the test would prove nothing otherwise)
    assert sum("line-" in line for line in without) >= 3 and "Traceback (most recent call last):" in without
    assert _ours(monitored) == without


@pytest.mark.integration
@pytest.mark.parametrize("server", ["werkzeug", "gunicorn"])
def test_with_the_collector_down_the_lines_still_appear_and_lost_spans_are_reported_once(server, tmp_path):
    closed = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}", "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}
    without = _ours(_serve(tmp_path, server, {}, "without"))
    monitored = _serve(
        tmp_path,
        server,
        {**closed, "WITH_MONITOR": "1"},
        "with",
        before_stop=lambda: _wait_for(tmp_path / "with.stderr", "span(s) not exported"),
    )
    assert _ours(monitored) == without
    lost = [line for line in monitored.splitlines() if "span(s) not exported" in line]
    assert len(lost) == 1, monitored[-3000:]  # rate-limited: one line per reason per minute
    assert "span(s) not exported (ConnectionError" in lost[0]


@pytest.mark.integration
def test_a_basic_config_in_main_after_the_monitor_still_configures_the_console(tmp_path, rotel):
    configured = {"CONFIGURE_IN_MAIN": "1"}
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rotel['http']}"}
    without = _ours(_serve(tmp_path, "werkzeug", configured, "without"))
    assert "configured WARNING line-one: order 42 is late" in without
    monitored = _serve(tmp_path, "werkzeug", {**configured, **endpoint, "WITH_MONITOR": "1"}, "with")
    assert _ours(monitored) == without
