"""Metrics at scale: otel_monitor, prometheus-flask-exporter and stock OpenTelemetry in one run.

    .venv/bin/python benchmarks/metrics_at_scale.py [--quick] [--stacks otel_monitor,pfe,stock_otel]

For 0 (the five-route app), 10, 100 and 500 extra routes, each hit once per status (200, 201, 400,
404, 500), it prints, per stack:

* one ``/metrics`` scrape in process (a WSGI call; median and fastest of the scrapes) and its size;
* one scrape through ``gunicorn -w 4`` (HTTP, 100 routes), and whether the totals each scrape
  reports equal the requests sent (``exact``) and never decrease (``monotonic``);
* the CPU each gunicorn worker spends in 10 s at rest and at 10 requests/s (the requests' own cost
  is the ``bare`` row).

Each stack runs in its own process (some keep process-wide state). The machine is shared: compare
ratios within one run, and repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))  # the repository's otel_monitor, before any installed one

STACKS = ("otel_monitor", "pfe", "stock_otel")
#: stacks measured under gunicorn only (prometheus_flask_exporter's own multiprocess mode)
GUNICORN_ONLY = ("pfe_multiprocess",)
ROUTES = (0, 10, 100, 500)
STATUSES = (200, 201, 400, 404, 500)
GUNICORN_ROUTES = 100
#: what each stack calls its request counter in the text format (the totals check)
TOTAL_PATTERNS = {
    "otel_monitor": re.compile(r"^http_server_request_duration_seconds_count\{(.*)\} (\S+)$"),
    "stock_otel": re.compile(r"^http_server_duration_milliseconds_count\{(.*)\} (\S+)$"),
    "pfe": re.compile(r"^flask_http_request_duration_seconds_count\{(.*)\} (\S+)$"),
    "pfe_multiprocess": re.compile(r"^flask_http_request_duration_seconds_count\{(.*)\} (\S+)$"),
}
HEALTH_PATH = "/otel-monitor/health"


def make_app() -> Any:
    """gunicorn entry: ``gunicorn 'metrics_at_scale:make_app()'`` with BENCH_STACK and BENCH_ROUTES."""
    from apps import build_app, make_flask_app

    stack, routes = os.environ.get("BENCH_STACK", "bare"), int(os.environ.get("BENCH_ROUTES", "0"))
    if os.environ.get("BENCH_GC_LOG"):
        _log_gc(os.environ["BENCH_GC_LOG"])
    if stack == "pfe_multiprocess":
        # prometheus_flask_exporter's documented gunicorn mode (prometheus_client multiprocess files)
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        app = make_flask_app(routes)
        GunicornInternalPrometheusMetrics(app)
        return app
    return build_app(stack, extra_routes=routes)


def _log_gc(directory: str) -> None:
    """Profiling aid: each process appends its cyclic-GC collections (generation, ms, objects
    collected) to ``<directory>/gc-<pid>.log`` (set BENCH_GC_LOG; py-spy shows a collection as
    whichever line allocated when it started)."""
    import gc

    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - started[0]) * 1e3
        with open(os.path.join(directory, f"gc-{os.getpid()}.log"), "a") as fh:
            fh.write(f"{time.time():.3f} gen{info['generation']} {ms:.2f} ms collected {info['collected']}\n")

    gc.callbacks.append(callback)


def _health_ms(url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        code, _ = _get(url)
        times.append((time.perf_counter() - t0) * 1e3)
        if code not in (200, 503):
            raise RuntimeError(f"/health answered {code}")
    return times


_HEALTH_INPROCESS = """
import json, os, sys, time
sys.path[:0] = [{here!r}, os.path.dirname({here!r})]
from apps import build_app
app = build_app("otel_monitor", extra_routes={routes})
client = app.test_client()
for i in range({routes}):
    for status in (200, 201, 400, 404, 500):
        client.get(f"/r{{i:03d}}/{{status}}").close()
client.get({path!r}).close()
times = []
for _ in range({n}):
    t0 = time.perf_counter()
    client.get({path!r}).close()
    times.append((time.perf_counter() - t0) * 1e3)
