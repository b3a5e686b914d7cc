"""What the sampling profiler of slow requests costs (issue 23): a benchmark, not a test.

    .venv/bin/python benchmarks/profiler_cost.py            # every part, each in a fresh process
    .venv/bin/python benchmarks/profiler_cost.py overhead   # one part: overhead | sampler | fmd

* ``overhead``: in-process time per fast request (``GET /fast`` straight through the WSGI app,
  no server), otel_monitor with ``profiling=True`` and with ``profiling=False`` in one process,
  alternating rounds; the median of the per-round medians, and on - off. Also the request path's
  own addition (registering the thread in ``pipeline.serving``), timed alone.
* ``sampler``: 8 threads each serving a slow request (``/sleepy`` sleeping, and ``/busy`` looping
  on the CPU) for several seconds; the CPU time of the profiler's thread over the middle of it as
  a share of one core, at the default interval (10 ms) and at 1 ms. Also the profiler's wake-ups
  while 1 000 fast requests come one by one.
* ``fmd``: Flask-MonitoringDashboard 5.1 at monitoring level 3, sampling every 10 ms (its profiler: a thread per
  request sampling that request's stack) on the same app: the time per fast request next to
  the bare app's, and the process's CPU while 8 threads serve a sleeping slow request (FMD's
  profiler threads) next to the same figure for otel_monitor and the bare app.

Needs ``pip install flask-monitoringdashboard==5.1.0`` in the venv for ``fmd`` (skipped without).
The machine is shared: compare within one run; the figures move by several percent between runs.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 30
PER_ROUND = 1000
SLOW_THREADS = 8


def _state(monitor):
    from otel_monitor.analytics import analytics_of

    state = analytics_of(monitor)
    assert state is not None, "the analytics are on in these apps"
    return state


def _environ(path: str) -> dict:
    from werkzeug.test import EnvironBuilder

    return EnvironBuilder(
        path=path, base_url="http://127.0.0.1:5000", environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ).get_environ()


def _call(app: Callable, path: str) -> None:
    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        pass

    body = app(_environ(path), start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _per_request_us(app: Callable, n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    environ = _environ("/fast")

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        pass

    start = clock()
    for _ in range(n):
        body = app(dict(environ), start_response)
        for _ in body:
            pass
        body.close()
    return (clock() - start) / n * 1e6


def _monitored(**settings: object):
    from flask import Flask

    from otel_monitor import Monitor
    from tests.apps.profiled_app import add_routes

    app = add_routes(Flask("profiled_bench"))
    monitor = Monitor(app, system_metrics=False, analytics_token="bench-token-0123456789", **settings)
    return app, monitor


def overhead() -> None:
    from flask import Flask

    from tests.apps.profiled_app import add_routes

    on, on_monitor = _monitored(profiling=True)
    off, off_monitor = _monitored(profiling=False)
    bare = add_routes(Flask("bare"))
    stacks = {"bare": bare.wsgi_app, "profiling on": on.wsgi_app, "profiling off": off.wsgi_app}
    for app in stacks.values():
        _per_request_us(app, 500)  # warm up
    # On a shared machine the wall clock mostly measures the other processes: the request
    # thread's own CPU time (time.thread_time) is the figure; the wall clock is shown too.
    for label, clock in (("thread CPU time", time.thread_time), ("wall clock", time.perf_counter)):
        results: dict[str, list[float]] = {name: [] for name in stacks}
        for _ in range(ROUNDS):
            for name, app in stacks.items():
                results[name].append(_per_request_us(app, PER_ROUND, clock))
        med = {name: statistics.median(values) for name, values in results.items()}
        fast = {name: min(values) for name, values in results.items()}
        print(f"per fast request ({label}), median of {ROUNDS} rounds x {PER_ROUND} (fastest round):")
        for name in stacks:
            print(f"  {name:14} {med[name]:8.2f} us ({fast[name]:.2f})")
        # The noise: the same stack against itself, round by round.
        offs = results["profiling off"]
        noise = statistics.median(abs(a - b) for a, b in zip(offs, offs[1:], strict=False))
        print(
            f"  on - off       {med['profiling on'] - med['profiling off']:+8.2f} us "
            f"({fast['profiling on'] - fast['profiling off']:+.2f}); "
            f"median round-to-round change of 'off' alone: {noise:.2f} us"
        )
    profiler = _state(on_monitor).profiling.profiler
    print(f"  samples taken during the fast requests: {profiler.samples}, sampling passes: {profiler.passes}")
    # The request path's addition alone: what _Request does for the profiler, timed in a loop.
    import timeit

    setup = (
        "import threading; serving = {}; wake = threading.Event(); wake.set(); "
        "get_ident = threading.get_ident; r = object()"
    )
    stmt = (
        "ident = get_ident()\nserving[ident] = r\n"
        "if not wake.is_set(): wake.set()\n"
        "if serving.get(ident) is r: serving.pop(ident, None)"
    )
    n = 1_000_000
    cost = min(timeit.Timer(stmt, setup, timer=time.thread_time).repeat(repeat=5, number=n)) / n * 1e9
    print(f"  the request path's registration alone (thread ident -> request, set and pop; CPU): {cost:.0f} ns")
    on_monitor.shutdown(timeout=2)
    off_monitor.shutdown(timeout=2)


def _thread_cpu(native_id: int) -> float:
    import psutil

    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return 0.0


def _slow_load(app: Callable, path: str, seconds: float, measure: Callable[[], float]) -> float:
    """Start SLOW_THREADS requests to ``path`` (each lasting ``seconds``); ``measure()`` over the middle."""
    threads = [threading.Thread(target=_call, args=(app, path)) for _ in range(SLOW_THREADS)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # past the threshold: every request is being sampled
    window = seconds - 2.0
    before, t0 = measure(), time.perf_counter()
    time.sleep(window)
    used, elapsed = measure() - before, time.perf_counter() - t0
    for t in threads:
        t.join()
    return used / elapsed * 100


def sampler() -> None:
    os.environ["PROFILED_SLEEP_S"] = "8"
    import importlib

    import tests.apps.profiled_app as profiled

    importlib.reload(profiled)
    for interval in (10.0, 1.0):
        app, monitor = _monitored(analytics_slow_ms=200, profiling_interval_ms=interval)
        profiler = _state(monitor).profiling.profiler
        _call(app, "/fast")  # builds the pipeline, starts the profiler
        native = profiler._thread.native_id if profiler._thread is not None else None
        assert native is not None
        for path in ("/sleepy", "/busy"):
            samples = profiler.samples
            pct = _slow_load(app, path, 8.0, functools.partial(_thread_cpu, native))
            rate = (profiler.samples - samples) / 8.0 / SLOW_THREADS
            print(
                f"sampler CPU, {SLOW_THREADS} threads serving {path} (8 s each), interval {interval:g} ms: "
                f"{pct:.2f} % of one core; {rate:.0f} samples/s per request"
            )
        monitor.shutdown(timeout=2)
    app, monitor = _monitored(analytics_slow_ms=200)
    profiler = _state(monitor).profiling.profiler
    _call(app, "/fast")
    time.sleep(0.2)
    wakeups = profiler.wakeups
    start = time.perf_counter()
    for _ in range(1000):
        _call(app, "/fast")
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    print(
        f"profiler wake-ups during 1 000 fast requests one by one ({elapsed:.1f} s): "
        f"{profiler.wakeups - wakeups}; sampling passes: {profiler.passes}"
    )
    monitor.shutdown(timeout=2)


def _fmd_app():
    import flask_monitoringdashboard as dashboard
    from flask import Flask

    from tests.apps.profiled_app import add_routes

    app = add_routes(Flask("profiled_fmd"))
    db_dir = tempfile.mkdtemp(prefix="bench-fmd-")
    config_file = os.path.join(db_dir, "fmd.cfg")
    with open(config_file, "w") as fh:
        fh.write(
            "[dashboard]\nMONITOR_LEVEL=3\nSAMPLING_RATE=10\n"
            f"[database]\nDATABASE=sqlite:///{os.path.join(db_dir, 'fmd.db')}\n"
        )
    dashboard.config.init_from(file=config_file)
    dashboard.bind(app)
    return app


def _side_by_side(name: str) -> None:
    """One stack of the FMD comparison, alone in this process (FMD's own threads would count
    against whatever else ran in it)."""
    from flask import Flask

    from tests.apps.profiled_app import add_routes

    os.environ["PROFILED_SLEEP_S"] = "6"
    import importlib

    import tests.apps.profiled_app as profiled

    importlib.reload(profiled)
    monitor = None
    if name == "fmd level 3":
        app = _fmd_app()
    elif name == "otel_monitor":
        app, monitor = _monitored(analytics_slow_ms=200)
    else:
        app = add_routes(Flask("bare"))
    import psutil

    process = psutil.Process()

    def cpu() -> float:
        times = process.cpu_times()
        return times.user + times.system

    # The slow requests first: FMD's backlog of writes after thousands of fast requests would
    # count against its profiler otherwise.
    _per_request_us(app, 20)
    time.sleep(2.0)
    idle_before, t0 = cpu(), time.perf_counter()
    time.sleep(3.0)
    idle = (cpu() - idle_before) / (time.perf_counter() - t0) * 100
    pct = _slow_load(app, "/sleepy", 6.0, cpu)
    _per_request_us(app, 300)
    walls, cpus = [], []
    for _ in range(7):
        walls.append(_per_request_us(app, 300))
        cpus.append(_per_request_us(app, 300, time.process_time))
    print(
        f"  {name:13} per fast request {statistics.median(walls):8.1f} us wall, "
        f"{statistics.median(cpus):8.1f} us process CPU; process CPU idle {idle:5.2f} %, "
        f"while {SLOW_THREADS} threads serve a sleeping request {pct:5.2f} % of a core"
    )
    if monitor is not None:
        monitor.shutdown(timeout=2)
    sys.stdout.flush()
    os._exit(0)  # FMD's request threads would keep writing their backlog for minutes


def fmd() -> None:
    try:
        import flask_monitoringdashboard  # noqa: F401 - only whether it is installed
    except ImportError:
        print("fmd: flask-monitoringdashboard is not installed (pip install flask-monitoringdashboard==5.1.0)")
        return
    print("side by side, each stack alone in a fresh process (medians of 7 rounds x 300 fast requests):")
    for name in ("bare", "otel_monitor", "fmd level 3"):
        done = subprocess.run(
            [sys.executable, __file__, "side-by-side", name],
            check=False,
            cwd=str(ROOT),
            capture_output=True,  # FMD prints its SQLite lock retries and pool timeouts
            text=True,
        )
        print("\n".join(line for line in done.stdout.splitlines() if line.startswith("  ")), flush=True)


PARTS = {"overhead": overhead, "sampler": sampler, "fmd": fmd}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "side-by-side":
        _side_by_side(sys.argv[2])
        return
    if len(sys.argv) > 1:
        PARTS[sys.argv[1]]()
        return
    for part in PARTS:
        print(f"## {part}", flush=True)
        subprocess.run([sys.executable, __file__, part], check=False, cwd=str(ROOT))


if __name__ == "__main__":
    main()
