"""The pure functions behind the analytics: merging points, windows, quantiles, Apdex, health."""

from __future__ import annotations

import random
import types

import pytest

from otel_monitor.analytics.summary import (
    OTHER,
    UNMATCHED,
    Extractor,
    Ring,
    RouteCap,
    Series,
    apdex,
    count_le,
    diff,
    extract,
    fail_level,
    health_checks,
    overall_status,
    quantile,
    series_quantile,
    system_values,
)
from otel_monitor.settings import resolve_settings
from otel_monitor.telemetry.pipeline import DURATION_BUCKETS

BOUNDS = (0.1, 0.2, 0.5)


def point(attributes, count, total, maximum, buckets, bounds=DURATION_BUCKETS):
    return types.SimpleNamespace(
        attributes=attributes,
        count=count,
        sum=total,
        max=maximum,
        min=0.0,
        bucket_counts=list(buckets),
        explicit_bounds=list(bounds),
    )


def metrics_data(*metrics):
    """MetricsData-shaped: one resource per worker, each a list of (name, points)."""
    resources = []
    for worker in metrics:
        ms = [
            types.SimpleNamespace(name=name, data=types.SimpleNamespace(data_points=points)) for name, points in worker
        ]
        resources.append(types.SimpleNamespace(scope_metrics=[types.SimpleNamespace(metrics=ms)]))
    return types.SimpleNamespace(resource_metrics=resources)


def buckets_with(**at):
    counts = [0] * (len(DURATION_BUCKETS) + 1)
    for index, n in at.items():
        counts[int(index[1:])] = n
    return counts


def test_quantile_matches_prometheus_histogram_quantile():
    # 10 requests in (0, 0.1], 10 in (0.1, 0.2], 0 in (0.2, 0.5], 0 above.
    buckets = (10, 10, 0, 0)
    assert quantile(0.5, buckets, BOUNDS) == pytest.approx(0.1)  # rank 10: top of the first bucket
    assert quantile(0.25, buckets, BOUNDS) == pytest.approx(0.05)  # rank 5 of 10 in [0, 0.1]
    assert quantile(0.75, buckets, BOUNDS) == pytest.approx(0.15)  # rank 15: half of (0.1, 0.2]
    assert quantile(0.99, (0, 0, 0, 4), BOUNDS) == pytest.approx(0.5)  # +Inf bucket: the highest finite bound
    assert quantile(0.5, (0, 0, 0, 0), BOUNDS) is None


def test_series_quantile_never_exceeds_the_maximum():
    s = Series(10, 0.01, 0.0012, (10, 0, 0, 0))
    assert quantile(0.99, s.buckets, BOUNDS) == pytest.approx(0.099)
    assert series_quantile(0.99, s, BOUNDS) == pytest.approx(0.0012)


def test_apdex_from_buckets():
    t = 0.1
    assert apdex((10, 0, 0, 0), BOUNDS, t) == 1.0  # all <= T
    assert apdex((0, 10, 0, 0), BOUNDS, t) == 0.5  # all in (T, 2T]: tolerating
    assert apdex((0, 0, 0, 10), BOUNDS, t) == 0.0  # all above 4 T (0.4 < 0.5 ... +Inf)
    # (0.2, 0.5] straddles 4 T = 0.4: two thirds of it count as tolerating.
    assert apdex((0, 0, 3, 0), BOUNDS, t) == pytest.approx((0 + 2 / 2) / 3)
    assert count_le(0.4, (0, 0, 3, 0), BOUNDS) == pytest.approx(2.0)
    assert apdex((0, 0, 0, 0), BOUNDS, t) is None


