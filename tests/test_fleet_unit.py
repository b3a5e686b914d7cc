"""The fleet source's own logic: settings, bounded waits, credentials, the local /health.

A real HTTP server on 127.0.0.1 stands in for Prometheus where only its failure modes matter
(tests/test_fleet_live.py runs the real Prometheus).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from otel_monitor.settings import SettingsError

from .conftest import build_app, free_port

EMPTY = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()


class FakePrometheus:
    """Answers every query with an empty vector after ``delay`` seconds; records the requests."""

    def __init__(self, delay: float = 0.0, status: int = 200):
        self.delay = delay
        self.status = status
        self.requests: list[dict] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
                )
                if outer.delay:
                    outer.release.wait(outer.delay)
                body = EMPTY if outer.status == 200 else b'{"status":"error","error":"nope"}'
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_prometheus():
    servers = []

    def make(**kwargs) -> FakePrometheus:
        server = FakePrometheus(**kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def fleet_app(url: str, **settings):
    app, monitor = build_app(
        analytics_source="prometheus",
        analytics_prometheus_url=url,
        analytics_auth=False,
        service_name="shop",
        **settings,
    )
    return app, monitor


def test_prometheus_source_without_a_url_fails_at_start_naming_the_setting():
    with pytest.raises(SettingsError, match="analytics_prometheus_url"):
        build_app(analytics_source="prometheus", analytics_auth=False)


def test_a_selector_that_is_not_label_matchers_fails_at_start():
    with pytest.raises(SettingsError, match="analytics_prometheus_selector"):
        build_app(analytics_prometheus_selector='job="a"} or vector(1) or {x="', analytics_auth=False)


def test_basic_auth_needs_both_halves():
    with pytest.raises(SettingsError, match="analytics_prometheus_password"):
        fleet_app("http://127.0.0.1:9", analytics_prometheus_username="reader")


def test_prometheus_url_is_reused_when_the_query_url_is_not_set(fake_prometheus):
    prom = fake_prometheus()
    app, monitor = build_app(analytics_source="prometheus", prometheus_url=prom.url, analytics_auth=False)
    try:
        assert app.test_client().get("/otel-monitor/performance").status_code == 200
        assert prom.requests
    finally:
        monitor.shutdown(timeout=2)


def test_unreachable_prometheus_is_a_503_naming_it_and_health_stays_local():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app, monitor = fleet_app(url)
    try:
        client = app.test_client()
        response = client.get("/otel-monitor/performance")
        assert response.status_code == 503
        assert response.json["source"] == "prometheus"
        assert f"Prometheus at {url} is unreachable" in response.json["error"]
        assert client.get("/otel-monitor/health").status_code == 200  # load balancers ask this instance
        assert client.get("/otel-monitor/health?scope=fleet").status_code == 503
    finally:
        monitor.shutdown(timeout=2)


def test_a_slow_prometheus_is_cut_off_and_then_skipped_for_a_cool_down(fake_prometheus):
    prom = fake_prometheus(delay=30)
    app, monitor = fleet_app(prom.url, analytics_prometheus_timeout_s=0.3)
    try:
        client = app.test_client()
        first = client.get("/otel-monitor/endpoints")
        assert first.status_code == 503
        assert "did not answer within" in first.json["error"]
        asked = len(prom.requests)
        assert asked == 1
        # The next requests do not wait again: Prometheus is not asked during the cool-down.
        for path in ("/otel-monitor/performance", "/otel-monitor/timeseries", "/otel-monitor/export"):
            response = client.get(path)
            assert response.status_code == 503
            assert response.json["error"] == first.json["error"]
        assert len(prom.requests) == asked
    finally:
        monitor.shutdown(timeout=2)


def test_the_bearer_token_is_sent_and_never_shown(fake_prometheus):
    prom = fake_prometheus(status=500)
    app, monitor = fleet_app(prom.url, analytics_prometheus_token="s3cret-token")
    try:
        response = app.test_client().get("/otel-monitor/performance")
        assert prom.requests[0]["headers"]["Authorization"] == "Bearer s3cret-token"
        assert response.status_code == 503
        assert "s3cret" not in response.get_data(as_text=True)
        assert monitor.settings.masked()["analytics_prometheus_token"] == "***"
    finally:
        monitor.shutdown(timeout=2)


def test_basic_credentials_are_sent_and_the_url_in_errors_has_no_userinfo(fake_prometheus):
    prom = fake_prometheus(status=401)
    url = prom.url.replace("http://", "http://user:pw-in-url@")
    app, monitor = fleet_app(url, analytics_prometheus_username="reader", analytics_prometheus_password="p4ss")
    try:
        response = app.test_client().get("/otel-monitor/endpoints")
        assert prom.requests[0]["headers"]["Authorization"] == "Basic cmVhZGVyOnA0c3M="  # reader:p4ss
        assert "refused the credentials (HTTP 401)" in response.json["error"]
        assert "pw-in-url" not in response.get_data(as_text=True)
    finally:
        monitor.shutdown(timeout=2)


def test_queries_select_the_service_and_leave_out_the_analytics_own_routes(fake_prometheus):
    prom = fake_prometheus()
    app, monitor = fleet_app(prom.url)
    try:
        assert app.test_client().get("/otel-monitor/endpoints?window=5m").status_code == 200
        from urllib.parse import parse_qs

        queries = [parse_qs(r["body"].decode())["query"][0] for r in prom.requests]
        histogram = next(q for q in queries if "_bucket" in q)
        assert 'job="shop",http_route!~"/otel\\\\-monitor(/.*)?"' in histogram
        assert "offset 300s" in histogram and "increase(" not in histogram
    finally:
        monitor.shutdown(timeout=2)


def test_the_dashboard_loads_the_fleet_view_only_for_the_prometheus_source(fake_prometheus):
    prom = fake_prometheus()
    app, monitor = fleet_app(prom.url)
    local_app, local_monitor = build_app(analytics_auth=False)
    try:
        assert "fleet.js" in app.test_client().get("/otel-monitor/").get_data(as_text=True)
        assert "fleet.js" not in local_app.test_client().get("/otel-monitor/").get_data(as_text=True)
        assert app.test_client().get("/otel-monitor/static/fleet.js").status_code == 200
    finally:
        monitor.shutdown(timeout=2)
        local_monitor.shutdown(timeout=2)


def _sample(value: float, **labels: str) -> dict:
    return {"metric": labels, "value": [1.0, str(value)]}


def test_prometheus_buckets_become_the_same_series_as_in_memory():
    from otel_monitor.analytics.prometheus_source import fleet_total, histograms
    from otel_monitor.analytics.summary import UNMATCHED, RouteCap

    a = {"instance": "a:1", "http_route": "/x", "http_request_method": "GET", "http_response_status_code": "200"}
    b = {**a, "instance": "b:1"}
    lost = {"instance": "b:1", "http_request_method": "GET", "http_response_status_code": "404"}
    items = [
        _sample(2, **a, le="0.1"),
        _sample(3, **a, le="1"),
        _sample(3, **a, le="+Inf"),
        _sample(0.6, **a, le="sum"),
        _sample(0, **b, le="0.1"),
        _sample(1, **b, le="1"),
        _sample(4, **b, le="+Inf"),  # three above the last bound
        _sample(9.0, **b, le="sum"),
        _sample(1, **lost, le="0.1"),
        _sample(1, **lost, le="1"),
        _sample(1, **lost, le="+Inf"),
    ]
    per_instance, bounds = histograms(items, RouteCap(10))
    assert bounds == (0.1, 1.0)
    key = ("/x", "GET", 200, "")
    assert per_instance["a:1"][key] == (3, 0.6, 1.0, (2, 1, 0))
    assert per_instance["b:1"][key] == (4, 9.0, None, (0, 1, 3))  # max unknown: requests in +Inf
    assert per_instance["b:1"][(UNMATCHED, "GET", 404, "")].count == 1
    total = fleet_total(per_instance)
    assert total[key] == (7, 9.6, None, (2, 2, 3))
