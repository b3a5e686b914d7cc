#!/usr/bin/env python3
"""What 20 clients hammering the analytics cost the app: its latency and throughput with and without them.

    .venv/bin/python benchmarks/analytics_load.py [--seconds 10] [--rounds 2] [--clients 20]

Reproduces issue 22's figure. One gunicorn (``--workers`` x ``--threads`` gthread, default 1 x 16)
serves the benchmark app with 500 extra routes (``apps.make_flask_app``) and a history file
(``MONITORING_DB``) seeded with 7 days of per-minute rows, after one request to each of the
500 routes x 5 statuses. Then, alternately, ``wrk`` (``-c 4``, bounded by ``--seconds``) measures
the app's ``/users/42`` alone and while ``--clients`` threads of a second process call the heaviest
analytics endpoints back to back with the Bearer token: the 7-day CSV export, ``/performance``,
``/endpoints`` over every route and ``/traces``. A client waits ``Retry-After`` seconds when the
analytics answer 503 or 429 (as any well-behaved HTTP client and the dashboard do) and retries.

It prints a Markdown table: the app's p50/p99 and requests per second without and with the
analytics clients (medians over rounds), the ratio of the p99s (issue 22's target: at most 1.5),
and what the analytics clients got (answers by status). Everything stays on 127.0.0.1; every
phase is bounded in time. Noisy on a shared VM: compare the two columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN = "analytics-load-token-0123456789"
PREFIX = "/otel-monitor"
APP_PATH = "/users/42"
ROUTES = 500
STATUSES = (200, 201, 400, 404, 500)
#: the heaviest analytics calls (issue 22): 7-day CSV export, performance and endpoints over 500 routes, traces
HEAVY = (
    "/export?format=csv&window=7d",
    "/performance?window=24h",
    "/endpoints?window=15m&limit=1000",
    "/traces?kind=all&limit=1000",
)


def make_app():
    """The gunicorn entry point (``analytics_load:make_app()``): the benchmark app with 500 routes, monitored."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(1, str(ROOT))  # the repository's otel_monitor, before any installed one
    from apps import make_flask_app

    from otel_monitor import Monitor

    app = make_flask_app(extra_routes=ROUTES)
    Monitor(app)
    return app


