"""The dashboard's health card says how many spans and log records never reached the collector, by
reason, and which degraded modes the instance is in -- as text."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from .test_dashboard_browser import _empty, browser, wait_loaded  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.integration
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def lost_server():
    from flask import Blueprint, Flask, jsonify
    from werkzeug.serving import make_server

    from otel_monitor.analytics.dashboard import register_dashboard

    data = _empty()
    data["health"]["telemetry"] = {
        "spans_lost": {"503": 1024, "queue_full": 2000, HOSTILE: 1},
        "logs_lost": {"ConnectionError": 1},
    }
    data["health"]["status"] = "degraded"
    data["health"]["degraded"] = [
        {"mode": "history_not_written", "detail": "history not written: " + HOSTILE, "reason": "OperationalError"},
        {"mode": "exports_failing", "detail": "exports failing: the last export of logs failed", "signals": {}},
    ]
    app = Flask("lost_spans")
    bp = Blueprint("lost", __name__, url_prefix="/otel-monitor")

    def canned(body: dict):
        return lambda: jsonify(body)

    for route, body in data.items():
        bp.add_url_rule(f"/{route}", route, canned(body))
    bp.add_url_rule("/dashboard", "dashboards", lambda: jsonify(dashboards=[]))
    settings = SimpleNamespace(
        analytics_db=None, service_name="lost", analytics_slow_ms=500, analytics_username=None, dashboard_refresh_s=30
    )
    register_dashboard(bp, SimpleNamespace(enabled=False, token=None), settings, None)
    app.register_blueprint(bp)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_health_card_shows_lost_spans_and_logs_and_degraded_modes_as_text(browser, lost_server):  # noqa: F811
    page = browser.context.new_page()
    browser.watch(page)
    try:
        page.goto(lost_server + "/otel-monitor/")
        wait_loaded(page, "overview", 0)
        lines = page.locator("#overview-health .telemetry-lost")
        assert lines.all_inner_texts() == [
            f"3,025 spans not exported (503: 1,024, {HOSTILE}: 1, queue_full: 2,000)",
            "1 log record not exported (ConnectionError: 1)",
        ]
        modes = page.locator("#overview-health .degraded-mode")
        assert modes.all_inner_texts() == [
            "history not written: " + HOSTILE,
            "exports failing: the last export of logs failed",
        ]
        assert page.locator("#overview-health img").count() == 0
    finally:
        page.close()
    browser.assert_clean()
