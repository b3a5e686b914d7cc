"""Analytics JSON API over a known traffic mix: counts, error rates, quantiles, Apdex, health,
windows that age out, export, recent traces, the route cap."""

from __future__ import annotations

import csv
import io
import time
import types
import zipfile
from itertools import pairwise

import pytest

from otel_monitor.analytics import RING_SIZE, analytics_of
from otel_monitor.telemetry.pipeline import DURATION_BUCKETS
from otel_monitor.testing import Telemetry, closing_client

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLOW_S = 0.15
PREFIX = "/otel-monitor"


def make_app(monitors, **settings):
    settings.setdefault("analytics_token", TOKEN)
    app, monitor = monitors.app(**settings)

    @app.get("/slow")
    def slow():
        time.sleep(SLOW_S)
        return "slow"

    state = analytics_of(monitor)
    # Deterministic tests: no background sampling; the tests call state.sample() themselves.
    monitor.pipeline.scheduler.stop()
    return app, monitor, state


class RequestClock:
    """The request path's clock, moved on by the app's views only: a request lasts exactly what its
    view says (150 ms for /slow, 1 ms for any other), however busy the machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)

    def drive(self, app) -> None:
        from flask import request

        @app.before_request
        def take_time() -> None:
            self.now += SLOW_S if request.path == "/slow" else 0.001


@pytest.fixture
def request_clock(monkeypatch) -> RequestClock:
    from otel_monitor.request import _request_path

    clock = RequestClock()
    monkeypatch.setattr(_request_path, "time", clock)  # durations and span end times come from it
    return clock


@pytest.fixture
def mix(monitors, request_clock):
    """90 fast OK (1 ms), 10 failing (1 ms), 5 slow (150 ms) requests."""
    app, monitor, state = make_app(monitors)
    request_clock.drive(app)
    client = closing_client(app)
    for _ in range(90):
        assert client.get("/").status_code == 200
    for _ in range(10):
        assert client.get("/fail").status_code == 500
    for _ in range(5):
        assert client.get("/slow").status_code == 200
    return app, monitor, state, client


def get(client, path, **kwargs):
    response = client.get(PREFIX + path, headers=AUTH, **kwargs)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return response


def bucket_of(ms: float) -> tuple[float, float]:
    """(lower, upper] in ms of the duration bucket holding ``ms``."""
    bounds = [0.0] + [b * 1000 for b in DURATION_BUCKETS]
    for lower, upper in pairwise(bounds):
        if ms <= upper:
            return lower, upper
    return bounds[-1], float("inf")


def test_performance_counts_error_rate_quantiles_and_apdex(mix):
    app, monitor, state, client = mix
    body = get(client, "/performance").get_json()
    assert body["apdex_t_ms"] == 100
    for name in ("1m", "5m", "15m", "all"):
        w = body["windows"][name]
        assert w["requests"] == 105, name
        assert w["errors"] == 10
        assert w["error_rate_pct"] == pytest.approx(100 * 10 / 105, abs=0.001)
        lat = w["latency"]
        # p50 and p95 fall among the fast requests (rank 52.5 and 99.75 of 105, 100 fast ones),
        # p99 (rank 103.95) inside the bucket of the 150 ms requests: (100, 250] ms.
        assert lat["p50_ms"] < 100
        assert lat["p95_ms"] < 100
        assert 100 < lat["p99_ms"] <= 250
        assert lat["p99_ms"] <= lat["max_ms"]
        assert SLOW_S * 1000 <= lat["max_ms"] < 250
        # Satisfied: the 100 requests under T = 100 ms; tolerating: the 5 slow ones (<= 4 T).
        assert w["apdex"] == pytest.approx((100 + 5 / 2) / 105, abs=1e-4)
    assert body["slowest_endpoints"][0]["route"] == "/slow"
    assert body["slowest_endpoints"][0]["count"] == 5
    assert 100 < body["slowest_endpoints"][0]["p95_ms"] <= 250
    assert body["most_failing_endpoints"] == [
        {"route": "/fail", "method": "GET", "errors": 10, "error_rate_pct": 100.0}
    ]


def test_endpoints_rows_sort_filter_and_status_codes(mix):
    app, monitor, state, client = mix
    client.get("/users/7")
    client.get("/no/such/page")
    client.get("/no/such/other")
    body = get(client, "/endpoints?window=5m&sort=count&order=desc").get_json()
    rows = {(r["route"], r["method"]): r for r in body["endpoints"]}
    assert body["total"] == 5
    assert [r["route"] for r in body["endpoints"]] == ["/", "/fail", "/slow", "(unmatched)", "/users/<int:user_id>"]
    assert rows[("/", "GET")]["count"] == 90 and rows[("/", "GET")]["errors"] == 0
    assert rows[("/", "GET")]["status_codes"] == {"200": 90}
    assert rows[("/fail", "GET")]["error_rate_pct"] == 100.0
    assert rows[("/fail", "GET")]["status_codes"] == {"500": 10}
    assert rows[("(unmatched)", "GET")]["count"] == 2
    assert rows[("(unmatched)", "GET")]["status_codes"] == {"404": 2}
    assert rows[("(unmatched)", "GET")]["errors"] == 0  # 4xx are the client's
    slow = rows[("/slow", "GET")]
    for field in ("p50_ms", "p95_ms", "p99_ms"):
        assert bucket_of(slow[field]) == (100.0, 250.0)
    assert slow["last_seen"] is not None
    # The analytics' own URLs are real traffic but not counted here.
    assert not any(r["route"].startswith(PREFIX) for r in body["endpoints"])

    by_p95 = get(client, "/endpoints?sort=p95_ms&order=desc&limit=1").get_json()
    assert by_p95["total"] == 5 and [r["route"] for r in by_p95["endpoints"]] == ["/slow"]
    filtered = get(client, "/endpoints?q=USERS&method=get").get_json()
    assert [r["route"] for r in filtered["endpoints"]] == ["/users/<int:user_id>"]
    assert get(client, "/endpoints?sort=nope").status_code == 400
    assert get(client, "/endpoints?window=2m").status_code == 400
    assert get(client, "/endpoints?limit=0").status_code == 400


def test_health_flips_to_unhealthy_when_a_threshold_is_crossed(monitors, request_clock):
    app, monitor, state = make_app(monitors, health_error_rate_pct=5, health_min_requests=20)
    request_clock.drive(app)  # 1 ms each: the latency checks pass on any machine
    client = closing_client(app)
    for _ in range(20):
        client.get("/")
    ok = client.get(PREFIX + "/health")
    assert ok.status_code == 200
    body = ok.get_json()
    assert body["status"] == "healthy"
    assert [c["name"] for c in body["checks"]] == [
        "latency_avg_ms",
        "latency_p95_ms",
        "error_rate_pct",
        "memory_pct",
        "cpu_pct",
        "disk_pct",
        "process_rss_bytes",
    ]
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["error_rate_pct"] == {
        "name": "error_rate_pct",
        "value": 0.0,
        "threshold": 5,
        "unit": "%",
        "status": "ok",
    }
    assert checks["memory_pct"]["value"] is None and checks["memory_pct"]["status"] == "ok"  # no system gauges
    assert "system" not in body  # the public form

    client.get("/fail")  # 1 of 21 = 4.76 %: still under 5 %
    state.sample()  # the figures are those of the newest sample: take the next one now
    assert client.get(PREFIX + "/health").get_json()["status"] == "healthy"
    client.get("/fail")  # 2 of 22 = 9.1 % > 1.5 x 5 %
    state.sample()
    bad = client.get(PREFIX + "/health")
    assert bad.status_code == 503
    assert bad.get_json()["status"] == "unhealthy"
    assert {c["name"]: c["status"] for c in bad.get_json()["checks"]}["error_rate_pct"] == "fail"

    # Injected system readings: over the threshold warns, far over fails.
    state.system_source = lambda: {"memory_pct": 85.0}
    state.sample()
    warn = client.get(PREFIX + "/health", headers=AUTH)
    assert {c["name"]: c["status"] for c in warn.get_json()["checks"]}["memory_pct"] == "warn"
    state.system_source = lambda: {"memory_pct": 95.0, "process_rss_max_bytes": 2 << 30}
    state.sample()
    body = client.get(PREFIX + "/health", headers=AUTH).get_json()
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["memory_pct"]["status"] == "fail"
    assert checks["process_rss_bytes"] == {
        "name": "process_rss_bytes",
        "value": 2 << 30,
        "threshold": 1 << 30,
        "unit": "bytes",
        "status": "fail",
    }
    assert body["system"]["memory"]["used_pct"] == 95.0  # authenticated: the details too


def test_health_reads_psutil_through_the_system_gauges(monkeypatch, monitors):
    import psutil

    total = 16 << 30
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(total=total, available=total // 20))
    app, monitor, state = make_app(monitors, system_metrics=True, analytics_public_health=False)
    client = closing_client(app)
    assert client.get(PREFIX + "/health").status_code == 401  # protected when not public
    response = client.get(PREFIX + "/health", headers=AUTH)
    assert response.status_code == 503
    body = response.get_json()
    memory = {c["name"]: c for c in body["checks"]}["memory_pct"]
    assert memory["value"] == pytest.approx(95.0)
    assert memory["status"] == "fail"
    assert body["system"]["memory"] == {
        "total_bytes": total,
        "used_bytes": total - total // 20,
        "available_bytes": total // 20,
        "used_pct": pytest.approx(95.0),
    }
    assert body["system"]["process"]["rss_bytes"] > 0
    assert body["system"]["process"]["workers"] == 1


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_windows_age_out_with_an_injected_clock(monitors):
    app, monitor, state = make_app(monitors)
    clock = FakeClock(1_800_000_000.0)
    state.use_clock(clock)
    client = closing_client(app)
    state.sample()
    for _ in range(10):
        client.get("/")

    def requests(window: str) -> tuple[int, bool]:
        w = get(client, "/performance").get_json()["windows"][window]
        return w["requests"], w["window_available"]

    def advance(seconds: float) -> None:
        for _ in range(int(seconds // 10)):
            clock.t += 10
            state.sample()

    advance(10)  # t = 10 s: the process is younger than a minute; everything since start, flagged
    assert requests("1m") == (10, False)
    advance(60)  # t = 70 s
    assert requests("1m") == (0, True)
    assert requests("5m") == (10, False)
    advance(230)  # t = 300 s: the 5-minute window starts at the first sample
    assert requests("5m") == (10, True)
    advance(10)
    assert requests("5m") == (0, True)
    assert requests("15m") == (10, False)
    advance(590)  # t = 900 s
    assert requests("15m") == (10, True)
    advance(10)
    assert requests("15m") == (0, True)
    assert requests("all") == (10, True)
    assert len(state.ring) == RING_SIZE == 91
    # Beyond the ring without history: what there is (here: all since start), flagged.
    body = get(client, "/endpoints?window=1h").get_json()
    assert (body["window_available"], body["covered_s"]) == (False, 910.0)
    assert [(r["route"], r["count"]) for r in body["endpoints"]] == [("/", 10)]


def test_timeseries_steps_and_route_sparklines(monitors):
    app, monitor, state = make_app(monitors)
    clock = FakeClock(1_800_000_000.0)
    state.use_clock(clock)
    client = closing_client(app)
    state.sample()
    for n in (3, 0, 5):
        for _ in range(n):
            client.get("/")
        client.get("/fail") if n == 5 else None
        clock.t += 10
        state.sample()
    body = get(client, "/timeseries?window=15m").get_json()
    assert body["step_s"] == 10 and body["source"] == "memory"
    # One point per 10 s step since the start (no partial step: the clock stands still).
    counts = [p["requests"] for p in body["points"]]
    assert counts == [3, 0, 6]
    assert body["points"][2]["rps"] == 0.6
    assert body["points"][2]["error_rate_pct"] == pytest.approx(100 / 6, abs=0.001)
    assert body["points"][0]["apdex"] == 1.0
    assert body["points"][1]["p95_ms"] is None
    assert body["routes"] == {"GET /": [3, 0, 5], "GET /fail": [0, 0, 1]}
    only = get(client, "/timeseries?window=15m&route=/fail&method=GET").get_json()
    assert [p["requests"] for p in only["points"]] == [0, 0, 1]
    for key in (
        "cpu_pct",
        "memory_pct",
        "disk_pct",
        "process_rss_bytes",
        "process_threads",
        "net_sent_bps",
        "net_recv_bps",
        "t",
        "avg_ms",
    ):
        assert key in body["points"][0]


def test_export_csv_and_json(mix):
    app, monitor, state, client = mix
    # CSV: one table per file, a header row first; both tables at once as a zip.
    response = get(client, "/export?format=csv&window=15m&table=endpoints")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="otel-monitor-15m-endpoints.csv"'
    endpoints_csv = response.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(endpoints_csv)))
    assert rows[0][:4] == ["route", "method", "count", "errors"]
    table = {r[0]: r for r in rows[1:]}
    assert (table["/"][2], table["/fail"][2], table["/fail"][3], table["/slow"][2]) == ("90", "10", "10", "5")
    assert len(rows) == 4
    response = get(client, "/export?format=csv&window=15m&table=timeseries")
    assert response.headers["Content-Disposition"] == 'attachment; filename="otel-monitor-15m-timeseries.csv"'
    timeseries_csv = response.get_data(as_text=True)
    points = list(csv.reader(io.StringIO(timeseries_csv)))
    assert points[0][:3] == ["t", "requests", "rps"]
    assert sum(int(r[1]) for r in points[1:]) == 105
    response = get(client, "/export?format=csv&window=15m")
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"] == 'attachment; filename="otel-monitor-15m-csv.zip"'
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        assert archive.namelist() == ["otel-monitor-15m-endpoints.csv", "otel-monitor-15m-timeseries.csv"]
        assert archive.read("otel-monitor-15m-endpoints.csv").decode()[:40] == endpoints_csv[:40]
        assert (
            archive.read("otel-monitor-15m-timeseries.csv").decode().splitlines()[0] == timeseries_csv.splitlines()[0]
        )
    assert get(client, "/export?format=csv&table=traces").status_code == 400

    body = get(client, "/export?format=json&window=15m").get_json()
    assert {r["route"]: r["count"] for r in body["endpoints"]} == {"/": 90, "/fail": 10, "/slow": 5}
    assert sum(p["requests"] for p in body["timeseries"]["points"]) == 105
    assert get(client, "/export?format=xml").status_code == 400


def test_csv_cells_cannot_become_spreadsheet_formulas():
    from otel_monitor.analytics.blueprint import _cell

    assert _cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert _cell("/api/users") == "/api/users"


def test_traces_lists_slow_and_failed_with_links_from_the_template(monitors):
    app, monitor, state = make_app(
        monitors, analytics_slow_ms=100, trace_link_template="http://127.0.0.1:16686/trace/{trace_id}?span={span_id}"
    )
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    client.get("/")
    client.get("/slow")
    client.get("/fail")
    spans = {s.name: s for s in telemetry.spans()}
    body = get(client, "/traces").get_json()
    assert body["link_template"] == "http://127.0.0.1:16686/trace/{trace_id}?span={span_id}"
    # newest first; "/" is listed only if it really took over 100 ms (a busy machine), by its own span
    fast_was_slow = spans["GET /"].end_time - spans["GET /"].start_time > 100e6
    expected = [("failed", "GET /fail"), ("slow", "GET /slow")] + [("slow", "GET /")] * fast_was_slow
    assert [(t["kind"], t["name"]) for t in body["traces"]] == expected
    failed, slow = body["traces"][:2]
    trace_id = format(spans["GET /slow"].context.trace_id, "032x")
    span_id = format(spans["GET /slow"].context.span_id, "016x")
    assert slow == {
        "trace_id": trace_id,
        "span_id": span_id,
        "name": "GET /slow",
        "route": "/slow",
        "method": "GET",
        "status_code": 200,
        "duration_ms": slow["duration_ms"],
        "time": slow["time"],
        "error": None,
        "kind": "slow",
        "detail": True,
        "link": f"http://127.0.0.1:16686/trace/{trace_id}?span={span_id}",
    }
    assert slow["duration_ms"] >= SLOW_S * 1000  # in ms: at least the sleep
    assert failed["status_code"] == 500 and failed["route"] == "/fail"
    assert failed["error"] == "ValueError: boom"
    assert [t["kind"] for t in get(client, "/traces?kind=slow").get_json()["traces"]] == ["slow"]
    assert len(get(client, "/traces?kind=all&limit=1").get_json()["traces"]) == 1
    assert get(client, "/traces?kind=nope").status_code == 400


def test_traces_without_a_template_have_no_link_and_the_deques_are_bounded(monitors):
    # slow only past a minute: however busy the machine, these failures are failed, never slow
    app, monitor, state = make_app(monitors, analytics_traces_kept=5, analytics_slow_ms=60_000)
    client = closing_client(app)
    for _ in range(20):
        client.get("/fail")
    assert len(state.recent.failed) == 5
    assert len(state.recent.slow) == 0
    body = get(client, "/traces?kind=failed").get_json()
    assert body["link_template"] is None
    assert len(body["traces"]) == 5 and all(t["link"] is None for t in body["traces"])


def test_metrics_json_and_dashboards(mix):
    app, monitor, state, client = mix
    monitor.counter("shop.orders.created", "Orders", unit="{order}").add(3)
    body = get(client, "/metrics").get_json()
    metrics = {m["name"]: m for m in body["metrics"]}
    duration = metrics["http.server.request.duration"]
    assert duration["type"] == "histogram" and duration["unit"] == "s"
    assert sum(p["count"] for p in duration["points"]) >= 105
    assert duration["points"][0]["bounds"] == list(DURATION_BUCKETS)
    assert metrics["shop.orders.created"] == {
        "name": "shop.orders.created",
        "description": "Orders",
        "unit": "{order}",
        "type": "counter",
        "points": [{"attributes": {}, "value": 3}],
    }
    assert metrics["http.server.active_requests"]["type"] == "updowncounter"

    links = get(client, "/dashboard").get_json()["dashboards"]
    assert {"name": "Prometheus metrics", "url": "/metrics"} in links
    assert not any(link["name"] in ("Grafana", "Prometheus", "Jaeger") for link in links)


def test_dashboard_links_to_configured_tools(monitors):
    app, monitor, state = make_app(
        monitors, grafana_url="http://127.0.0.1:3000/d/otel-monitor", jaeger_url="http://127.0.0.1:16686"
    )
    links = get(closing_client(app), "/dashboard").get_json()["dashboards"]
    assert {"name": "Grafana", "url": "http://127.0.0.1:3000/d/otel-monitor"} in links
    assert {"name": "Jaeger", "url": "http://127.0.0.1:16686"} in links
    assert not any(link["name"] == "Prometheus" for link in links)


DISTINCT_URLS = 1_000


def test_memory_stays_bounded_with_a_thousand_distinct_urls_and_sixty_routes(monitors):
    app, monitor, state = make_app(monitors, analytics_max_routes=20, analytics_traces_kept=50)
    for i in range(60):
        app.add_url_rule(f"/r{i}", f"r{i}", lambda: "ok")
    client = closing_client(app)
    for i in range(60):
        client.get(f"/r{i}")
    for i in range(DISTINCT_URLS):  # each kept apart would outgrow every bound below 50-fold
        client.get(f"/missing/{i}?x={i}")
    for _ in range(RING_SIZE + 10):
        state.sample()
    body = get(client, "/endpoints?window=all&limit=1000").get_json()
    routes = {r["route"]: r["count"] for r in body["endpoints"]}
    assert routes["(unmatched)"] == DISTINCT_URLS
    assert routes["(other)"] == 40  # the first 20 routes are tracked, the other 40 summed
    assert body["total"] == 22  # 20 routes + (unmatched) + (other)
    assert sum(routes.values()) == DISTINCT_URLS + 60
    assert len(state.cap.tracked) == 21  # (unmatched) is not one of the 20
    assert len(state.last_seen) <= 22
    assert len(state.ring) == RING_SIZE
    assert all(len(s.requests) <= 22 for s in state.ring.samples)
    assert len(state.recent.failed) + len(state.recent.slow) <= 100


def test_analytics_can_be_turned_off_and_the_prefix_moved(monitors):
    app, monitor = monitors.app(analytics=False)
    assert closing_client(app).get(PREFIX + "/health").status_code == 404
    assert analytics_of(monitor) is None
    app, monitor = monitors.app(analytics_prefix="/professional-analytics", analytics_auth=False)
    client = closing_client(app)
    assert client.get("/professional-analytics/performance").status_code == 200
    assert client.get(PREFIX + "/performance").status_code == 404
    lines = monitor.describe_urls("http://127.0.0.1:8000")
    assert "analytics:  http://127.0.0.1:8000/professional-analytics/performance" in lines


def test_a_monitor_lists_the_urls_it_serves_through_its_own_method(monitors):
    app, monitor = monitors.app(analytics=False)
    assert monitor.describe_urls("http://h") == []  # nothing mounted, nothing listed
    app, monitor = monitors.app(analytics_auth=False)
    assert "describe_urls" not in vars(monitor)  # a method of Monitor, not an attribute set later
    assert monitor.describe_urls("http://h") == [
        f"analytics:  http://h{PREFIX}/performance",
        f"health:     http://h{PREFIX}/health",
        f"dashboard:  http://h{PREFIX}/",
    ]


def test_the_background_job_is_registered_on_the_pipeline_scheduler(monitors):
    app, monitor = monitors.app(analytics_token=TOKEN)
    jobs = [job[3] for job in monitor.pipeline.scheduler._jobs]
    assert "analytics sample" in jobs
    assert "analytics history write" not in jobs  # no MONITORING_DB
    processors = monitor.pipeline.tracer_provider._active_span_processor._span_processors
    assert analytics_of(monitor).request_spans in processors and analytics_of(monitor).recent not in processors


def test_window_and_limit_are_refused_with_the_same_400_by_every_view_that_takes_them(monitors):
    app, _, _ = make_app(monitors, analytics_db=None)
    client = closing_client(app)
    windows = "window must be one of 1m, 5m, 15m, 1h, 6h, 24h, 7d, all"
    for path in ("/endpoints", "/timeseries", "/export", "/users", "/versions"):
        response = client.get(f"{PREFIX}{path}?window=2m", headers=AUTH)
        assert (response.status_code, response.get_json()) == (400, {"error": windows}), path
    heatmap = client.get(f"{PREFIX}/heatmap?window=5m", headers=AUTH)
    assert heatmap.get_json() == {"error": "window must be one of 1h, 6h, 24h, 7d"}
    for path in ("/endpoints", "/traces", "/errors", "/users"):
        for bad in ("0", "1001", "ten"):
            response = client.get(f"{PREFIX}{path}?limit={bad}", headers=AUTH)
            assert response.status_code == 400, (path, bad)
            assert response.get_json() == {"error": "limit must be a number from 1 to 1000"}, (path, bad)
