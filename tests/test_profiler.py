"""The sampling profiler of slow requests: the profile of a slow request names the helper its
time went to (function, file, line) in the trace detail, in ``/profiles`` and in the collapsed
stacks; fast requests are never sampled; the aggregate is bounded and windowed; outliers keep
their redacted request context and the machine's figures; it works in threaded servers."""

from __future__ import annotations

import inspect
import threading
import time

import pytest
from flask import Flask

from otel_monitor.analytics import analytics_of, profiles
from otel_monitor.analytics.profiler import Profiler
from otel_monitor.settings import SettingsError, resolve_settings
from otel_monitor.testing import closing_client

from .apps import profiled_app
from .apps.profiled_app import add_routes

TOKEN = "profiler-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/otel-monitor"
APP_FILE = inspect.getsourcefile(profiled_app)
SLEEP_LINE = next(i for i, line in enumerate(open(APP_FILE), 1) if "time.sleep(SLEEP_S)" in line)
BUSY_LINES = {
    i
    for i, line in enumerate(open(APP_FILE), 1)
    if "while time.thread_time() < deadline" in line or "total += 1" in line
}


def make(monitors, **settings):
    settings.setdefault("analytics_token", TOKEN)
    settings.setdefault("analytics_slow_ms", 200)
    # Sampled from 20 ms on: the helpers' 300 ms give many samples even on a loaded machine.
    settings.setdefault("profiling_after_ms", 20)
    settings.setdefault("system_metrics", False)
    app = add_routes(Flask("profiled"))
    monitor = monitors(app, **settings)
    return app, monitor, closing_client(app)


def api(client, path):
    response = client.get(PREFIX + path, headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def kept_trace(client, route):
    listed = api(client, "/traces?kind=slow").get_json()["traces"]
    [entry] = [t for t in listed if t["route"] == route]
    return api(client, f"/traces/{entry['trace_id']}").get_json()


def profiled_trace(client, route, attempts=5, samples=3):
    """A kept trace of ``route`` whose profile has ``samples`` samples or more: requested again (a bounded
    number of times) when the profiler had fewer turns during the request, as on a machine whose load
    keeps its thread waiting."""
    for _ in range(attempts):
        assert client.get(route).status_code == 200
        listed = api(client, "/traces?kind=slow").get_json()["traces"]
        for entry in [t for t in listed if t["route"] == route]:
            tree = api(client, f"/traces/{entry['trace_id']}").get_json()
            if tree.get("profile", {}).get("samples", 0) >= samples:
                return tree
    raise AssertionError(f"no profile in {attempts} slow requests to {route}")


def leaves(profile):
    """(function, file, line) of each stack's innermost frame, with the samples ending there."""
    frames = profile["frames"]
    counts: dict[tuple, int] = {}
    for stack in profile["stacks"]:
        leaf = frames[stack["frames"][-1]]
        key = (leaf["function"], leaf["file"], leaf["line"])
        counts[key] = counts.get(key, 0) + stack["count"]
    return counts


def top_leaf(profile):
    counts = leaves(profile)
    return max(counts, key=counts.get)


def wait_folded(monitor, route, requests=1, timeout=60.0):
    """The profiler folds a request into its route on its next pass after the request ended."""
    state = analytics_of(monitor)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in state.profiling.routes.snapshot()["routes"] if e["route"] == route]
        if found and found[0]["requests"][0] >= requests:
            return
        time.sleep(0.02)


# -- the figure: where the time of a slow request went -------------------------------------------


def test_a_slow_request_s_trace_names_the_sleeping_helper_with_its_file_and_line(monitors):
    app, monitor, client = make(monitors)
    profile = profiled_trace(client, "/sleepy")["profile"]
    assert top_leaf(profile) == ("sleepy_helper", APP_FILE, SLEEP_LINE)
    # 300 ms, sampled after 20 ms every 10 ms (a busy machine takes fewer samples: profiled_trace asks for 3)
    assert profile["samples"] >= 3 and profile["interval_ms"] == 10 and profile["after_ms"] == 20
    assert sum(s["count"] for s in profile["stacks"]) == profile["samples"]
    names = [profile["frames"][i]["function"] for i in profile["stacks"][0]["frames"]]
    assert names[-2:] == ["add_routes.<locals>.sleepy", "sleepy_helper"]  # its caller, the view, above it


