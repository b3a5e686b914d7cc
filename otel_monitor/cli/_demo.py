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
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ..monitor import Monitor
    from ..settings import Settings

#: (weight, method, path) of a healthy minute: every example endpoint gets data, 404s included
TRAFFIC_MIX: list[tuple[int, str, str]] = [
    (20, "GET", "/"),
    (25, "GET", "/api/users"),
    (30, "GET", "/api/users/{id}"),
    (8, "POST", "/api/orders"),
    (1, "GET", "/api/slow"),
    (2, "GET", "/no/such/page/{id}"),
]
#: what is added during the incident: slow reports, a failing payment endpoint, orders of a product
#: out of stock (about 6 % of requests fail: the alert's 2 % is crossed; the health's 1 % over its
#: 5 minutes only for a while)
DEGRADED_MIX: list[tuple[int, str, str]] = [
    (2, "GET", "/api/slow"),
    (5, "GET", "/api/error"),
    (1, "POST", "/api/orders?product=lamp"),
]
_PRODUCTS = ["book", "pen"]
#: the inventory service's answer time while it is slow: each order waits for it, past the
#: analytics' 500 ms, so its trace is kept as slow, with its profile and its spans
SLOW_DEPENDENCY_S = 0.6


@dataclass(frozen=True)
class Phase:
    """One chapter of the demo's story: how long, which version serves, whether it is the incident."""

    name: str
    seconds: float
    version: str
    incident: bool
    #: printed when the phase starts
    note: str


#: The demo's story (about 3 minutes): version 1.0 serves healthy traffic; 2.0 is deployed; then the
#: inventory service slows down and payments fail (the alert fires, the health badge says why);
#: then both recover (the alert resolves, the badge turns green again within the 5 minutes it covers).
STORY: tuple[Phase, ...] = (
    Phase("healthy", 45.0, "1.0", False, "version 1.0 serves healthy traffic"),
    Phase("deployed", 15.0, "2.0", False, "version 2.0 deployed"),
    Phase("incident", 30.0, "2.0", True, "incident: the inventory service is slow, payments fail"),
    Phase("recovery", 105.0, "2.0", False, "recovery: inventory and payments are back"),
)
#: The same story in a minute (``--quick``): for tests and a first look.
QUICK_STORY: tuple[Phase, ...] = (
    Phase("healthy", 6.0, "1.0", False, STORY[0].note),
    Phase("deployed", 4.0, "2.0", False, STORY[1].note),
    Phase("incident", 20.0, "2.0", True, STORY[2].note),
    Phase("recovery", 30.0, "2.0", False, STORY[3].note),
)


def story_seconds(story: Sequence[Phase]) -> float:
    return sum(p.seconds for p in story)


def phase_at(story: Sequence[Phase], elapsed: float) -> Phase:
    """The phase ``elapsed`` seconds into ``story`` (the last one once the story is told)."""
    for phase in story:
        if elapsed < phase.seconds:
            return phase
        elapsed -= phase.seconds
    return story[-1]


#: the signed-in users of the demo's traffic (``X-Demo-User``; None: nobody signed in), and how often
_USERS: list[tuple[str | None, int]] = [("ada", 8), ("grace", 4), ("linus", 2), ("margaret", 1), (None, 5)]


class Deployment:
    """The app being served, replaced by a "deploy": a WSGI app that hands each request to the
    current version (as a load balancer does after a rolling deploy)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.app(environ, start_response)

    def replace(self, app: WSGIApplication) -> WSGIApplication:
        """Serve ``app`` from now on; returns the one it replaces (for its owner to shut down)."""
        with self._lock:
            old, self.app = self.app, app
        return old


def send_traffic(
    base_url: str,
    seconds: float,
    *,
    threads: int = 2,
    max_requests: int = 100_000,
    progress: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
    story: Sequence[Phase] = STORY,
    on_phase: Callable[[Phase], None] | None = None,
) -> int:
    """Send the mix to ``base_url`` for at most ``seconds`` and ``max_requests``; returns the count.

    The mix follows ``story``: healthy, then the incident (:data:`DEGRADED_MIX` added), then
    healthy again, so every view of the dashboard has something true to show. ``on_phase`` is
    called (from this thread) as each phase starts, the first one included.
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
            bad = phase_at(story, time.monotonic() - started_at).incident
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
    shown: Phase | None = None
    while True:
        phase = phase_at(story, time.monotonic() - started_at)
        if phase is not shown and on_phase is not None:
            on_phase(phase)
        shown = phase
        if not any(w.is_alive() for w in workers):
            break
        for w in workers:
            w.join(0.5)
        if progress is not None:
            progress(sent[0], time.monotonic() - started_at)
    return sent[0]