print("RESULT " + json.dumps(times))
"""


def _health_inprocess(n: int) -> list[float]:
    script = _HEALTH_INPROCESS.format(here=_HERE, routes=GUNICORN_ROUTES, path=HEALTH_PATH, n=n)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT ") :]) if lines else []


# -- in process -------------------------------------------------------------------------------------


def _inprocess(stack: str, routes: int, scrapes: int) -> dict:
    """One measurement in a fresh process (``worker.py scrape``)."""
    args = {"stack": stack, "routes": routes, "hits": 1, "scrapes": scrapes}
    out = subprocess.run(
        [sys.executable, os.path.join(_HERE, "worker.py"), "scrape", json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"error": (out.stderr or out.stdout)[-300:]}
    return json.loads(lines[-1][len("RESULT ") :])


# -- through gunicorn -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _total(stack: str, body: bytes) -> float:
    pattern = TOTAL_PATTERNS.get(stack)
    if pattern is None:
        return float("nan")
    total = 0.0
    for line in body.decode("utf-8", "replace").splitlines():
        match = pattern.match(line)
        if match and "/metrics" not in match.group(1):
            total += float(match.group(2))
    return total


def _worker_cpu(master: int) -> dict[int, float]:
    import psutil

    result = {}
    for child in psutil.Process(master).children():
        try:
            times = child.cpu_times()
            result[child.pid] = times.user + times.system
        except psutil.Error:
            pass
    return result


def _cpu_over(master: int, seconds: float, load: Any = None) -> float:
    """Mean CPU seconds per worker over ``seconds`` (running ``load(deadline)`` meanwhile)."""
    before = _worker_cpu(master)
    deadline = time.monotonic() + seconds
    if load is not None:
        load(deadline)
    time.sleep(max(0.0, deadline - time.monotonic()))
    after = _worker_cpu(master)
    spent = [after[pid] - before[pid] for pid in after if pid in before]
    return statistics.mean(spent) if spent else float("nan")


def _gunicorn(
    stack: str, scrapes: int, cpu_seconds: float, workers: int = 4, routes: int = GUNICORN_ROUTES, settle: float = 1.0
) -> dict:
    port = _free_port()
    env = dict(os.environ, BENCH_STACK=stack, BENCH_ROUTES=str(routes))
    env.pop("OTEL_MONITOR_MULTIPROCESS_DIR", None)
    if stack == "pfe_multiprocess":
        import tempfile

        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-pfe-mp-")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            _HERE,
            "metrics_at_scale:make_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if _get(base + "/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            return {"error": "gunicorn did not start"}
        time.sleep(2.0)  # every worker booted
        sent = 1
        if scrapes:
            # the start-up probes that reached the app (one timed out on a busy machine is retried)
            code, body = _get(base + "/metrics")
            probes = _total(stack, body)
            if code == 200 and probes == probes:  # not NaN
                sent = int(probes)
        for i in range(routes):
            for status in STATUSES:
                _get(f"{base}/r{i:03d}/{status}")
                sent += 1
        times, totals, body = [], [], b""
        for _ in range(scrapes):
            t0 = time.perf_counter()
            code, body = _get(base + "/metrics")
            times.append((time.perf_counter() - t0) * 1e3)
            if code != 200:
                return {"error": f"/metrics answered {code}"}
            totals.append(_total(stack, body))
        health = _health_ms(base + HEALTH_PATH, scrapes) if stack == "otel_monitor" else []
        exact = bool(totals) and all(t == sent for t in totals)
        monotonic = all(b >= a for a, b in zip(totals, totals[1:], strict=False))
        time.sleep(settle)  # the first samples after the burst of new series are not the steady state
        rest = _cpu_over(process.pid, cpu_seconds)

        def load(until: float) -> None:
            i = 0
            while time.monotonic() < until - 0.1:
                _get(f"{base}/r{i % routes:03d}/200")
                i += 1
                time.sleep(max(0.0, 0.1 - 0.002))

        busy = _cpu_over(process.pid, cpu_seconds, load)
        return {
            "ms": times,
            "bytes": len(body),
            "totals": [min(totals), max(totals)] if totals else None,
            "sent": sent,
            "exact": exact,
            "monotonic": monotonic,
            "cpu_rest": rest * 10 / cpu_seconds,
            "cpu_busy": busy * 10 / cpu_seconds,
            "health": health,
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


# -- report ---------------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} (min {min(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--quick", action="store_true", help="fewer scrapes, 3 s CPU windows")
    parser.add_argument("--no-gunicorn", action="store_true")
    parser.add_argument("--no-inprocess", action="store_true", help="only the gunicorn table")
    parser.add_argument("--gunicorn-workers", default="4", help="comma-separated worker counts (e.g. 1,4)")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds between the scrapes and the CPU windows (30: past the first analytics samples after the "
        "burst of new series, the steady state)",
    )
    parser.add_argument(
        "--no-pfe-multiprocess",
        action="store_true",
        help="leave out prometheus_flask_exporter's multiprocess mode (at 10,000 series its scrapes time out)",
    )
    parser.add_argument(
        "--gunicorn-routes", type=int, default=GUNICORN_ROUTES, help="routes x 5 statuses = series (2000: 10,000)"
    )
    args = parser.parse_args(argv)
    stacks = [s for s in args.stacks.split(",") if s]
    scrapes = 5 if args.quick else 20
    cpu_seconds = 3.0 if args.quick else 10.0

    print("## Metrics at scale (one run; routes x 5 statuses; ms: median (fastest))\n")
    print("| routes | " + " | ".join(f"{s} scrape ms | {s} KB" for s in stacks) + " |")
    print("| --- | " + " | ".join("--- | ---" for _ in stacks) + " |")
    for routes in () if args.no_inprocess else ROUTES:
        cells = []
        for stack in stacks:
            r = _inprocess(stack, routes, scrapes)
            if "ms" in r:
                cells += [_ms(r["ms"]), f"{r['bytes'] / 1000:.0f}"]
            else:
                cells += [str(r.get("skip") or r.get("error"))[:60], ""]
        label = f"{routes} (+5 base)" if routes else "5-route app"
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    if args.no_gunicorn:
        return 0
    routes = args.gunicorn_routes
    counts = [int(w) for w in args.gunicorn_workers.split(",") if w]
    print(f"\n## gunicorn, {routes} routes x 5 statuses ({routes * 5:,} series)\n")
    print(
        "| stack, workers | scrape ms | KB | totals (min..max of sent) | exact | monotonic "
        "| CPU/worker s per 10 s at rest | at 10 req/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    health_one = _health_inprocess(scrapes) if "otel_monitor" in stacks else []
    health_group: list[float] = []
    peers = [] if args.no_pfe_multiprocess else list(GUNICORN_ONLY)
    for stack, workers in [(s, w) for s in ["bare", *stacks, *peers] for w in counts]:
        try:
            if stack == "bare":
                r = _gunicorn_cpu_only(cpu_seconds, workers, routes, args.settle)
            else:
                r = _gunicorn(stack, scrapes, cpu_seconds, workers, routes, args.settle)
        except Exception as exc:  # noqa: BLE001 - one stack's failure (a timed-out scrape) is its row's
            r = {"error": f"{type(exc).__name__}: {exc}"[:120]}
        if "error" in r:
            print(f"| {stack}, -w {workers} | {r['error']} | | | | | | |", flush=True)
            continue
        health_group = r.get("health") or health_group
        scrape = _ms(r["ms"]) if r.get("ms") else ""
        size = f"{r['bytes'] / 1000:.0f}" if r.get("bytes") else ""
        totals = f"{r['totals'][0]:.0f}..{r['totals'][1]:.0f} of {r['sent']}" if r.get("totals") else ""
        print(
            f"| {stack}, -w {workers} | {scrape} | {size} | {totals} | {r.get('exact', '')} | {r.get('monotonic', '')} "
            f"| {r['cpu_rest']:.3f} | {r['cpu_busy']:.3f} |",
            flush=True,
        )
    if health_one and health_group:
        print(
            f"\n`{HEALTH_PATH}` (otel_monitor, {routes} routes x 5): one process {_ms(health_one)} ms (WSGI "
            f"call), gunicorn -w 4 {_ms(health_group)} ms (HTTP)"
        )
    return 0


def _gunicorn_cpu_only(
    cpu_seconds: float, workers: int = 4, routes: int = GUNICORN_ROUTES, settle: float = 1.0
) -> dict:
    """The bare app under gunicorn: what the requests themselves cost."""
    r = _gunicorn("bare", 0, cpu_seconds, workers, routes, settle)
    return {k: v for k, v in r.items() if k in ("cpu_rest", "cpu_busy", "error")}


if __name__ == "__main__":
    raise SystemExit(main())