def test_a_request_looping_on_the_cpu_names_the_busy_helper(monitors):
    app, monitor, client = make(monitors)
    function, file, line = top_leaf(profiled_trace(client, "/busy")["profile"])
    assert (function, file) == ("busy_helper", APP_FILE) and line in BUSY_LINES


def test_profiles_aggregates_a_route_s_slow_requests_and_names_the_helper(monitors):
    app, monitor, client = make(monitors)
    for _ in range(2):
        client.get("/sleepy")
    wait_folded(monitor, "/sleepy", requests=2)
    body = api(client, "/profiles?route=/sleepy&method=GET&window=15m").get_json()
    assert (body["route"], body["method"], body["window"], body["requests"]) == ("/sleepy", "GET", "15m", 2)
    assert body["profiling"] is True and body["source"] == "minutes" and body["samples"] >= 6
    assert top_leaf(body) == ("sleepy_helper", APP_FILE, SLEEP_LINE)
    listed = api(client, "/profiles").get_json()
    assert listed == {"profiling": True, "routes": [{"route": "/sleepy", "method": "GET"}]}


def test_the_collapsed_format_is_one_semicolon_separated_stack_per_line_with_its_count(monitors):
    app, monitor, client = make(monitors)
    client.get("/sleepy")
    wait_folded(monitor, "/sleepy")
    body = api(client, "/profiles?route=/sleepy&method=GET").get_json()
    response = api(client, "/profiles?route=/sleepy&method=GET&format=collapsed")
    assert response.mimetype == "text/plain"
    lines = response.get_data(as_text=True).splitlines()
    assert len(lines) == len(body["stacks"])
    total = 0
    for line in lines:
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        assert stack.count(";") >= 2
    assert total == body["samples"]
    heaviest = max(lines, key=lambda text: int(text.rsplit(" ", 1)[1]))
    assert heaviest.rsplit(" ", 1)[0].endswith(f";sleepy_helper ({APP_FILE}:{SLEEP_LINE})")


def test_fast_requests_are_never_sampled_and_the_profiler_sleeps_between_requests(monitors):
    # A threshold no fast request reaches even on a machine stalled for seconds.
    app, monitor, client = make(monitors, profiling_after_ms=10_000)
    profiler = analytics_of(monitor).profiling.profiler
    for _ in range(200):
        assert client.get("/fast").status_code == 200
    assert profiler.samples == 0 and profiler.passes == 0
    assert monitor.pipeline.serving == {}  # no request is left registered as served
    api(client, "/profiles?route=/fast&method=GET")  # nothing folded for it
    assert api(client, "/profiles").get_json()["routes"] == []


def test_with_profiling_off_no_thread_samples_and_traces_have_no_profile(monitors):
    app, monitor, client = make(monitors, profiling=False)
    client.get("/sleepy")
    assert "profile" not in kept_trace(client, "/sleepy")
    assert not [t for t in threading.enumerate() if t.name == "otel_monitor-profiler"]
    assert api(client, "/profiles").get_json() == {"profiling": False, "routes": []}


def test_the_threshold_defaults_to_half_the_slow_threshold_and_bad_values_fail_at_start_up():
    settings = resolve_settings({"analytics_slow_ms": 800})
    assert (settings.profiling, settings.profiling_interval_ms, settings.profiling_after_ms) == (True, 10.0, None)
    with pytest.raises(SettingsError, match="profiling_interval_ms"):
        resolve_settings({"profiling_interval_ms": 0})
    with pytest.raises(SettingsError, match="profiling_after_ms"):
        resolve_settings({}, environ={"OTEL_MONITOR_PROFILING_AFTER_MS": "soon"})


def test_the_profiler_threshold_and_interval_come_from_the_settings(monitors):
    app, monitor, client = make(monitors, analytics_slow_ms=800, profiling_after_ms=None)
    profiler = analytics_of(monitor).profiling.profiler
    assert (profiler.after_s, profiler.interval_s) == (0.4, 0.01)
    app, monitor, client = make(monitors, profiling_after_ms=50, profiling_interval_ms=5)
    profiler = analytics_of(monitor).profiling.profiler
    assert (profiler.after_s, profiler.interval_s) == (0.05, 0.005)


