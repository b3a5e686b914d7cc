"""Serve an app on 127.0.0.1 with bounded synthetic traffic: the README's main job.

Used by ``examples/app.py --traffic`` and ``otel-monitor demo``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

#: (weight, method, path) of a healthy minute: every example endpoint gets data, 404s included
TRAFFIC_MIX: list[tuple[int, str, str]] = [
    (20, "GET", "/"),
    (25, "GET", "/api/users"),
    (30, "GET", "/api/users/{id}"),
    (8, "POST", "/api/orders"),
    (1, "GET", "/api/slow"),
    (2, "GET", "/no/such/page/{id}"),
]
#: what is added while the app is degraded: slow requests and failures with tracebacks
DEGRADED_MIX: list[tuple[int, str, str]] = [
    (6, "GET", "/api/slow"),
    (5, "GET", "/api/error"),
    (4, "POST", "/api/orders?product=lamp"),
]
#: (seconds, degraded?) repeated: a short healthy start, a degraded spell, then a long healthy stretch,
#: so a short demo run shows failures and slow requests, and a long one shows the health recover
TRAFFIC_PHASES: list[tuple[float, bool]] = [(12.0, False), (15.0, True), (150.0, False)]
_PRODUCTS = ["book", "pen"]
#: the signed-in users of the demo's traffic (``X-Demo-User``; None: nobody signed in), and how often
_USERS: list[tuple[str | None, int]] = [("ada", 8), ("grace", 4), ("linus", 2), ("margaret", 1), (None, 5)]


def degraded_at(elapsed: float) -> bool:
    """Whether the traffic is in a degraded phase ``elapsed`` seconds after it started."""
    cycle = sum(length for length, _ in TRAFFIC_PHASES)
    t = elapsed % cycle
    for length, degraded in TRAFFIC_PHASES:
        if t < length:
            return degraded
        t -= length
    return False


def send_traffic(
    base_url: str,
    seconds: float,
    *,
    threads: int = 2,
    max_requests: int = 100_000,
    progress: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Send the mix to ``base_url`` for at most ``seconds`` and ``max_requests``; returns the count.

    The mix follows :data:`TRAFFIC_PHASES`: healthy, then degraded (:data:`DEGRADED_MIX` added),
    then healthy again, so every view of the dashboard has something true to show.
    """
    stop = stop or threading.Event()
    started_at = time.monotonic()
    deadline = started_at + seconds
    sent = [0]
    lock = threading.Lock()
    healthy, degraded = TRAFFIC_MIX, TRAFFIC_MIX + DEGRADED_MIX
    weights = {False: [w for w, _, _ in healthy], True: [w for w, _, _ in degraded]}

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    return
                sent[0] += 1
            bad = degraded_at(time.monotonic() - started_at)
            _, method, path = rnd.choices(degraded if bad else healthy, weights[bad])[0]
            url = base_url + path.format(id=rnd.randint(1, 60))
            product = "lamp" if "product=lamp" in path else rnd.choice(_PRODUCTS)
            data = json.dumps({"product": product, "qty": 1}).encode() if method == "POST" else None
            req = urllib.request.Request(
                url.split("?")[0] if method == "POST" else url,
                data=data,
                method=method,
                headers={"Content-Type": "application/json", "User-Agent": "otel-monitor-demo"},
            )
            user = rnd.choices([u for u, _ in _USERS], [w for _, w in _USERS])[0]
            if user is not None:
                req.add_header("X-Demo-User", user)
            try:
                urllib.request.urlopen(req, timeout=5).read()
            except urllib.error.HTTPError as exc:
                exc.read()
            except OSError:
                time.sleep(0.05)
            # Paced like real users (about 40 requests/s per thread), so the demo itself does not fill
            # the CPU and make the host check fail.
            stop.wait(rnd.uniform(0.01, 0.04))

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    started = time.monotonic()
    while any(w.is_alive() for w in workers):
        for w in workers:
            w.join(0.5)
        if progress is not None:
            progress(sent[0], time.monotonic() - started)
    return sent[0]


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    traffic_seconds: float = 0,
    run_seconds: float | None = None,
    out: Any = None,
) -> None:
    """Serve ``app`` (threaded), print its URLs, optionally send traffic; stop on Ctrl-C/SIGTERM."""
    import logging

    from werkzeug.serving import make_server

    out = out or sys.stdout
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the access log would bury the URLs
    if traffic_seconds > 0 and hasattr(app, "logger"):
        # The synthetic traffic hits /api/error on purpose; its tracebacks are noise here.
        app.logger.setLevel(logging.CRITICAL)
    server = make_server(host, port, app, threaded=True)
    port = server.server_port
    thread = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    thread.start()
    base = f"http://{host}:{port}"
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    for line in urls_for(app, base):
        print(line, file=out, flush=True)
    try:
        if traffic_seconds > 0:

            def progress(count: int, elapsed: float) -> None:
                print(f"\rtraffic: {count} requests in {elapsed:4.1f}s", end="", file=out, flush=True)

            total = send_traffic(base, traffic_seconds, progress=progress, stop=stop)
            print(f"\rtraffic: done, {total} requests sent. Still serving; Ctrl-C to stop.", file=out, flush=True)
        deadline = None if run_seconds is None else time.monotonic() + run_seconds
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping...", file=out, flush=True)
        server.shutdown()
        server.server_close()
        from ..monitor import get_monitor

        monitor = get_monitor(app) if hasattr(app, "extensions") else getattr(app, "monitor", None)
        if monitor is not None:
            monitor.shutdown()
        print("stopped.", file=out, flush=True)


