"""One measurement in one fresh process, run by ``run.py`` with the benchmark virtualenv's Python.

``python benchmarks/worker.py <command> '<json arguments>'`` prints ``RESULT <json>`` as its last
line of stdout. Exit code 3 with ``RESULT {"skip": reason}`` means the stack cannot be built here.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
# The repository's otel_monitor, before any installed one: a run measures the tree it is run from
# (with --python naming another checkout's interpreter, its installed copy was measured instead).
sys.path.insert(1, os.path.dirname(_HERE))

from apps import SCRAPE_STATUSES, StackUnavailable, build_app  # noqa: E402 - after the sys.path set-up above

BENCH_PATH = "/users/42"
perf_counter = time.perf_counter
process_time = time.process_time


def result(payload: dict[str, Any], code: int = 0) -> None:
    sys.stdout.flush()
    sys.stdout.write("RESULT " + json.dumps(payload) + "\n")
    sys.stdout.flush()
    if code:
        sys.exit(code)


def make_environ(path: str = BENCH_PATH, method: str = "GET") -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(
        path=path,
        method=method,
        base_url="http://127.0.0.1:8000/",
        headers={"User-Agent": "otel-monitor-bench/1", "Accept": "*/*"},
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ["REMOTE_ADDR"] = "127.0.0.1"
    environ["REMOTE_PORT"] = "54321"
    return environ


class Caller:
    """Calls a WSGI app the way a server does: fresh environ copy, start_response, consume, close."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app
        self.status = ""

    def start_response(self, status, headers, exc_info=None):
        self.status = status
        return self._write

    @staticmethod
    def _write(data):  # pragma: no cover - the app never uses write()
        pass

    def once(self, environ: dict[str, Any]) -> bytes:
        body = self.app(environ.copy(), self.start_response)
        try:
            return b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def run_for(self, environ: dict[str, Any], seconds: float, batch: int = 50) -> tuple[int, float, float]:
        """Call for about ``seconds``; return (requests, elapsed seconds, process CPU seconds).

        Process CPU counts every thread (a batch span processor's export too), and other work on
        a shared machine does not inflate it as it does wall time.
        """
        app, start_response = self.app, self.start_response
        n = 0
        cpu = process_time()
        start = perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(batch):
                body = app(environ.copy(), start_response)
                for _chunk in body:
                    pass
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            n += batch
            now = perf_counter()
            if now >= deadline:
                return n, now - start, process_time() - cpu


def _build(stack: str, **kwargs):
    try:
        return build_app(stack, **kwargs)
    except StackUnavailable as exc:
        result({"skip": str(exc)}, code=3)


def _check(caller: Caller, environ: dict[str, Any], expect: str = "200") -> None:
    body = caller.once(environ)
    if not caller.status.startswith(expect):
        raise SystemExit(f"sanity check failed: {environ['PATH_INFO']} answered {caller.status!r}: {body[:200]!r}")


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


# -- commands --------------------------------------------------------------------------------------


