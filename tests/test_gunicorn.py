"""Real gunicorn with several workers on 127.0.0.1: /metrics through any worker reports everybody's totals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import HANG_S, ROOT, free_port, stop_process, wait_for_log, wait_for_port

pytestmark = pytest.mark.integration
WORK_ROUTE = "/work/<int:n>"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=HANG_S) as response:  # a worker starting on a busy machine
        return response.read().decode()


def request_total(body: str, route: str = WORK_ROUTE) -> float:
    """Requests to ``route`` in a /metrics body."""
    labels = rf'[^}}]*http_route="{re.escape(route)}"[^}}]*'
    pattern = rf"^http_server_request_duration_seconds_count\{{{labels}\}} ([0-9.e+]+)$"
    return sum(float(v) for v in re.findall(pattern, body, re.M))


@pytest.fixture
def gunicorn(tmp_path):
    procs = []

    def start(
        *extra: str, workers: int = 4, env: dict | None = None, target: str = "tests.apps.prefork_app:app"
    ) -> tuple[str, subprocess.Popen]:
        port = free_port()
        log = open(tmp_path / f"gunicorn-{port}.log", "w")
        # A private multiprocess dir per test run, so runs never see each other's files.
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SERVICE_NAME": "prefork", **(env or {})}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "5",
                *extra,
                target,
            ],
            cwd=str(ROOT),
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_for_port(port, proc=proc)
        base = f"http://127.0.0.1:{port}"
        # all workers up: distinct pids answering (the kernel picks the worker)
        deadline = time.monotonic() + HANG_S
        pids: set[str] = set()
        while len(pids) < workers and target.endswith("prefork_app:app"):
            assert time.monotonic() < deadline, f"only {len(pids)} of {workers} workers answered"
            pids.add(get(base + "/pid"))
        return base, proc

    yield start
    for proc in procs:
        stop_process(proc)


def worker_pids(master: subprocess.Popen) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(master.pid).children()]


def send(base: str, start: int, count: int) -> None:
    for i in range(start, start + count):
        get(f"{base}/work/{i}")


def settle(base: str, expected: float, metrics_url: str | None = None, route: str = WORK_ROUTE) -> str:
    """The scrape once it shows ``expected`` requests to ``route``: a worker slower to answer than the
    scrape's wait (0.5 s, on a busy machine) is merged with its last published numbers until it
    catches up."""
    deadline = time.monotonic() + HANG_S
    while (total := request_total(body := get(metrics_url or base + "/metrics"), route)) != expected:
        assert time.monotonic() < deadline, f"the scrapes show {total} requests, not {expected}"
        time.sleep(0.2)
    return body


@pytest.mark.parametrize("options", [(), ("--preload",), ("--threads", "4")], ids=["sync", "sync-preload", "gthread"])
def test_every_scrape_through_any_worker_reports_the_total_of_all_workers(gunicorn, options):
    base, master = gunicorn(*options)
    baseline = request_total(get(base + "/metrics"))
    n = 200
    send(base, 0, n)
    settle(base, baseline + n)
    answering = set()
    for _ in range(30):
        body = get(base + "/metrics")
        assert request_total(body) - baseline == n
        answering.add(re.search(r'^target_info\{.*service_instance_id="([^"]+)"', body, re.M).group(1))
    assert len(answering) == 1, "the merged view must describe the group, not the answering worker"

    promtool = shutil.which("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    # host-level gauges once per host; process-level once per worker, told apart by process_pid
    assert len(re.findall(r"^system_memory_limit_bytes ", body, re.M)) == 1
    assert len(re.findall(r"^system_filesystem_utilization\{", body, re.M)) == 1
    assert len(re.findall(r'^system_network_io_bytes_total\{[^}]*direction="receive"', body, re.M)) == 1
    rss_pids = set(re.findall(r'^process_memory_usage_bytes\{[^}]*process_pid="(\d+)"', body, re.M))
    assert rss_pids == {str(p) for p in worker_pids(master)}


@pytest.mark.parametrize("options", [(), ("--preload",)], ids=["sync", "sync-preload"])
def test_the_separate_metrics_port_reports_the_total_of_all_workers(gunicorn, options):
    # Under --preload the master binds the port (it builds the first pipeline), and serves no requests.
    port = free_port()
    base, master = gunicorn(*options, workers=2, env={"OTEL_MONITOR_METRICS_PORT": str(port)})
    wait_for_port(port)
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    n = 40
    send(base, 0, n)
    body = settle(base, n, metrics_url)
    assert request_total(body) == n
    rss_pids = set(re.findall(r'^process_memory_usage_bytes\{[^}]*process_pid="(\d+)"', body, re.M))
    assert rss_pids == {str(p) for p in worker_pids(master)}
    assert len(re.findall(r"^system_memory_limit_bytes ", body, re.M)) == 1
    if "--preload" in options:
        assert "app_boot_total" not in body  # counted in the master before the fork, as on the app's port


def test_the_preforked_master_exports_nothing_that_a_worker_exports_again(gunicorn):
    base, master = gunicorn("--preload", workers=2)
    send(base, 0, 10)
    settle(base, 10)
    body = get(base + "/metrics")
    assert "app_boot_total" not in body  # counted in the master at import, before the fork
    assert request_total(body) == 10


def test_a_killed_worker_never_makes_the_totals_go_backwards(gunicorn):
    base, master = gunicorn(workers=3)
    totals = []
    send(base, 0, 90)
    settle(base, 90)
    totals.append(request_total(get(base + "/metrics")))
    victim = worker_pids(master)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + HANG_S
    while not (victim not in (pids := worker_pids(master)) and len(pids) == 3):  # gunicorn replaces it
        assert time.monotonic() < deadline, f"gunicorn did not replace the killed worker: {pids}"
        time.sleep(0.2)
    for _ in range(10):
        totals.append(request_total(get(base + "/metrics")))
    send(base, 90, 60)
    settle(base, 150)
    for _ in range(10):
        totals.append(request_total(get(base + "/metrics")))
    assert totals == sorted(totals), totals
    assert totals[0] == 90 and totals[-1] == 150


def test_otlp_export_from_several_workers_arrives_with_distinct_instance_ids(gunicorn, rotel):
    base, master = gunicorn(
        workers=3,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rotel['http']}", "OTEL_METRIC_EXPORT_INTERVAL": "500"},
    )
    send(base, 0, 60)
    text = wait_for_log(rotel["log"], [r"Name\s*: GET /work/<int:n>"])
    deadline = time.monotonic() + HANG_S
    ids: set[str] = set()
    while time.monotonic() < deadline and len(ids) < 3:
        text = Path(rotel["log"]).read_text(errors="replace")
        ids = set(re.findall(r"service\.instance\.id: Str\(([^)]+)\)", text))
        time.sleep(0.3)
    assert len(ids) >= 3, ids


def test_the_analytics_summarise_all_workers_and_a_generated_token_works_on_every_worker(gunicorn, tmp_path):
    base, master = gunicorn(workers=3)
    log = next(tmp_path.glob("gunicorn-*.log"))
    tokens = set(re.findall(r"\?token=([A-Za-z0-9_\-]+)", log.read_text()))
    assert len(tokens) == 1, tokens  # one token for the whole group, whichever worker logged it
    token = tokens.pop()
    send(base, 0, 90)
    settle(base, 90)
    import json

    # Each worker answers from its newest 10 s sample: within a tick or two every one shows all 90.
    deadline = time.monotonic() + 60
    agreeing = 0
    while agreeing < 12:  # 12 answers in a row land on different workers
        request = urllib.request.Request(
            base + "/otel-monitor/endpoints?window=all", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            rows = json.loads(response.read())["endpoints"]
        counts = [r["count"] for r in rows if r["route"] == "/work/<int:n>"]
        agreeing = agreeing + 1 if counts == [90] else 0
        if not agreeing:
            assert time.monotonic() < deadline, counts
            time.sleep(0.5)


def test_error_groups_and_trace_trees_are_merged_across_workers(gunicorn, tmp_path):
    import json

    base, master = gunicorn(workers=3, env={"OTEL_MONITOR_ANALYTICS_TOKEN": "prefork-token-0123456789"})
    auth = {"Authorization": "Bearer prefork-token-0123456789"}

    def api(path: str) -> tuple[int, dict]:
        request = urllib.request.Request(base + "/otel-monitor" + path, headers=auth)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    pids = set()
    for i in range(30):
        try:
            urllib.request.urlopen(f"{base}/boom/{i}", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 500
            pids.add(exc.headers["X-Worker-Pid"])
    assert len(pids) >= 2, pids  # the failures landed on several workers
    settle(base, 30, route="/boom/<int:n>")  # a scrape: every worker publishes what the analytics read
    deadline = time.monotonic() + HANG_S
    while api("/errors")[1]["total"] != 30 and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(9):  # lands on different workers: each answers for the whole group
        status, body = api("/errors")
        [group] = body["groups"]
        assert group["count"] == 30 and group["exception_type"] == "LookupError" and group["route"] == "/boom/<int:n>"
        failed = api("/traces?kind=failed&limit=100")[1]["traces"]
        assert len(failed) == 30 and all(t["detail"] for t in failed)
    for entry in failed[:6]:
        status, tree = api(f"/traces/{entry['trace_id']}")
        assert status == 200 and [s["name"] for s in tree["spans"]] == ["GET /boom/<int:n>", "step before failing"]


def test_wrap_under_gunicorn_reports_all_workers_too(gunicorn):
    base, master = gunicorn(workers=3, target="tests.apps.prefork_wsgi:app")
    for _ in range(60):
        get(base + "/anything")

    def total() -> float:
        body = get(base + "/metrics")
        return sum(
            float(c)
            for c in re.findall(r"^http_server_request_duration_seconds_count\{[^}]*\} ([0-9.e+]+)$", body, re.M)
        )

    deadline = time.monotonic() + HANG_S
    while total() != 60 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [total() for _ in range(10)] == [60] * 10