def serve(
    app: WSGIApplication,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    traffic_seconds: float = 0,
    run_seconds: float | None = None,
    out: TextIO | None = None,
    story: Sequence[Phase] = STORY,
    deploy: Callable[[str], WSGIApplication] | None = None,
) -> None:
    """Serve ``app`` (threaded), print its URLs, optionally send traffic; stop on Ctrl-C/SIGTERM.

    The traffic tells ``story``. With ``deploy`` (version -> a new app), a phase of another version
    deploys it: the new app serves every request from then on and the old one is shut down (its
    last minute written to the shared history file), so the Versions view compares the two.
    """
    import logging

    from werkzeug.serving import make_server

    out = out or sys.stdout
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the access log would bury the URLs
    deployment = Deployment(app)
    server = make_server(host, port, deployment, threaded=True)
    port = server.server_port
    base = f"http://{host}:{port}"
    _prepare(app, base, quiet=traffic_seconds > 0)
    thread = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    thread.start()
    stop = threading.Event()
    retired: list[threading.Thread] = []
    serving = [story[0].version]  # the version serving now

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_phase(phase: Phase) -> None:
        deploying = phase.version != serving[0]
        serving[0] = phase.version
        if deploying and deploy is not None:
            new = deploy(phase.version)
            _prepare(new, base, quiet=True)
            old = deployment.replace(new)
            # The old version stops as a replaced process would: its last minute goes to the history.
            t = threading.Thread(target=_shutdown, args=(old,), name="demo-retire", daemon=True)
            t.start()
            retired.append(t)
        _set_incident(deployment.app, phase.incident)
        if deploy is not None or not deploying:  # one app only: no deploy to tell of
            print(f"\rstory: {phase.note}" + " " * 20, file=out, flush=True)

    signal.signal(signal.SIGTERM, on_signal)
    for line in urls_for(app, base):
        print(line, file=out, flush=True)
    try:
        if traffic_seconds > 0:

            def progress(count: int, elapsed: float) -> None:
                print(f"\rtraffic: {count} requests in {elapsed:4.1f}s", end="", file=out, flush=True)

            total = send_traffic(base, traffic_seconds, progress=progress, stop=stop, story=story, on_phase=on_phase)
            _set_incident(deployment.app, False)
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
        for t in retired:
            t.join(30)
        _shutdown(deployment.app)
        print("stopped.", file=out, flush=True)


def deploy_args(app: WSGIApplication) -> dict[str, str]:
    """Settings the next version of ``app`` takes over: the token ``app`` generated (the URLs
    printed and the dashboard's session stay valid across the deploy)."""
    auth = getattr(app, "extensions", {}).get("otel_monitor.analytics")
    if auth is not None and getattr(auth, "generated_token", False) and getattr(auth, "token", None):
        return {"analytics_token": auth.token}
    return {}


def _monitor_of(app: WSGIApplication) -> Monitor | None:
    from ..monitor import get_monitor

    if hasattr(app, "extensions"):
        return get_monitor(app)
    monitor: Monitor | None = getattr(app, "monitor", None)  # what wrap() returns carries its monitor
    return monitor


def _shutdown(app: WSGIApplication) -> None:
    monitor = _monitor_of(app)
    if monitor is not None:
        monitor.shutdown()


def _prepare(app: WSGIApplication, base: str, quiet: bool) -> None:
    """The example app's outgoing call goes to this server; the traffic's tracebacks stay off the console."""
    import logging

    config = getattr(app, "config", None)
    if isinstance(config, dict):
        config.setdefault("INVENTORY_URL", base)
    if quiet and hasattr(app, "logger"):
        # The synthetic traffic hits /api/error on purpose; its tracebacks are noise here.
        app.logger.setLevel(logging.CRITICAL)


def _set_incident(app: WSGIApplication, incident: bool) -> None:
    """The incident's slow dependency: the example app's inventory route answers late."""
    config = getattr(app, "config", None)
    if isinstance(config, dict):
        config["INVENTORY_DELAY_S"] = SLOW_DEPENDENCY_S if incident else 0.0


#: who sets the version decides it: then the demo deploys nothing
_VERSION_VARIABLES = ("OTEL_MONITOR_SERVICE_VERSION",)


@contextlib.contextmanager
def demo_environment(story: Sequence[Phase] = STORY, environ: MutableMapping[str, str] | None = None) -> Iterator[bool]:
    """The environment of the demo's story, for as long as it runs: the first version
    (``OTEL_MONITOR_SERVICE_VERSION``) and a session key both versions share (a deploy keeps the
    dashboard's session; :func:`deploy_args` keeps the token). Whatever the user set is kept and
    wins. Yields whether the story's deploy happens (not when the user set the version)."""
    import secrets

    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    user_version = any(environ.get(name) for name in _VERSION_VARIABLES) or "service.version=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not user_version:
        values["OTEL_MONITOR_SERVICE_VERSION"] = story[0].version
    if not environ.get("OTEL_MONITOR_SECRET_KEY"):
        values["OTEL_MONITOR_SECRET_KEY"] = secrets.token_urlsafe(32)
    environ.update(values)
    try:
        yield not user_version
    finally:
        for name in values:
            environ.pop(name, None)


#: the history settings' environment variables: one of them set means the user chose a file
_HISTORY_VARIABLES = ("MONITORING_DB",)


@contextlib.contextmanager
def temporary_history(environ: MutableMapping[str, str] | None = None) -> Iterator[str | None]:
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
    "window": "15s",
    "for": "5s",
    "severity": "page",
    "description": "The demo's incident after version 2.0: payments fail, orders of a product out of stock",
}


@contextlib.contextmanager
def demo_alerts(environ: MutableMapping[str, str] | None = None) -> Iterator[bool]:
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


def urls_for(app: WSGIApplication, base: str) -> list[str]:
    """What to open, for the app as it is configured (metrics path, analytics, dashboard)."""
    monitor = _monitor_of(app)
    auth = getattr(app, "extensions", {}).get("otel_monitor.analytics")
    if auth is not None and hasattr(auth, "log_login_url"):
        # Now, before the URLs, rather than at the first request, where it would cut into the
        # traffic's progress line.
        auth.log_login_url(base)
    # the property raises AttributeError while the monitor is not attached
    settings: Settings | None = getattr(monitor, "settings", None)
    lines = [f"app:        {base}/"]
    if settings is not None:
        lines.append(f"metrics:    {base}{settings.metrics_path}")
    if monitor is not None:
        lines.extend(monitor.describe_urls(base))
    return lines
