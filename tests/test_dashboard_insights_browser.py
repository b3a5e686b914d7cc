"""The Versions, Users and Week views in a real headless Chromium, with the existing fixtures of
tests/test_dashboard_browser.py: the real example app (its running version, its week), and canned
answers with a regression and hostile versions and user ids (which must stay text), at 1366 px
and 390 px."""

from __future__ import annotations

import functools
import threading
import time
from types import SimpleNamespace

import pytest

from .test_dashboard_browser import (  # noqa: F401 - fixtures shared with the other browser tests
    app_server,
    browser,
    dashboard,
    loaded,
    open_view,
    shot,
    wait_loaded,
)

pytestmark = pytest.mark.integration

HOSTILE_VERSION = '<img src=x onerror=alert("v")>'
HOSTILE_USER = "<script>alert('u')</script>"


def _versions() -> dict:
    now = time.time()

    def endpoint(route: str, p95: float, requests: int = 400) -> dict:
        return {
            "route": route,
            "method": "GET",
            "requests": requests,
            "errors": 0,
            "error_rate_pct": 0.0,
            "p50_ms": p95 / 2,
            "p95_ms": p95,
        }

    old = {
        "version": "1.0",
        "current": False,
        "first_seen": now - 7200,
        "last_seen": now - 3600,
        "requests": 800,
        "errors": 0,
        "error_rate_pct": 0.0,
        "p50_ms": 1.0,
        "p95_ms": 2.0,
        "endpoints": [endpoint("/checkout", 2.0), endpoint("/cart", 2.0)],
    }
    new = {
        "version": HOSTILE_VERSION,
        "current": True,
        "first_seen": now - 3600,
        "last_seen": now,
        "requests": 800,
        "errors": 0,
        "error_rate_pct": 0.0,
        "p50_ms": 15.0,
        "p95_ms": 33.0,
        "endpoints": [endpoint("/checkout", 33.0), endpoint("/cart", 2.1), endpoint("/new", 1.0, 3)],
    }
    regression = {
        "route": "/checkout",
        "method": "GET",
        "from_version": "1.0",
        "to_version": HOSTILE_VERSION,
        "metric": "latency",
        "from": endpoint("/checkout", 2.0),
        "to": endpoint("/checkout", 33.0),
        "grew": ["p50_ms", "p95_ms"],
        "test": {
            "name": "mann-whitney-u",
            "u": 159000.0,
            "p_value": 1e-40,
            "level": 0.005,
            "effect_size": 0.99,
            "effect_size_name": "probability of superiority P(new > old)",
        },
        "requests": {"from": 400, "to": 400},
    }
    return {
        "window": "24h",
        "source": "history",
        "current": HOSTILE_VERSION,
        "versions": [old, new],
        "regressions": [regression],
        "criteria": {"min_requests": 30, "alpha": 0.01},
    }


def _users() -> dict:
    rows = [("alice", 100), (HOSTILE_USER, 30), ("carol", 10)]
    return {
        "window": "24h",
        "since": time.time() - 86400,
        "route": None,
        "method": None,
        "users": [
            {
                "id": u,
                "requests": n,
                "errors": 1 if u == "carol" else 0,
                "error_rate_pct": 10.0 if u == "carol" else 0.0,
                "p95_ms": 12.5,
                "overcount": 0,
            }
            for u, n in rows
        ],
        "total_users": 3,
        "anonymous_requests": 7,
        "exact": True,
        "kept_per_endpoint": 100,
        "hashed": False,
        "clients_counted": True,
    }


def _clients() -> dict:
    return {
        **_users(),
        "users": None,
        "clients": [
            {"id": "203.0.113.9", "requests": 4, "errors": 0, "error_rate_pct": 0.0, "p95_ms": 3.0, "overcount": 0}
        ],
        "total_clients": 1,
    }


def _heatmap() -> dict:
    from flask import request

    metric = request.args.get("metric", "requests")
    days = [f"2026-03-0{d}" for d in range(1, 9)]
    cells = [[(d * 24 + h) % 11 or None for h in range(24)] for d in range(8)]
    if metric == "errors":
        cells = [[None] * 24 for _ in days]
        cells[7][13] = 4
    return {
        "window": "7d",
        "source": "history",
        "metric": metric,
        "unit": "requests",
        "timezone": request.args.get("tz", "UTC"),
        "days": days,
        "hours": list(range(24)),
        "cells": cells,
        "max": max((v for row in cells for v in row if v is not None), default=None),
    }


@pytest.fixture(scope="module")
def insights_server():
    """The dashboard over canned answers of /versions, /users, /clients and /heatmap (auth off)."""
    from flask import Blueprint, Flask, jsonify
    from werkzeug.serving import make_server

    from otel_monitor.analytics.dashboard import register_dashboard

    app = Flask("canned_insights")
    bp = Blueprint("insights", __name__, url_prefix="/otel-monitor")
    for route, make in (("versions", _versions), ("users", _users), ("clients", _clients), ("heatmap", _heatmap)):
        bp.add_url_rule(f"/{route}", route, functools.partial(lambda m: jsonify(m()), make))
    bp.add_url_rule("/dashboard", "dashboards", lambda: jsonify(dashboards=[]))
    settings = SimpleNamespace(
        analytics_db="history.db",
        service_name="canned",
        analytics_slow_ms=500,
        analytics_username=None,
        dashboard_refresh_s=30,
        analytics_source="memory",
    )
    register_dashboard(bp, SimpleNamespace(enabled=False, token=None), settings, None)
    app.register_blueprint(bp)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/otel-monitor/"
    server.shutdown()