def test_bad_profiles_queries_answer_400(monitors):
    app, monitor, client = make(monitors)
    for query in ("window=3d", "route=/x&format=svg"):
        response = client.get(f"{PREFIX}/profiles?{query}", headers=AUTH)
        assert response.status_code == 400 and "error" in response.get_json()
    assert client.get(f"{PREFIX}/profiles").status_code == 401


def test_concurrent_slow_requests_in_a_threaded_server_each_get_their_own_profile(monitors):
    import urllib.request

    from werkzeug.serving import make_server

    app, monitor, client = make(monitors)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    server = threading.Thread(target=http.serve_forever, daemon=True)
    server.start()
    try:
        base = f"http://127.0.0.1:{http.server_port}"
        paths = ["/sleepy", "/busy", "/sleepy"]
        callers = [
            threading.Thread(target=urllib.request.urlopen, args=(base + p,), kwargs={"timeout": 60}) for p in paths
        ]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(60)
    finally:
        http.shutdown()
        server.join(10)
    listed = api(client, "/traces?kind=slow").get_json()["traces"]
    assert sorted(t["route"] for t in listed) == ["/busy", "/sleepy", "/sleepy"]
    for entry in listed:
        profile = api(client, f"/traces/{entry['trace_id']}").get_json()["profile"]
        expected = "busy_helper" if entry["route"] == "/busy" else "sleepy_helper"
        assert top_leaf(profile)[0] == expected  # never another thread's stack


# -- outliers keep their context -------------------------------------------------------------------


def test_a_failed_request_keeps_its_redacted_headers_and_query_and_the_machine_s_figures(monitors):
    app, monitor, client = make(monitors)

    @app.get("/explode")
    def explode():
        raise RuntimeError("exploded")

    response = client.get(
        "/explode?token=s3cret&page=2",
        headers={"Authorization": "Bearer hunter2", "X-Api-Key": "abc123", "X-Trace-Me": "yes"},
    )
    assert response.status_code == 500
    [entry] = api(client, "/traces?kind=failed").get_json()["traces"]
    context = api(client, f"/traces/{entry['trace_id']}").get_json()["context"]
    request = context["request"]
    assert (request["method"], request["path"], request["query"]) == ("GET", "/explode", "token=REDACTED&page=2")
    headers = request["headers"]
    assert headers["authorization"] == "REDACTED" and headers["x-api-key"] == "REDACTED"
    assert headers["x-trace-me"] == "yes"
    system = context["system"]
    assert system["process_rss_bytes"] > 0 and system["host_memory_total_bytes"] >= system["host_memory_used_bytes"] > 0
    assert 0 <= system["host_cpu_pct"] <= 100 and system["process_cpu_pct"] >= 0
    assert "hunter2" not in str(context) and "s3cret" not in str(context) and "abc123" not in str(context)


def test_a_url_in_a_header_loses_its_sensitive_query_values(monitors):
    app, monitor, client = make(monitors)
    client.get("/sleepy", headers={"Referer": "https://user:pw@shop.example/a?code=xyz&q=1"})
    headers = kept_trace(client, "/sleepy")["context"]["request"]["headers"]
    assert headers["referer"] == "https://REDACTED:REDACTED@shop.example/a?code=REDACTED&q=1"


def test_a_failing_annotator_never_reaches_the_request(monitors, monkeypatch):
    app, monitor, client = make(monitors)

    def broken(span, tree):
        raise RuntimeError("annotator bug")

    monkeypatch.setattr(analytics_of(monitor).details, "_annotators", (broken,))
    assert client.get("/sleepy").status_code == 200
    assert kept_trace(client, "/sleepy")["route"] == "/sleepy"


# -- the aggregate: bounded, windowed ----------------------------------------------------------------


def stack(*names: str) -> tuple:
    return tuple((name, "app.py", i + 1) for i, name in enumerate(names))


def test_the_route_aggregate_keeps_at_most_max_stacks_per_route_and_sums_the_rest():
    routes = profiles.RouteProfiles(clock=lambda: 1_000_000.0)
    for i in range(profiles.MAX_STACKS + 50):
        routes.add("/r", "GET", {stack("main", f"f{i}"): 2})
    body = profiles.route_profile([routes.snapshot()], "/r", "GET", None, 1_000_000.0, 10, 100)
    assert len(body["stacks"]) == profiles.MAX_STACKS + 1
    assert body["samples"] == 2 * (profiles.MAX_STACKS + 50) and body["requests"] == profiles.MAX_STACKS + 50
    other = [s for s in body["stacks"] if [body["frames"][i]["function"] for i in s["frames"]] == ["(other stacks)"]]
    assert [s["count"] for s in other] == [100]


