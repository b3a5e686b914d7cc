#!/usr/bin/env python3
"""What the fleet source costs an analytics request: the same endpoints, from memory and from Prometheus.

    .venv/bin/python benchmarks/fleet_analytics.py [--seconds 20] [--rounds 30]

Starts Debian's ``prometheus`` (1 s scrapes) and three example apps on 127.0.0.1 that read their
analytics from it, plus a fourth app with the default in-process source. Then it sends traffic to all of them
for ``--seconds`` (bounded) and times ``--rounds`` calls of each analytics endpoint on a fleet
instance and on the in-process one. It prints a Markdown table of medians. Noisy on a shared VM:
compare the two columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "app.py"
PREFIX = "/professional-analytics"
TOKEN = "fleet-benchmark-token-0123456789"
ENDPOINTS = ("/performance", "/endpoints?window=15m", "/timeseries?window=15m", "/health", "/export?window=1h")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None = TOKEN) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code
    except OSError:  # a reset under load: counted as a failed call
        return 0


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    binary = shutil.which("prometheus") or sys.exit("prometheus is not installed")
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    ports = [free_port() for _ in range(3)]
    local_port = free_port()
    prom_port = free_port()
    targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        f"scrape_configs: [{{job_name: fleet-bench, static_configs: [{{targets: [{targets}]}}]}}]\n"
    )
    processes = []
    stop = threading.Event()
    try:
        processes.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MONITORING_"))}
        base_env.update(
            OTEL_SERVICE_NAME="fleet-bench",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_MONITOR_ANALYTICS_TOKEN=TOKEN,
        )
        fleet_env = {
            **base_env,
            "OTEL_MONITOR_ANALYTICS_SOURCE": "prometheus",
            "OTEL_MONITOR_ANALYTICS_PROMETHEUS_URL": f"http://127.0.0.1:{prom_port}",
        }
        for port, env in [(p, fleet_env) for p in ports] + [(local_port, base_env)]:
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(APP), "--port", str(port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        bases = [f"http://127.0.0.1:{p}" for p in [*ports, local_port]]
        for base in bases:
            wait(lambda b=base: get(b + "/metrics", None) == 200, 20, base)

        def traffic() -> None:
            deadline = time.monotonic() + args.seconds + 120
            while not stop.is_set() and time.monotonic() < deadline:
                for base in bases:
                    for path in ("/api/users", "/api/users/3", "/api/users/999", "/api/error"):
                        get(base + path, None)
                stop.wait(0.05)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        time.sleep(args.seconds)
        rows = []
        for path in ENDPOINTS:
            timings = {}
            for name, base in (("memory", bases[3]), ("prometheus", bases[0])):
                url = (
                    base
                    + PREFIX
                    + path
                    + ("&" if "?" in path else "?")
                    + ("scope=fleet" if "health" in path else "x=1")
                )
                samples = []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    status = get(url)
                    samples.append(time.perf_counter() - start)
                    if status not in (0, 200, 503):
                        raise SystemExit(f"{url} answered {status}")
                timings[name] = statistics.median(samples) * 1000
            rows.append((path, timings["memory"], timings["prometheus"]))
        print(f"\n{args.rounds} calls each, after {args.seconds:g} s of traffic to 3 fleet instances + 1 in-process\n")
        print("| endpoint | in-process median (ms) | fleet (Prometheus) median (ms) | ratio |")
        print("| --- | ---: | ---: | ---: |")
        for path, memory, fleet in rows:
            print(f"| `{path}` | {memory:.1f} | {fleet:.1f} | {fleet / memory:.1f}x |")
        print(json.dumps({"rows": rows}))
    finally:
        stop.set()
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