#: the history settings' environment variables: one of them set means the user chose a file
_HISTORY_VARIABLES = ("MONITORING_DB",)


@contextlib.contextmanager
def temporary_history(environ: Any = None) -> Iterator[str | None]:
    """A SQLite history file for as long as the demo runs (``MONITORING_DB``), removed afterwards.

    Without one the demo's analytics forget everything older than 15 minutes. Yields the path,
    or None when the user already set ``MONITORING_DB`` (their file is kept and used).
    """
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in _HISTORY_VARIABLES):
        yield None
        return
    directory = tempfile.mkdtemp(prefix="otel-monitor-demo-")
    path = os.path.join(directory, "history.db")
    environ["MONITORING_DB"] = path
    try:
        yield path
    finally:
        environ.pop("MONITORING_DB", None)
        shutil.rmtree(directory, ignore_errors=True)


#: the demo's alert: its degraded spell (about 5 % of requests fail) fires it, the recovery resolves it
DEMO_ALERT_RULE = {
    "name": "demo: error rate over 2 %",
    "metric": "error_rate_pct",
    "threshold": 2,
    "window": "20s",
    "for": "6s",
    "severity": "page",
    "description": "The demo's degraded spell: /api/error and failing orders",
}


@contextlib.contextmanager
def demo_alerts(environ: Any = None) -> Iterator[bool]:
    """Alerts on for the demo (:data:`DEMO_ALERT_RULE`, evaluated every 2 s) so the Alerts view shows
    one firing and resolving; state in a temporary directory removed afterwards. Yields False and
    changes nothing when the user set any ``OTEL_MONITOR_ALERTS*`` variable (their alerts apply)."""
    environ = os.environ if environ is None else environ
    if any(name.startswith("OTEL_MONITOR_ALERTS") for name in environ):
        yield False
        return
    directory = tempfile.mkdtemp(prefix="otel-monitor-demo-alerts-")
    values = {
        "OTEL_MONITOR_ALERTS": "on",
        "OTEL_MONITOR_ALERTS_RULES": json.dumps([DEMO_ALERT_RULE]),
        "OTEL_MONITOR_ALERTS_INTERVAL_S": "2",
        "OTEL_MONITOR_ALERTS_STATE_FILE": os.path.join(directory, "alerts.json"),
    }
    environ.update(values)
    try:
        yield True
    finally:
        for name in values:
            environ.pop(name, None)
        shutil.rmtree(directory, ignore_errors=True)


def urls_for(app: Any, base: str) -> list[str]:
    """What to open, for the app as it is configured (metrics path, analytics, dashboard)."""
    from ..monitor import get_monitor

    monitor = get_monitor(app) if hasattr(app, "extensions") else getattr(app, "monitor", None)
    auth = getattr(app, "extensions", {}).get("otel_monitor.analytics")
    if auth is not None and hasattr(auth, "log_login_url"):
        # Now, before the URLs, rather than at the first request, where it would cut into the
        # traffic's progress line.
        auth.log_login_url(base)
    settings = getattr(monitor, "settings", None)
    lines = [f"app:        {base}/"]
    if settings is not None:
        lines.append(f"metrics:    {base}{settings.metrics_path}")
    extra = getattr(monitor, "describe_urls", None)
    if callable(extra):
        lines.extend(extra(base))
    return lines