def test_the_route_aggregate_keeps_at_most_max_routes():
    routes = profiles.RouteProfiles(clock=lambda: 0.0)
    for i in range(profiles.MAX_ROUTES + 3):
        routes.add(f"/r{i}", "GET", {stack("main"): 1})
    assert len(routes.routes()) == profiles.MAX_ROUTES and routes.dropped_samples == 3


def test_windows_up_to_an_hour_count_the_minutes_inside_them_and_longer_ones_since_start():
    now = [0.0]
    routes = profiles.RouteProfiles(clock=lambda: now[0])
    routes.add("/r", "GET", {stack("main", "old"): 5})
    now[0] = 600.0  # ten minutes later
    routes.add("/r", "GET", {stack("main", "new"): 7})
    now[0] = 630.0
    snap = [routes.snapshot()]
    five = profiles.route_profile(snap, "/r", "GET", 300.0, now[0], 10, 100)
    assert (five["samples"], five["requests"], five["window_available"], five["source"]) == (7, 1, True, "minutes")
    since = profiles.route_profile(snap, "/r", "GET", None, now[0], 10, 100)
    assert (since["samples"], since["requests"], since["source"], since["covered_s"]) == (12, 2, "since start", 630.0)
    day = profiles.route_profile(snap, "/r", "GET", 86400.0, now[0], 10, 100)
    assert (day["samples"], day["window_available"]) == (12, False)


def test_workers_snapshots_merge_by_frame_not_by_index():
    a = profiles.RouteProfiles(clock=lambda: 0.0)
    b = profiles.RouteProfiles(clock=lambda: 0.0)
    b.add("/r", "GET", {stack("main", "other"): 1})  # different frame indexes in b
    for routes in (a, b):
        routes.add("/r", "GET", {stack("main", "work"): 3})
    body = profiles.route_profile(
        [a.snapshot(), b.snapshot(), "garbage", {"routes": [1]}], "/r", "GET", None, 0.0, 10, 1
    )
    counts = {tuple(body["frames"][i]["function"] for i in s["frames"]): s["count"] for s in body["stacks"]}
    assert counts == {("main", "work"): 6, ("main", "other"): 1} and body["requests"] == 3


def test_collapsed_labels_keep_hostile_names_on_one_line_without_extra_frames():
    profile = profiles.profile_json({(("evil;name\n<b>", "a;b.py", 3), ("leaf", "x.py", 9)): 4}, 10, 100)
    assert profiles.collapsed(profile) == "evil:name <b> (a:b.py:3);leaf (x.py:9) 4\n"


# -- the sampler, driven by hand ---------------------------------------------------------------------


class _Record:
    def __init__(self, start: float) -> None:
        self.start = start
        self.end = None
        self.finished = False
        self.route = "/hand"
        self.method = "GET"
        self.span = self

    def get_span_context(self):
        return self

    span_id = 7


def test_the_sampler_samples_only_requests_past_the_threshold_and_folds_them_when_they_end():
    serving: dict = {}
    routes = profiles.RouteProfiles(clock=lambda: 0.0)
    profiler = Profiler(serving, threading.Event(), 0.01, 0.1, routes)
    assert profiler.step() is None  # nothing served: idle
    record = _Record(time.perf_counter())
    serving[threading.get_ident()] = record
    delay = profiler.step(now=record.start + 0.04)
    assert profiler.samples == 0 and delay == pytest.approx(0.06)  # sleeps until it is due
    profiler.step(now=record.start + 0.2)
    profiler.step(now=record.start + 0.21)
    assert profiler.samples == 2
    record.finished = True
    del serving[threading.get_ident()]
    assert profiler.step() is None
    body = profiles.route_profile([routes.snapshot()], "/hand", "GET", None, 0.0, 10, 100)
    assert body["samples"] == 2 and body["requests"] == 1
    functions = {f["function"] for f in body["frames"]}
    assert "test_the_sampler_samples_only_requests_past_the_threshold_and_folds_them_when_they_end" in functions