def test_extract_merges_workers_and_schemes_and_leaves_out_the_analytics_routes():
    base = {"http.request.method": "GET", "http.response.status_code": 200}
    data = metrics_data(
        [
            (
                "http.server.request.duration",
                [
                    point(
                        {**base, "url.scheme": "http", "http.route": "/a"}, 3, 0.003, 0.0015, buckets_with(b0=2, b1=1)
                    ),
                    point(
                        {**base, "url.scheme": "https", "http.route": "/a"}, 2, 0.002, 0.0011, buckets_with(b0=1, b1=1)
                    ),
                    point(
                        {**base, "url.scheme": "http", "http.route": "/otel-monitor/performance"},
                        9,
                        0.1,
                        0.02,
                        buckets_with(b4=9),
                    ),
                    point(
                        {"http.request.method": "GET", "http.response.status_code": 404, "url.scheme": "http"},
                        4,
                        0.004,
                        0.001,
                        buckets_with(b0=4),
                    ),
                ],
            ),
            ("system.cpu.utilization", []),
        ],
        [
            (
                "http.server.request.duration",
                [
                    point({**base, "url.scheme": "http", "http.route": "/a"}, 5, 0.05, 0.03, buckets_with(b5=5)),
                    point(
                        {
                            "http.request.method": "GET",
                            "http.route": "/a",
                            "http.response.status_code": 500,
                            "error.type": "ValueError",
                            "url.scheme": "http",
                        },
                        1,
                        0.001,
                        0.001,
                        buckets_with(b0=1),
                    ),
                ],
            )
        ],
    )
    requests, bounds = extract(data, RouteCap(100), "/otel-monitor")
    assert bounds == DURATION_BUCKETS
    assert set(requests) == {("/a", "GET", 200, ""), (UNMATCHED, "GET", 404, ""), ("/a", "GET", 500, "ValueError")}
    a = requests[("/a", "GET", 200, "")]
    assert (a.count, round(a.sum, 6), a.max) == (10, 0.055, 0.03)
    assert a.buckets == tuple(buckets_with(b0=3, b1=2, b5=5))


def test_route_cap_folds_tens_of_thousands_of_routes_into_other():
    cap = RouteCap(50)
    points = [
        point(
            {"http.request.method": "GET", "http.route": f"/r/{i}", "http.response.status_code": 200},
            1,
            0.001,
            0.001,
            buckets_with(b0=1),
        )
        for i in range(50_000)
    ]
    points.append(
        point({"http.request.method": "GET", "http.response.status_code": 404}, 7, 0.007, 0.001, buckets_with(b0=7))
    )
    data = metrics_data([("http.server.request.duration", points)])
    requests, _ = extract(data, cap)
    assert len(requests) == 52  # 50 routes, (other), (unmatched)
    assert requests[(OTHER, "GET", 200, "")].count == 49_950
    assert requests[(UNMATCHED, "GET", 404, "")].count == 7
    assert len(cap.tracked) == 51
    # The same routes are folded the same way the next time: windows stay exact.
    again, _ = extract(data, cap)
    assert diff(again, requests, DURATION_BUCKETS) == {}


def _series_point(route, count, scheme="http", status=200):
    attributes = {"http.request.method": "GET", "url.scheme": scheme, "http.response.status_code": status}
    if route is not None:
        attributes["http.route"] = route
    return point(attributes, count, 0.001 * count, 0.001 * count, buckets_with(b0=count))


def test_a_sample_after_one_request_reads_only_that_series_and_keeps_every_other_series_object():
    points = [_series_point(f"/r{i}", 1) for i in range(1000)]
    extractor = Extractor(RouteCap(2000), "/otel-monitor")
    first, _ = extractor(metrics_data([("http.server.request.duration", points)]))
    assert extractor.points_read == 1000

    points[7] = _series_point("/r7", 2)  # what the merge does: a new object for the changed series only
    second, bounds = extractor(metrics_data([("http.server.request.duration", list(points))]))

    assert extractor.points_read == 1001
    assert bounds == DURATION_BUCKETS
    assert second[("/r7", "GET", 200, "")].count == 2
    assert [k for k in second if second[k] is not first[k]] == [("/r7", "GET", 200, "")]
    window = diff(second, first, DURATION_BUCKETS)
    assert window == {("/r7", "GET", 200, ""): Series(1, 0.001, 0.002, tuple(buckets_with(b0=1)))}


def test_an_extractor_through_random_changes_equals_a_fresh_extract_every_time():
    rng = random.Random(26)
    cap, fresh_cap = RouteCap(40), RouteCap(40)
    extractor = Extractor(cap, "/otel-monitor")
    workers: list[list] = [[], []]
    for _ in range(300):
        worker = workers[rng.randrange(2)]
        action = rng.random()
        if action < 0.5 or not worker:
            route = rng.choice([None, "/otel-monitor/x", *[f"/r{i}" for i in range(60)]])
            worker.append(_series_point(route, rng.randint(1, 5), rng.choice(["http", "https"])))
        elif action < 0.85:
            i = rng.randrange(len(worker))
            old = worker[i]
            worker[i] = point(old.attributes, old.count + 1, old.sum + 0.5, old.max + 0.5, old.bucket_counts)
        else:
            del worker[rng.randrange(len(worker))]
        data = metrics_data(*[[("http.server.request.duration", list(points))] for points in workers])
        assert extractor(data) == extract(data, fresh_cap, "/otel-monitor")
    assert cap.tracked == fresh_cap.tracked


