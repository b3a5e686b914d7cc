"""Exact, monotonic totals across gunicorn workers without waiting, and no torn state, ever."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from otel_monitor.metrics import multiprocess
from otel_monitor.testing import closing_client

from .conftest import HANG_S, build_app
from .test_gunicorn import get, gunicorn, request_total, send, worker_pids  # noqa: F401 - gunicorn is a fixture

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("options", [(), ("--preload",)], ids=["sync", "sync-preload"])
def test_every_scrape_right_after_the_requests_reports_the_exact_total(gunicorn, options):  # noqa: F811 - gunicorn is the imported fixture
    base, master = gunicorn(*options)
    n = 400
    send(base, 0, n)
    # no waiting: the scrape asks the other workers to publish
    totals = [request_total(get(base + "/metrics")) for _ in range(20)]
    assert totals == [n] * 20


#: what a request in flight on a SIGKILLed worker may end with: the connection dropped unanswered
DROPPED = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, http.client.IncompleteRead)


def dropped(exc: BaseException) -> bool:
    return isinstance(exc, DROPPED) or isinstance(getattr(exc, "reason", None), DROPPED)


def test_counts_never_decrease_under_continuous_scraping_while_a_worker_is_killed(gunicorn):  # noqa: F811 - gunicorn is the imported fixture
    import psutil

    base, master = gunicorn(workers=4)
    stop = threading.Event()
    dead = threading.Event()  # set once the victim is gone: what starts after it cannot reach it
    served_after = [0]  # requests started after the victim was gone, answered
    served = [0]
    totals: list[float] = []
    failures: list[tuple[BaseException, bool]] = []  # (error, started after the victim was gone)

    def load() -> None:
        for i in range(100_000):  # until stopped; a count, not a clock
            if stop.is_set():
                return
            after = dead.is_set()
            try:
                get(f"{base}/work/{i}")
            except (OSError, http.client.HTTPException) as exc:
                failures.append((exc, after))
                continue
            served[0] += 1
            served_after[0] += after

    def scrape() -> None:
        while not stop.is_set():
            after = dead.is_set()
            try:
                totals.append(request_total(get(base + "/metrics")))
            except (OSError, http.client.HTTPException) as exc:
                failures.append((exc, after))
            time.sleep(0.02)

    def wait_until(predicate, what: str) -> None:
        deadline = time.monotonic() + HANG_S
        while not predicate():
            assert time.monotonic() < deadline, f"hung waiting for {what}"
            time.sleep(0.05)

    threads = [threading.Thread(target=load), threading.Thread(target=scrape)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: served[0] >= 150 and len(totals) >= 10, "150 requests and 10 scrapes")
        before_kill = max(totals)  # shown by a scrape: never lost
        victim = psutil.Process(worker_pids(master)[0])
        os.kill(victim.pid, signal.SIGKILL)

        def gone() -> bool:
            try:
                return victim.status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped by gunicorn
            except psutil.NoSuchProcess:
                return True

        wait_until(gone, "the victim to die")
        dead.set()
        scrapes_at_death = len(totals)
        wait_until(lambda: served_after[0] >= 150 and len(totals) >= scrapes_at_death + 10, "150 more, 10 scrapes")
    finally:
        stop.set()
        for thread in threads:
            thread.join(HANG_S)
    # documented loss: only what the victim served after its last publish (never what a scrape showed);
    # everything that started after its death reached a live worker and is counted (once every worker
    # has answered a scrape in time: on a busy machine one may be merged from its last file for a while)
    wait_until(lambda: request_total(get(base + "/metrics")) >= before_kill + served_after[0], "the totals")
    final = [request_total(get(base + "/metrics")) for _ in range(5)]
    decreases = [(a, b) for a, b in zip(totals, totals[1:], strict=False) if b < a]
    assert decreases == []
    assert final == [final[0]] * 5 and totals[-1] <= final[0] <= served[0]
    # a SIGKILL drops the victim's request in flight unanswered: at most one per client thread, from
    # before its death; nothing else fails (the listening socket is the master's)
    assert [(repr(e), after) for e, after in failures if after or not dropped(e)] == []
    assert len(failures) <= 2, failures


@pytest.mark.skipif(shutil.which("chattr") is None, reason="chattr not installed")
def test_a_read_only_directory_serves_each_workers_own_numbers_with_one_log_line(gunicorn, tmp_path):  # noqa: F811 - gunicorn is the imported fixture
    directory = tmp_path / "group"
    directory.mkdir(mode=0o700)
    # chattr +i: unwritable even for root (the tests may run as root, where chmod does not stop writes)
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("the file system does not support chattr +i")
    try:
        base, master = gunicorn(workers=2, env={"OTEL_MONITOR_MULTIPROCESS_DIR": str(directory)})
        send(base, 0, 20)
        scrapes = [get(base + "/metrics") for _ in range(20)]
        health = [status_and_body(base + "/otel-monitor/health") for _ in range(5)]
        # each worker's own numbers: a worker that happened to serve none of the 20 shows 0
        totals = [request_total(body) for body in scrapes]
        assert all(0 <= total <= 20 for total in totals) and max(totals) > 0, totals
        # 503 is /health's own verdict on this busy machine (a JSON body); never a 500
        assert all(code in (200, 503) and json.loads(body)["status"] for code, body in health), health
        log = next(tmp_path.glob("gunicorn-*.log")).read_text()
        assert log.count("cannot use the multiprocess directory") == 2, log[-2000:]  # once per worker
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=False)


# -- one process, many threads --------------------------------------------------------------------


@pytest.fixture
def worker(tmp_path):
    """A pipeline switched to a worker view on a private directory (as a pre-fork worker would be)."""
    app, monitor = build_app()
    pipeline = monitor.pipeline
    view = multiprocess.worker_view(pipeline, str(tmp_path))
    pipeline.view = view
    yield app, pipeline, view, tmp_path
    view.close()
    monitor.shutdown(timeout=2)


#: calls per thread in the torn-file test: bounded by count, so a slow machine runs it slower, not less
ROUNDS = 1000


def test_concurrent_scrapes_publishes_and_reads_never_leave_a_torn_file(worker):
    app, pipeline, view, directory = worker
    client = closing_client(app)
    for i in range(50):
        client.get(f"/users/{i}")
    errors: list[BaseException] = []
    torn: list[str] = []
    path = directory / f"w-{os.getpid()}.json"

    def hammer(fn) -> None:
        for _ in range(ROUNDS):
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - any error of the thread is collected and asserted on
                errors.append(exc)

    def check() -> None:
        try:
            json.loads(path.read_text())
        except FileNotFoundError:
            pass
        except ValueError as exc:
            torn.append(repr(exc))

    def forced_tick() -> None:
        view._last_seen = -1  # as if requests came in
        view.tick()

    threads = [
        threading.Thread(target=hammer, args=(fn,)) for fn in (view.scrape, forced_tick, view.read, check, check)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_S)
    assert errors == [] and torn == []
    assert not list(directory.glob("*.tmp")), "a temporary file was left behind"


def test_a_full_directory_degrades_to_own_numbers_with_one_log_line_and_recovers(worker, monkeypatch, caplog):
    app, pipeline, view, directory = worker
    client = closing_client(app)
    client.get("/users/1")
    real = multiprocess._write_text_atomically  # every file write goes through it

    def full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(multiprocess, "_write_text_atomically", full)
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        for _ in range(5):
            response = client.get("/metrics")
            assert response.status_code == 200
            assert request_total_any(response.get_data(as_text=True)) >= 1
    assert len([r for r in caplog.records if "cannot use the multiprocess directory" in r.getMessage()]) == 1
    monkeypatch.setattr(multiprocess, "_write_text_atomically", real)
    view._failed_at = time.monotonic() - multiprocess.RETRY_AFTER  # the retry is due
    assert client.get("/metrics").status_code == 200
    assert json.loads((directory / f"w-{os.getpid()}.json").read_text())["pid"] == os.getpid()


def test_a_dead_workers_published_counts_stay_in_the_totals(worker):
    app, pipeline, view, directory = worker
    closing_client(app).get("/users/1")
    dead = {"pid": 999_999_999, "metrics": multiprocess.serialise(pipeline.reader.snapshot()), "shared": {}}
    (directory / "w-999999999.json").write_text(json.dumps(dead))
    body = closing_client(app).get("/metrics").get_data(as_text=True)
    assert request_total_any(body) == 2  # ours and the dead worker's
    assert not (directory / "w-999999999.json").exists() and (directory / "archive.json").exists()


def status_and_body(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def request_total_any(body: str) -> float:
    import re

    return sum(
        float(v) for v in re.findall(r"^http_server_request_duration_seconds_count\{[^}]*\} ([0-9.e+]+)$", body, re.M)
    )


def test_an_openmetrics_scrape_through_a_worker_parses_with_the_groups_counts_and_exemplars(gunicorn):  # noqa: F811 - gunicorn is the imported fixture
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    base, master = gunicorn(workers=2)
    send(base, 0, 40)
    request = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        body = response.read().decode()
    buckets = [
        s
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == "http_server_request_duration_seconds_bucket"
    ]
    counts = [s for f in text_string_to_metric_families(body) for s in f.samples if s.name.endswith("_count")]
    assert sum(s.value for s in counts if s.labels.get("http_route") == "/work/<int:n>") == 40
    assert any(s.exemplar is not None and len(s.exemplar.labels["trace_id"]) == 32 for s in buckets)


def test_in_process_reads_never_write_the_workers_file(worker):
    app, pipeline, view, directory = worker
    closing_client(app).get("/users/1")

    def written() -> list[tuple[str, int, str]]:  # the worker's whole file, its log and its shared values
        return sorted((p.name, p.stat().st_mtime_ns, p.read_text()) for p in directory.glob(f"w-{os.getpid()}.*[!k]"))

    before = written()
    view._read_cache = None
    for _ in range(3):
        view.read()
        pipeline.collect_all()
    assert written() == before
    closing_client(app).get("/users/2")
    closing_client(app).get("/metrics")  # a scrape does publish
    assert written() != before


def requests_in(entries: list[dict]) -> int:
    durations = [entry for entry in entries if entry["name"] == "http.server.request.duration"]
    return sum(point["count"] for entry in durations for point in entry["points"])


def test_a_scrape_elsewhere_while_a_worker_exits_counts_the_workers_last_requests(monkeypatch):
    """gunicorn --max-requests: a worker answers its last request, then exits. A scrape on another
    worker meanwhile asks it to publish and reads the group; it must never see the exiting worker's
    last periodic publish alone (CI once read 80 of 120 requests)."""
    directory = Path(tempfile.mkdtemp(prefix="om-", dir="/tmp"))  # short: the workers' sockets live there
    app, monitor = build_app()
    view = multiprocess.worker_view(monitor.pipeline, str(directory))
    monitor.pipeline.view = view
    try:
        client = closing_client(app)
        for _ in range(5):
            client.get("/users/1")
        fresh = view._fresh

        def slow_fresh():
            time.sleep(0.2)  # a busy machine: the exiting worker's last snapshot takes a while
            return fresh()

        monkeypatch.setattr(view, "_fresh", slow_fresh)
        other = multiprocess._Group(str(directory), None)  # another worker's reader
        closing = threading.Thread(target=view.close)
        closing.start()
        totals = []
        for _ in range(200):  # bounded; ends one read after the close
            done = not closing.is_alive()
            other.ask_to_publish(multiprocess.PUBLISH_WAIT)
            live, archive = other.others()
            totals.append(sum(requests_in(p["metrics"]) for _, p in live) + requests_in(archive["metrics"]))
            if done:
                break
        closing.join(HANG_S)
        assert totals == [5] * len(totals) and len(totals) >= 2
        assert sorted(p.name for p in directory.glob("w-*")) == []
    finally:
        monitor.shutdown(timeout=2)
        shutil.rmtree(directory, ignore_errors=True)
