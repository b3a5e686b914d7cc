"""Health for operators: liveness/readiness for balancers, threshold status for people and alerts."""

from __future__ import annotations

import pytest

from otel_monitor.analytics import analytics_of
from otel_monitor.testing import closing_client

from .conftest import build_app

PREFIX = "/otel-monitor"
TOKEN = "health-token-0123456789"


@pytest.fixture
def make(request):
    monitors = []

    def make(**settings):
        settings.setdefault("analytics_token", TOKEN)
        # latency is not judged here, and on a busy machine a plain request can take the default 100 ms
        settings.setdefault("health_latency_avg_ms", 3_600_000)
        settings.setdefault("health_latency_p95_ms", 3_600_000)
        app, monitor = build_app(**settings)
        monitor.pipeline.scheduler.stop()
        monitors.append(monitor)
        return closing_client(app), analytics_of(monitor)

    yield make
    for monitor in monitors:
        monitor.shutdown(timeout=2)


def _checks(body):
    return {c["name"]: c for c in body["checks"]}


def test_one_error_in_32_requests_at_start_up_does_not_flip_health(make):
    client, _ = make()
    client.get("/fail")
    for _ in range(31):
        client.get("/")
    response = client.get(PREFIX + "/health")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "healthy"
    assert body["requests"] == 32
    error_rate = _checks(body)["error_rate_pct"]
    assert error_rate["value"] == pytest.approx(3.125) and error_rate["status"] == "ok"
    assert error_rate["note"] == "fewer than 50 requests in the window"


def test_once_the_window_has_enough_requests_the_error_rate_fails(make):
    client, _ = make(health_min_requests=40)
    for _ in range(38):
        client.get("/")
    client.get("/fail")
    client.get("/fail")  # 2 of 40 = 5 %
    response = client.get(PREFIX + "/health")
    assert response.status_code == 503
    assert _checks(response.get_json())["error_rate_pct"]["status"] == "fail"
    assert "note" not in _checks(response.get_json())["error_rate_pct"]


def test_high_cpu_alone_degrades_the_status_but_never_makes_it_unhealthy(make):
    client, state = make()
    state.system_source = lambda: {"cpu_pct": 98.0}
    response = client.get(PREFIX + "/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert _checks(response.get_json())["cpu_pct"]["status"] == "warn"
    assert client.get(PREFIX + "/health/ready").status_code == 200


def test_liveness_and_readiness_are_public_and_ready_while_errors_flood(make):
    client, _ = make(health_min_requests=1)
    for _ in range(10):
        client.get("/fail")
    assert client.get(PREFIX + "/health").status_code == 503  # the status people read
    live = client.get(PREFIX + "/health/live")
    ready = client.get(PREFIX + "/health/ready")
    assert (live.status_code, live.get_json()) == (200, {"status": "live"})
    assert (ready.status_code, ready.get_json()) == (200, {"status": "ready"})


def test_readiness_follows_the_public_health_setting(make):
    client, _ = make(analytics_public_health=False)
    assert client.get(PREFIX + "/health/ready").status_code == 401
    assert client.get(PREFIX + "/health/live", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_opt_in_threshold_readiness_fails_on_the_instances_own_errors(make):
    client, state = make(health_ready_thresholds=True, health_min_requests=10)
    state.system_source = lambda: {"cpu_pct": 99.0, "memory_pct": 99.0, "disk_pct": 99.0}
    for _ in range(10):
        client.get("/")
    ready = client.get(PREFIX + "/health/ready")
    assert (ready.status_code, ready.get_json()) == (200, {"status": "ready", "thresholds": True})  # host-wide only
    for _ in range(5):
        client.get("/fail")
    state.sample()  # the next tick (the figures are the newest sample's)
    ready = client.get(PREFIX + "/health/ready")
    assert ready.status_code == 503
    assert ready.get_json() == {"status": "not ready", "failing": ["error_rate_pct"]}