@pytest.fixture
def page(browser, insights_server):  # noqa: F811 - the imported fixture
    page = browser.context.new_page()
    browser.watch(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    yield page
    page.close()
    browser.assert_clean()


def goto(page, base: str, view: str) -> None:
    page.goto(base + "#" + view)
    wait_loaded(page, view, 0)


def test_the_versions_view_shows_the_regression_and_keeps_a_hostile_version_as_text(page, insights_server):
    goto(page, insights_server, "versions")
    item = page.locator("#versions-regressions .regression")
    assert item.count() == 1
    text = item.inner_text()
    assert "/checkout" in text and "latency" in text and "1.0" in text and HOSTILE_VERSION in text
    assert "p95 2.00 ms" in text and "33.0 ms" in text and "p < 0.0001" in text and "400 vs 400 requests" in text
    rows = page.locator("#versions-rows tr")
    assert rows.count() == 2 and HOSTILE_VERSION in rows.first.inner_text()  # newest first
    assert "running" in rows.first.inner_text()
    assert page.locator("#view-versions img").count() == 0  # text, never markup
    shot(page, "versions")


def test_the_endpoints_of_two_versions_are_compared_biggest_growth_first(page, insights_server):
    goto(page, insights_server, "versions")
    assert page.locator("#compare-from").input_value() == "1.0"
    assert page.locator("#compare-to").input_value() == HOSTILE_VERSION
    routes = page.locator("#compare-rows .route-text").all_inner_texts()
    assert routes == ["/checkout", "/cart", "/new"]
    change = page.locator("#compare-rows tr").first.locator("td").nth(5)
    assert change.inner_text() == "+1,550.0 %" and "bad" in change.get_attribute("class")
    assert page.locator("#compare-head th").nth(4).get_attribute("title") == "Version " + HOSTILE_VERSION
    page.select_option("#compare-from", HOSTILE_VERSION)  # the same version on both sides: no change
    assert page.locator("#compare-rows tr").first.locator("td").nth(5).inner_text() == "0 %"


def test_the_users_view_lists_users_by_requests_and_keeps_hostile_ids_as_text(page, insights_server):
    goto(page, insights_server, "users")
    ids = page.locator("#users-rows td.col-id").all_inner_texts()
    assert ids == ["alice", HOSTILE_USER, "carol"]
    counts = [row.locator("td").nth(1).inner_text() for row in page.locator("#users-rows tr").all()]
    assert counts == ["100", "30", "10"]
    summary = page.locator("#users-summary").inner_text()
    assert "3 users" in summary and "7 requests without a user" in summary and "exact counts" in summary
    assert page.locator("#clients-card").is_visible()
    assert page.locator("#clients-rows td.col-id").all_inner_texts() == ["203.0.113.9"]
    assert page.locator("#view-users script").count() == 0
    shot(page, "users")


def test_the_week_view_draws_seven_days_of_hours_and_switches_figures(page, insights_server):
    goto(page, insights_server, "heatmap")
    assert page.locator("#heatmap-table tbody tr").count() == 8
    assert page.locator("#heatmap-table tbody tr").first.locator("td.heat-cell").count() == 24
    assert (
        page.locator("#heatmap-table td.heat-5").count() >= 1 and page.locator("#heatmap-table td.heat-0").count() >= 1
    )
    summary = page.locator("#heatmap-summary").inner_text()
    assert "time zone" in summary and "requests per hour" in summary
    gen = loaded(page, "heatmap")
    page.click('#view-heatmap [data-metric="errors"]')
    wait_loaded(page, "heatmap", gen)
    assert page.locator("#heatmap-table td.heat-5").count() == 1
    assert "4" in page.locator("#heatmap-table td.heat-5").get_attribute("title")
    shot(page, "week")


def test_the_three_views_fit_a_phone(page, insights_server):
    page.set_viewport_size({"width": 390, "height": 844})
    for view in ("versions", "users", "heatmap"):
        goto(page, insights_server, view)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, view
        shot(page, f"{view}-phone")


def test_the_real_app_shows_its_running_version_and_its_week(dashboard):  # noqa: F811 - the imported fixture
    page = dashboard.page
    open_view(page, "versions")
    rows = page.locator("#versions-rows tr")
    assert rows.count() >= 1 and "running" in rows.first.inner_text()
    open_view(page, "heatmap")
    assert page.locator("#heatmap-table td.heat-cell:not(.heat-0)").count() >= 1
    open_view(page, "users")
    assert page.locator("#view-users .empty-title").count() == 1  # the example app names no users
    dashboard.browser.assert_clean()