def cmd_inprocess(args: dict[str, Any]) -> None:
    """A long-lived timing process for one stack, driven by run.py over stdin.

    run.py starts one of these for bare Flask and one for the stack, then alternates rounds between
    them (A B A B ...): each stack lives in its own fresh process, and the background threads of one
    (span processors, Flask-MonitoringDashboard's writers) never steal the GIL from the other's timing.
    Protocol: after building and warming up, print ``READY``; then for each stdin line
    ``<seconds>`` run for that long and print ``RESULT {"us": ..., "n": ...}``; stop at EOF.
    """
    caller = Caller(_build(args["stack"]))
    environ = make_environ(args.get("path", BENCH_PATH))
    _check(caller, environ)
    caller.run_for(environ, args["warmup"])
    print("READY", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        n, elapsed, cpu = caller.run_for(environ, float(line))
        result({"us": elapsed / n * 1e6, "cpu_us": cpu / n * 1e6, "n": n})


def cmd_memory(args: dict[str, Any]) -> None:
    """RSS while serving ``requests`` requests over ``distinct`` URLs (half matched, half 404), in URL order."""
    caller = Caller(_build(args["stack"]))
    environ = make_environ()
    _check(caller, environ)
    caller.run_for(environ, args.get("warmup", 0.2))
    half = max(1, args["distinct"] // 2)
    environs = []
    for i in range(half):
        for path in (f"/users/{i}", f"/nope/{i}"):
            env = dict(environ)
            env["PATH_INFO"] = path
            env["REQUEST_URI"] = env["RAW_URI"] = path
            environs.append(env)
    total, samples_at = args["requests"], set(args["samples"])
    deadline = perf_counter() + args["time_limit"]
    gc.collect()
    samples = [[0, rss_kib()]]
    once = caller.once
    count, timed_out = 0, False
    # URL k gets requests k*r .. k*r + r - 1 (r = requests / distinct): new URLs keep arriving until the
    # end, so state kept per URL shows as growth in both halves, and a flat second half means none.
    n_urls = len(environs)
    while count < total:
        once(environs[count * n_urls // total])
        count += 1
        if count in samples_at:
            gc.collect()
            samples.append([count, rss_kib()])
        if count % 500 == 0 and perf_counter() > deadline:
            timed_out = True
            gc.collect()
            samples.append([count, rss_kib()])
            break
    result({"samples": samples, "timed_out": timed_out, "threads": _thread_count()})


def _thread_count() -> int:
    import threading

    return threading.active_count()


def cmd_scrape(args: dict[str, Any]) -> None:
    """Hit ``routes`` routes x 5 statuses, then time GET /metrics (as a WSGI call, no gzip)."""
    routes = args["routes"]
    caller = Caller(_build(args["stack"], extra_routes=routes))
    environ = make_environ()
    for i in range(routes):
        for status in SCRAPE_STATUSES:
            path = f"/r{i:03d}/{status}"
            env = dict(environ)
            env["PATH_INFO"] = path
            env["REQUEST_URI"] = env["RAW_URI"] = path
            for _ in range(args["hits"]):
                caller.once(env)
            if not caller.status.startswith(str(status)):
                raise SystemExit(f"{path} answered {caller.status!r}")
    metrics_env = make_environ(args.get("metrics_path", "/metrics"))
    body = caller.once(metrics_env)
    if not caller.status.startswith("200"):
        raise SystemExit(f"/metrics answered {caller.status!r}: {body[:200]!r}")
    times = []
    for _ in range(args["scrapes"]):
        t0 = perf_counter()
        body = caller.once(metrics_env)
        times.append((perf_counter() - t0) * 1e3)
    lines = body.decode("utf-8", "replace").splitlines()
    series = sum(1 for line in lines if line and not line.startswith("#"))
    result({"ms": times, "bytes": len(body), "series": series})


def cmd_exit(args: dict[str, Any]) -> None:
    """Serve a few requests with OTLP export to a closed port, then exit normally (atexit hooks run)."""
    t_start = time.time()
    caller = Caller(_build(args["stack"], exit_endpoint=args["endpoint"]))
    environ = make_environ()
    for _ in range(args["requests"]):
        caller.once(environ)
    result({"t_start": t_start, "t_done": time.time()})
    # Return normally: the interpreter's exit (and every atexit/shutdown hook) is what is measured.


ANALYTICS_ENDPOINTS = (
    "/health",
    "/performance",
    "/endpoints?window=5m",
    "/timeseries?window=15m",
    "/metrics",
    "/traces?kind=all",
)


def cmd_analytics(args: dict[str, Any]) -> None:
    """Analytics endpoint response times with ``routes`` routes (docs/analytics-api.md).

    Reports n/a when ``otel_monitor.analytics`` cannot be imported. Uses the documented API: prefix
    ``analytics_prefix`` (default ``/otel-monitor``), authentication off via ``OTEL_MONITOR_ANALYTICS_AUTH=off``.
    """
    try:
        import otel_monitor.analytics  # noqa: F401 - only whether it imports
    except ImportError as exc:
        result({"na": "n/a (analytics not yet available)", "detail": str(exc)})
        return
    os.environ["OTEL_MONITOR_ANALYTICS_AUTH"] = "off"
    routes = args["routes"]
    app = _build("otel_monitor", extra_routes=routes)
    caller = Caller(app)
    prefix = "/otel-monitor"
    try:
        from otel_monitor import get_monitor

        prefix = getattr(get_monitor(app).settings, "analytics_prefix", None) or prefix
    except Exception:  # noqa: BLE001 - fall back to the documented default
        pass
    environ = make_environ()
    for i in range(routes):
        for status in SCRAPE_STATUSES:
            path = f"/r{i:03d}/{status}"
            env = dict(environ)
            env["PATH_INFO"] = env["REQUEST_URI"] = env["RAW_URI"] = path
            for _ in range(args["hits"]):
                caller.once(env)
    rows = []
    for endpoint in ANALYTICS_ENDPOINTS:
        path, _, query = (prefix.rstrip("/") + endpoint).partition("?")
        env = make_environ(path)
        env["QUERY_STRING"] = query
        body = caller.once(env)
        status = caller.status.split(" ")[0]
        times = []
        for _ in range(args["repeats"]):
            t0 = perf_counter()
            body = caller.once(env)
            times.append((perf_counter() - t0) * 1e3)
        rows.append({"endpoint": prefix.rstrip("/") + endpoint, "status": status, "bytes": len(body), "ms": times})
    result({"rows": rows})


def cmd_profile(args: dict[str, Any]) -> None:
    """Profile ``requests`` in-process requests through one stack; print the top entries by cumulative time."""
    caller = Caller(_build(args["stack"]))
    environ = make_environ()
    _check(caller, environ)
    caller.run_for(environ, 0.5)
    once, n = caller.once, args["requests"]
    if args.get("profiler") == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(n):
            once(environ)
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False, short_mode=False)
    else:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        t0 = perf_counter()
        profiler.enable()
        for _ in range(n):
            once(environ)
        profiler.disable()
        elapsed = perf_counter() - t0
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("cumulative").print_stats(args.get("top", 25))
        per_request = f"{elapsed / n * 1e6:.1f} us/request with profiling overhead"
        text = f"{n} requests in {elapsed:.2f} s under cProfile ({per_request})\n"
        text += stream.getvalue()
    result({"text": _short_paths(text)})


def _short_paths(text: str) -> str:
    import re
    import sysconfig

    for path, short in ((sysconfig.get_paths()["purelib"], "site-packages"), (os.path.dirname(_HERE), ".")):
        text = text.replace(path.rstrip("/") + "/", short + "/")
    return re.sub(r"\S*/lib/python3\.\d+/", "stdlib/", text)


def cmd_versions(args: dict[str, Any]) -> None:
    from importlib import metadata

    versions = {}
    for name in args["packages"]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import otel_monitor

        location = os.path.dirname(otel_monitor.__file__)
    except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
        location = f"not importable: {type(exc).__name__}: {exc}"
    result({"versions": versions, "python": sys.version.split()[0], "otel_monitor_location": location})


COMMANDS = {
    "inprocess": cmd_inprocess,
    "memory": cmd_memory,
    "scrape": cmd_scrape,
    "exit": cmd_exit,
    "analytics": cmd_analytics,
    "profile": cmd_profile,
    "versions": cmd_versions,
}


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[1] not in COMMANDS:
        raise SystemExit(f"usage: worker.py {{{','.join(COMMANDS)}}} '<json>'")
    COMMANDS[argv[1]](json.loads(argv[2]))


if __name__ == "__main__":
    main(sys.argv)