def test_a_stopped_profiler_keeps_no_frame_of_a_request_it_sampled():
    serving: dict = {}
    profiler = Profiler(serving, threading.Event(), 0.01, 0.1, profiles.RouteProfiles(clock=lambda: 0.0))
    record = _Record(time.perf_counter())
    serving[threading.get_ident()] = record
    profiler.step(now=record.start + 0.2)
    assert profiler.samples == 1
    [profile] = profiler._live.values()
    assert profile.leaf is not None  # a request in flight: its last frame, reused by the next sample
    record.finished = True  # it ended, and the profiler stops before its next pass folds it
    profiler.stop()
    assert profile.leaf is None  # the request's stack (its frames' locals: a response body) is let go


def test_sampled_stacks_keep_the_innermost_max_depth_frames():
    from otel_monitor.analytics.profiler import MAX_DEPTH, _walk

    def recurse(n: int):
        if n == 0:
            return _walk(inspect.currentframe())
        return recurse(n - 1)

    walked = recurse(MAX_DEPTH + 20)
    assert len(walked) == MAX_DEPTH and walked[-1][0].co_name == "recurse"


# -- gunicorn: the workers' profiles merged ----------------------------------------------------------


@pytest.mark.integration
def test_under_gunicorn_every_worker_answers_with_all_workers_profiles(tmp_path):
    import json
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from .conftest import free_port, stop_process, wait_for_port

    pytest.importorskip("gunicorn")
    root = Path(__file__).resolve().parent.parent
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "OTEL_MONITOR_ANALYTICS_TOKEN": TOKEN,
        "OTEL_MONITOR_ANALYTICS_SLOW_MS": "200",
        "PROFILED_SLEEP_S": "0.3",
    }
    with open(tmp_path / "gunicorn.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4", "-b", f"127.0.0.1:{port}"]
            + ["--graceful-timeout", "5", "tests.apps.profiled_wsgi:app"],
            cwd=str(root),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30, proc=proc)
        base = f"http://127.0.0.1:{port}"

        def get(path: str, headers: dict | None = None) -> tuple[str, bytes]:
            with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers or {}), timeout=60) as r:
                return r.headers.get("X-Worker-Pid", ""), r.read()

        # Concurrent slow requests until both workers served some (bounded by count).
        pids: list[str] = []
        for _ in range(10):
            results: list[str] = []

            def call(into: list[str] = results) -> None:
                into.append(get("/sleepy")[0])

            callers = [threading.Thread(target=call) for _ in range(4)]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join(60)
            pids += results
            if len(set(pids)) >= 2:
                break
        assert len(set(pids)) == 2, pids
        expected = len(pids)
        deadline = time.monotonic() + 60
        body: dict = {}
        while time.monotonic() < deadline:  # each worker folds its last request on its next pass
            body = json.loads(get(PREFIX + "/profiles?route=/sleepy&method=GET&window=15m", AUTH)[1])
            if body["requests"] == expected:
                break
            time.sleep(0.2)
        assert body["requests"] == expected and body["samples"] >= expected
        assert top_leaf(body)[0] == "sleepy_helper"
        # Whichever worker answers, it answers for both, once each has published its last fold
        # (a worker publishes on its own schedule): poll until six answers in a row agree.
        agreeing: list[tuple[int, int]] = []
        while time.monotonic() < deadline and len(agreeing) < 6:
            again = json.loads(get(PREFIX + "/profiles?route=/sleepy&method=GET&window=15m", AUTH)[1])
            figure = (again["requests"], again["samples"])
            agreeing = [*agreeing, figure] if agreeing and agreeing[0] == figure and figure[0] == expected else []
            if not agreeing and figure[0] == expected:
                agreeing = [figure]
            time.sleep(0.1)
        assert len(agreeing) == 6, agreeing
        samples = agreeing[0][1]
        text = get(PREFIX + "/profiles?route=/sleepy&method=GET&format=collapsed", AUTH)[1].decode()
        assert sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines()) == samples
        assert "sleepy_helper (" in text
    finally:
        stop_process(proc)