# -- setting up --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_history(path: str, rows_per_minute: int, days: float = 7.0) -> int:
    """Per-minute rows over ``days``, ``rows_per_minute`` (route, status) keys a minute, rotating over all routes."""
    sys.path.insert(1, str(ROOT))  # the repository's otel_monitor, before any installed one
    from otel_monitor.analytics.history import History
    from otel_monitor.telemetry.pipeline import DURATION_BUCKETS

    history = History(path, "seed", tuple(DURATION_BUCKETS), days + 1, time.time)
    assert history.usable, "cannot create the history file"
    now = int(time.time() // 60) * 60
    first = now - int(days * 86400)
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    buckets[2] = 3
    bucket_text = json.dumps(buckets)
    rows = []
    n = 0
    for minute in range(first, now, 60):
        for _ in range(rows_per_minute):
            route = f"/r{(n // len(STATUSES)) % ROUTES:03d}/<int:status>"
            status = STATUSES[n % len(STATUSES)]
            n += 1
            rows.append(
                (minute, "seed", route, "GET", status, "", 3, 3 if status >= 500 else 0, 0.006, 0.003, bucket_text)
            )
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO requests (minute, instance_id, route, method, status, error, "
            "count, errors, sum_s, max_s, buckets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def get(port: int, path: str, headers: dict | None = None, timeout: float = 30) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            if get(port, "/health", timeout=2)[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 60 s")


def settle(port: int, timeout: float = 180) -> None:
    """Wait (bounded) until the server has worked off what the clients left queued: 5 quick answers in a row."""
    deadline = time.monotonic() + timeout
    quick = 0
    while quick < 5 and time.monotonic() < deadline:
        t0 = time.monotonic()
        get(port, APP_PATH, timeout=timeout)
        quick = quick + 1 if time.monotonic() - t0 < 0.02 else 0
        time.sleep(0.1)


# -- measuring ---------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """``command`` on CPU ``cpu`` only (``taskset``), so the load generators do not take the server's core."""
    if cpu is None or not shutil.which("taskset"):
        return command
    return ["taskset", "-c", str(cpu), *command]


def wrk(port: int, seconds: int, connections: int, cpu: int | None = None) -> dict[str, float]:
    out = subprocess.run(
        pinned(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "30s",
                "--latency",
                f"http://127.0.0.1:{port}{APP_PATH}",
            ],
            cpu,
        ),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    found = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if not m:
            raise SystemExit(f"cannot read wrk's {pct}th percentile:\n{out}")
        found[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    found["rps"] = float(rps.group(1)) if rps else 0.0
    timeouts = re.search(r"Socket errors:.*timeout (\d+)", out)
    found["timeouts"] = float(timeouts.group(1)) if timeouts else 0.0
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    found["non2xx"] = float(errors.group(1)) if errors else 0.0
    return found


def clients_main(port: int, clients: int, seconds: float, paths: tuple[str, ...] = HEAVY) -> None:
    """The analytics clients (run in their own process): back to back, honouring Retry-After."""
    stop = time.monotonic() + seconds
    statuses: Counter = Counter()
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def client(index: int) -> None:
        n = index
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < stop:
            path = PREFIX + paths[n % len(paths)]
            n += 1
            status, retry = 0, None
            for _attempt in range(2):  # the server closes idle keep-alive connections: reconnect once
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status, retry = response.status, response.getheader("Retry-After")
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                statuses[status] += 1
            if status in (429, 503) and retry:
                time.sleep(min(float(retry), max(0.0, stop - time.monotonic())))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    print(json.dumps({str(k): v for k, v in sorted(statuses.items())}))


def measure(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="analytics-load-"))
    db = str(work / "history.db")
    seeded = seed_history(db, args.history_rows_per_minute)
    port = free_port()
    env = {
        **os.environ,
        "OTEL_MONITOR_ANALYTICS_TOKEN": TOKEN,
        "MONITORING_DB": db,
        "OTEL_SERVICE_NAME": "analytics-load",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--chdir",
        str(HERE),
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(args.workers),
        "-k",
        "gthread",
        "--threads",
        str(args.threads),
        "--log-level",
        "warning",
        "analytics_load:make_app()",
    ]
    log = open(work / "gunicorn.log", "w")
    server_cpu, load_cpu = (0, 1) if args.pin and (os.cpu_count() or 1) >= 2 else (None, None)
    proc = subprocess.Popen(
        pinned(command, server_cpu), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for(port, proc)
        for i in range(ROUTES):  # every route and status once: 2,500 series in the analytics
            for status in STATUSES:
                get(port, f"/r{i:03d}/{status}")
        for path in HEAVY:  # warm: the history file opened, the first answers computed
            status, body, _ = get(port, PREFIX + path, {"Authorization": f"Bearer {TOKEN}"}, timeout=120)
            if status != 200:
                raise SystemExit(f"{path} answered {status}: {body[:300]!r}")
        phases: dict[str, list[dict]] = {"quiet": [], "control": [], "loaded": []}
        answers: Counter = Counter()

        def with_clients(paths: tuple[str, ...]) -> tuple[dict, Counter]:
            command = [sys.executable, __file__, "--clients-only", str(port), str(args.clients), str(args.seconds + 2)]
            clients = subprocess.Popen(pinned([*command, *paths], load_cpu), stdout=subprocess.PIPE, text=True)
            time.sleep(1.0)  # the clients are running
            found = wrk(port, args.seconds, args.connections, load_cpu)
            out, _ = clients.communicate(timeout=args.seconds + 180)
            settle(port)
            return found, Counter({int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()})

        for _ in range(args.rounds):
            phases["quiet"].append(wrk(port, args.seconds, args.connections, load_cpu))
            if args.control:
                phases["control"].append(with_clients(("/health/live",))[0])
            found, got = with_clients(HEAVY)
            phases["loaded"].append(found)
            answers.update(got)
        return {**phases, "answers": answers, "history_rows": seeded}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def report(result: dict, args: argparse.Namespace) -> str:
    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    quiet, loaded = result["quiet"], result["loaded"]
    ratio = med(loaded, "p99_ms") / med(quiet, "p99_ms")
    answers = ", ".join(f"{status or 'error'}: {n}" for status, n in sorted(result["answers"].items()))
    lines = [
        f"## The app under {args.clients} analytics clients ({ROUTES} routes, 7-day history)",
        "",
        f"gunicorn gthread {args.workers} x {args.threads}"
        + (" on CPU 0, the load generators on CPU 1" if args.pin else "")
        + f"; `wrk -c{args.connections}` on `{APP_PATH}`, "
        f"{args.seconds} s per phase, median of {args.rounds} alternating rounds; history: "
        f"{result['history_rows']:,} per-minute rows.",
        "",
        "| | app p50 ms | app p99 ms | app req/s |",
        "|---|---|---|---|",
        f"| alone | {med(quiet, 'p50_ms'):.2f} | {med(quiet, 'p99_ms'):.2f} | {med(quiet, 'rps'):,.0f} |",
        *(
            [
                f"| control: {args.clients} clients on `/health/live` | {med(result['control'], 'p50_ms'):.2f} "
                f"| {med(result['control'], 'p99_ms'):.2f} | {med(result['control'], 'rps'):,.0f} |"
            ]
            if result["control"]
            else []
        ),
        f"| with {args.clients} analytics clients | {med(loaded, 'p50_ms'):.2f} | {med(loaded, 'p99_ms'):.2f} "
        f"| {med(loaded, 'rps'):,.0f} |",
        "",
        f"p99 with / without: **{ratio:.2f}x** (target: at most 1.5x). Analytics answers: {answers}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--clients-only":
        clients_main(int(argv[1]), int(argv[2]), float(argv[3]), tuple(argv[4:]) or HEAVY)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per phase (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=20, help="analytics clients (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker (default: %(default)s)")
    parser.add_argument(
        "--history-rows-per-minute", type=int, default=10, help="seeded history rows a minute (default: %(default)s)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the server to CPU 0, wrk and the clients to CPU 1 (taskset; only on an otherwise idle machine)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also measure the app with the clients on /health/live (what 20 busy HTTP clients cost by themselves)",
    )
    args = parser.parse_args(argv)
    print(report(measure(args), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
