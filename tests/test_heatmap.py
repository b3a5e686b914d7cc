"""A week at a glance: ``/heatmap`` places requests, errors and p95 into hour-of-day x day cells,
from the history file and what the running process has not written yet, in a stated time zone."""

from __future__ import annotations

import datetime as dt

from otel_monitor.analytics import analytics_of
from otel_monitor.testing import closing_client

TOKEN = "heatmap-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/otel-monitor"
#: Wednesday 2026-03-04 10:30 UTC
T0 = dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.timezone.utc).timestamp()


def test_requests_errors_and_p95_land_in_their_hour_and_day(tmp_path, monitors):
    app, monitor = monitors.app(analytics_db=str(tmp_path / "h.db"), analytics_token=TOKEN)
    monitor.pipeline.scheduler.stop()
    state = analytics_of(monitor)
    now = [T0 - 86400]  # Tuesday 10:30
    state.use_clock(lambda: now[0])
    client = closing_client(app)
    for _ in range(5):
        client.get("/")
    client.get("/fail")
    state.write_history()
    now[0] = T0 + 3 * 3600  # Wednesday 13:30: not written yet, still counted
    for _ in range(2):
        client.get("/")

    body = client.get(PREFIX + "/heatmap?window=7d&metric=requests", headers=AUTH).get_json()
    assert body["timezone"] == "UTC" and body["metric"] == "requests" and body["window"] == "7d"
    assert body["hours"] == list(range(24))
    assert body["days"][0] == "2026-02-25" and body["days"][-1] == "2026-03-04"
    cells = dict(zip(body["days"], body["cells"], strict=True))
    assert cells["2026-03-03"][10] == 6 and cells["2026-03-04"][13] == 2
    assert sum(v for row in body["cells"] for v in row if v is not None) == 8
    assert cells["2026-03-03"][9] is None  # no requests: null, not 0
    assert body["max"] == 6

    errors = client.get(PREFIX + "/heatmap?window=7d&metric=errors", headers=AUTH).get_json()
    assert dict(zip(errors["days"], errors["cells"], strict=True))["2026-03-03"][10] == 1

    p95 = client.get(PREFIX + "/heatmap?window=7d&metric=p95", headers=AUTH).get_json()
    assert p95["unit"] == "ms"
    assert 0 < dict(zip(p95["days"], p95["cells"], strict=True))["2026-03-03"][10] < 1000

    tokyo = client.get(PREFIX + "/heatmap?window=7d&tz=Asia/Tokyo", headers=AUTH).get_json()
    assert tokyo["timezone"] == "Asia/Tokyo"  # UTC+9: Tuesday 10:00 UTC is Tuesday 19:00
    assert dict(zip(tokyo["days"], tokyo["cells"], strict=True))["2026-03-03"][19] == 6


def test_bad_parameters_are_refused(monitors):
    app, monitor = monitors.app(analytics_token=TOKEN)
    client = closing_client(app)
    bad = (("metric=p99", "metric"), ("window=15m", "window"), ("tz=Mars/Olympus", "tz"), ("tz=../../etc/passwd", "tz"))
    for query, word in bad:
        response = client.get(PREFIX + "/heatmap?" + query, headers=AUTH)
        assert response.status_code == 400 and word in response.get_json()["error"], query


def test_without_history_the_heatmap_holds_the_last_minutes(monitors):
    app, monitor = monitors.app(analytics_token=TOKEN)
    state = analytics_of(monitor)
    now = [T0]
    state.use_clock(lambda: now[0])
    client = closing_client(app)
    for _ in range(3):
        client.get("/")
    now[0] += 10
    body = client.get(PREFIX + "/heatmap?window=24h", headers=AUTH).get_json()
    assert body["source"] == "memory"
    assert dict(zip(body["days"], body["cells"], strict=True))["2026-03-04"][10] == 3