def test_error_types_are_capped():
    cap = RouteCap(10)
    points = [
        point(
            {
                "http.request.method": "GET",
                "http.route": "/",
                "http.response.status_code": 500,
                "error.type": f"Error{i}",
            },
            1,
            0.001,
            0.001,
            buckets_with(b0=1),
        )
        for i in range(500)
    ]
    requests, _ = extract(metrics_data([("http.server.request.duration", points)]), cap)
    assert len(requests) == 65 and requests[("/", "GET", 500, OTHER)].count == 436


def test_diff_is_a_window_and_handles_resets_and_max():
    k = ("/", "GET", 200, "")
    then = {k: Series(10, 1.0, 0.3, (5, 5, 0, 0))}
    now = {k: Series(14, 1.5, 0.3, (7, 6, 1, 0))}
    window = diff(now, then, BOUNDS)
    assert window[k].count == 4 and window[k].buckets == (2, 1, 1, 0)
    assert window[k].sum == pytest.approx(0.5)
    # The cumulative max did not grow: the window's is bounded by its highest bucket (0.5), capped at 0.3.
    assert window[k].max == 0.3
    grown = diff({k: Series(11, 1.9, 0.9, (5, 5, 0, 1))}, then, BOUNDS)
    assert grown[k].max == 0.9  # exact: the largest request happened in the window
    low = diff({k: Series(12, 1.1, 0.3, (7, 5, 0, 0))}, then, BOUNDS)
    assert low[k].max == 0.1  # only the first bucket moved: at most 0.1
    # A restart (count went down): the new cumulative counts as is.
    assert diff({k: Series(3, 0.1, 0.05, (3, 0, 0, 0))}, then, BOUNDS)[k].count == 3
    assert diff(then, then, BOUNDS) == {}


def test_ring_keeps_15_minutes_and_shares_unchanged_series():
    ring = Ring(91)
    k = ("/", "GET", 200, "")
    s = Series(1, 0.1, 0.1, (1, 0, 0, 0))
    for i in range(200):
        ring.add(float(i * 10), {k: Series(1, 0.1, 0.1, (1, 0, 0, 0))}, {})
    assert len(ring) == 91
    assert ring.oldest().t == 1090.0
    assert ring.at(1500.0).t == 1500.0 and ring.at(1505.0).t == 1500.0 and ring.at(100.0) is None
    assert ring.samples[-1].requests[k] is ring.samples[0].requests[k]
    assert ring.samples[-1].requests[k] == s


def test_health_levels():
    settings = resolve_settings(environ={})
    assert fail_level(80, "%") == 90 and fail_level(1, "%") == 1.5 and fail_level(100, "ms") == 150
    readings = {
        "latency_avg_ms": 120.0,
        "latency_p95_ms": 160.0,
        "error_rate_pct": None,
        "memory_pct": 50.0,
        "cpu_pct": None,
        "disk_pct": 91.0,
        "process_rss_max_bytes": 10,
    }
    checks = {c["name"]: c["status"] for c in health_checks(readings, settings)}
    assert checks == {
        "latency_avg_ms": "warn",
        "latency_p95_ms": "fail",
        "error_rate_pct": "ok",
        "memory_pct": "ok",
        "cpu_pct": "ok",
        "disk_pct": "warn",
        "process_rss_bytes": "ok",
    }
    # Over the threshold in more than half of the window: fail.
    sustained = {c["name"]: c["status"] for c in health_checks(readings, settings, {"latency_avg_ms": 0.6})}
    assert sustained["latency_avg_ms"] == "fail"
    assert overall_status([{"status": "ok"}, {"status": "warn"}]) == "degraded"
    assert overall_status([{"status": "warn"}, {"status": "fail"}]) == "unhealthy"
    assert overall_status([{"status": "ok"}]) == "healthy"


def test_system_values_from_the_gauges():
    def gauge(value, **attrs):
        return types.SimpleNamespace(value=value, attributes={k.replace("_", "."): v for k, v in attrs.items()})

    data = metrics_data(
        [
            (
                "system.memory.utilization",
                [gauge(0.5, system_memory_state="used"), gauge(0.5, system_memory_state="free")],
            ),
            ("system.cpu.utilization", [gauge(0.25)]),
            ("process.memory.usage", [gauge(100, process_pid=1), gauge(300, process_pid=2)]),
            ("process.thread.count", [gauge(4, process_pid=1), gauge(6, process_pid=2)]),
        ]
    )
    values = system_values(data)
    assert values["memory_pct"] == 50.0 and values["cpu_pct"] == 25.0
    assert (values["process_rss_bytes"], values["process_rss_max_bytes"], values["workers"]) == (400, 300, 2)
    assert values["process_threads"] == 10
    assert "disk_pct" not in values