def test_a_sleeping_request_is_sampled_without_walking_its_stack_again():
    from otel_monitor.analytics import profiler as profiler_module

    walks = []
    real_walk = profiler_module._walk

    def counting_walk(frame):
        walks.append(frame)
        return real_walk(frame)

    serving: dict = {}
    routes = profiles.RouteProfiles(clock=lambda: 0.0)
    profiler = Profiler(serving, threading.Event(), 0.01, 0.0, routes)
    record = _Record(0.0)
    sleeper_started = threading.Event()
    release = threading.Event()

    def sleeper():
        serving[threading.get_ident()] = record
        sleeper_started.set()
        release.wait(60)

    thread = threading.Thread(target=sleeper)
    thread.start()
    sleeper_started.wait(60)
    try:
        profiler_module._walk = counting_walk
        for _ in range(5):
            profiler.step(now=1.0)
    finally:
        profiler_module._walk = real_walk
        release.set()
        thread.join(60)
    assert profiler.samples == 5 and len(walks) == 1
    [(stack, count)] = profiler._live[id(record)].stacks.items()
    assert count == 5 and stack[-1][0].co_name == "wait"  # threading.Event.wait, inside sleeper


class _BrokenRecord(_Record):
    @property
    def start(self):  # every pass that reads it fails
        raise RuntimeError("broken record")

    @start.setter
    def start(self, value):
        pass


def test_a_failing_pass_is_logged_once_and_the_profiler_thread_goes_on(caplog):
    serving: dict = {}
    wake = threading.Event()
    profiler = Profiler(serving, wake, 0.01, 0.0, profiles.RouteProfiles())
    profiler.start()
    try:
        serving[1] = _BrokenRecord(0.0)
        wake.set()
        deadline = time.monotonic() + 60
        while "sampling request stacks" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "error while sampling request stacks (RuntimeError: broken record)" in caplog.text
        del serving[1]
        record = _Record(0.0)
        serving[threading.get_ident()] = record
        while profiler.samples == 0 and time.monotonic() < deadline:  # it samples again
            time.sleep(0.02)
        assert profiler.samples > 0 and profiler._thread.is_alive()
    finally:
        serving.clear()
        profiler.stop()
    assert not profiler._thread.is_alive()


@pytest.mark.integration
def test_the_example_app_s_slow_endpoint_profile_points_at_its_culprit(example_server):
    import json
    import urllib.request

    from .conftest import ROOT

    base = example_server({"OTEL_MONITOR_ANALYTICS_TOKEN": TOKEN})
    urllib.request.urlopen(base + "/api/slow", timeout=60).read()
    prefix = "/professional-analytics"

    def get(path: str) -> dict:
        request = urllib.request.Request(base + prefix + path, headers=AUTH)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    [entry] = [t for t in get("/traces?kind=slow")["traces"] if t["route"] == "/api/slow"]
    profile = get(f"/traces/{entry['trace_id']}")["profile"]
    function, file, line = top_leaf(profile)
    assert (function, file) == ("create_app.<locals>._build_report", str(ROOT / "examples" / "app.py"))


def test_the_analytics_own_requests_are_sampled_into_no_route():
    serving: dict = {}
    routes = profiles.RouteProfiles(clock=lambda: 0.0)
    profiler = Profiler(serving, threading.Event(), 0.01, 0.0, routes, exclude_prefix="/otel-monitor/")
    own, app_route = _Record(0.0), _Record(0.0)
    own.environ = {"otel_monitor.route": "/otel-monitor/profiles"}
    for record in (own, app_route):
        serving[threading.get_ident()] = record
        profiler.step(now=1.0)
        record.finished = True
        del serving[threading.get_ident()]
        profiler.step()
    assert profiler.samples == 2 and routes.routes() == [("/hand", "GET")]


def test_a_trace_s_profile_keeps_its_heaviest_stacks_and_sums_the_rest():
    stacks = {stack("main", f"f{i}"): i + 1 for i in range(150)}
    body = profiles.profile_json(stacks, 10, 100, max_stacks=100)
    assert len(body["stacks"]) == 100 and body["samples"] == sum(range(1, 151))
    named = {tuple(body["frames"][i]["function"] for i in s["frames"]): s["count"] for s in body["stacks"]}
    assert named[("main", "f149")] == 150 and ("main", "f50") not in named
    assert named[("(other stacks)",)] == sum(range(1, 52))  # f0 .. f50: the 51 lightest
