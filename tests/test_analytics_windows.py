"""Long windows: exact percentiles from merged history buckets, and history writes idempotent per minute."""

from __future__ import annotations

import sqlite3

import pytest

from otel_monitor.analytics import analytics_of
from otel_monitor.analytics.history import History
from otel_monitor.analytics.summary import Series, merge, series_quantile
from otel_monitor.telemetry.pipeline import DURATION_BUCKETS
from otel_monitor.testing import closing_client

from .conftest import build_app

TOKEN = "windows-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = ("/", "GET", 200, "")


def _series(fast: int, slow: int) -> Series:
    """Cumulative: ``fast`` requests in the 5 ms bucket, ``slow`` ones in the 2.5 s bucket."""
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    buckets[DURATION_BUCKETS.index(0.005)] = fast
    buckets[DURATION_BUCKETS.index(2.5)] = slow
    return Series(fast + slow, fast * 0.004 + slow * 2.0, 2.0 if slow else 0.004, tuple(buckets))


@pytest.fixture
def history_app(tmp_path):
    app, monitor = build_app(analytics_db=str(tmp_path / "h.db"), analytics_token=TOKEN)
    monitor.pipeline.scheduler.stop()
    try:
        yield analytics_of(monitor), closing_client(app)
    finally:
        monitor.shutdown(timeout=2)


def test_a_history_window_reports_the_percentile_of_its_merged_buckets(history_app):
    state, client = history_app
    now = [1_800_000_000.0]
    state.use_clock(lambda: now[0])
    # 40 minutes of fast requests, then one minute with a burst of slow ones.
    for minute in range(40):
        state.history.write({KEY: _series(100 * (minute + 1), 0)}, {})
        now[0] += 60
    state.history.write({KEY: _series(4000, 300)}, {})
    now[0] += 1

    body = client.get("/otel-monitor/performance?window=1h", headers=AUTH).get_json()
    hour = body["windows"]["1h"]
    assert hour["requests"] == 4300 and hour["source"] == "history"
    per_minute = [_series(100, 0)] * 40 + [_series(0, 300)]
    exact = series_quantile(0.95, merge(per_minute), DURATION_BUCKETS)
    assert hour["latency"]["p95_ms"] == round(exact * 1000, 3)
    # Averaging the per-minute p95s (weighted by requests) would say about 145 ms.
    assert hour["latency"]["p95_ms"] > 1000
    assert body["windows"]["15m"]["source"] == "memory"


def test_performance_windows_always_include_the_asked_for_window(history_app):
    state, client = history_app
    body = client.get("/otel-monitor/performance?window=24h", headers=AUTH).get_json()
    assert set(body["windows"]) == {"1m", "5m", "15m", "24h", "all"}
    assert body["windows"]["24h"]["requests"] == 0


class _FailingCommit:
    """A connection whose first COMMIT fails (disk full, a lock held too long)."""

    failures = 1

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql, *args):
        if sql == "COMMIT" and _FailingCommit.failures:
            _FailingCommit.failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_retried_history_write_never_adds_a_minute_twice(tmp_path, monkeypatch):
    now = [1_800_000_000.0]
    history = History(str(tmp_path / "h.db"), "me", DURATION_BUCKETS, retention_days=1, clock=lambda: now[0])
    history.write({KEY: _series(100, 0)}, {})
    connect = History._connect
    monkeypatch.setattr(History, "_connect", lambda self: _FailingCommit(connect(self)))
    now[0] += 10
    with pytest.raises(sqlite3.OperationalError):
        history.write({KEY: _series(200, 0)}, {})
    assert history.requests(now[0] - 60, now[0])[KEY].count == 100  # rolled back
    now[0] += 10
    history.write({KEY: _series(200, 0)}, {})  # the retry
    assert history.requests(now[0] - 60, now[0])[KEY].count == 200
    now[0] += 10
    history.write({KEY: _series(250, 0)}, {})
    assert history.requests(now[0] - 60, now[0])[KEY].count == 250
