"""Embedded history (MONITORING_DB): per-minute rollups survive restarts, several processes
writing one file never double-count, old rows are pruned."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

from otel_monitor.analytics import analytics_of
from otel_monitor.analytics.history import History
from otel_monitor.analytics.summary import Series
from otel_monitor.telemetry.pipeline import DURATION_BUCKETS
from otel_monitor.testing import closing_client

from .conftest import ROOT

TOKEN = "history-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/otel-monitor"


def start(monitors, db: str, **settings):
    app, monitor = monitors.app(analytics_db=db, analytics_token=TOKEN, **settings)
    monitor.pipeline.scheduler.stop()  # the tests write when they choose
    return app, monitor, analytics_of(monitor), closing_client(app)


def test_the_history_job_is_registered_and_the_file_uses_wal(tmp_path, monitors):
    db = str(tmp_path / "history.db")
    app, monitor = monitors.app(analytics_db=db, analytics_token=TOKEN)
    jobs = {job[3]: job[1] for job in monitor.pipeline.scheduler._jobs}
    assert jobs["analytics history write"] == 60
    assert jobs["analytics sample"] == 10
    assert not os.path.exists(db)  # nothing opened while the pipeline is built (maybe in a request)
    analytics_of(monitor).write_history()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_history_survives_a_restart_and_serves_long_windows(tmp_path, monitors):
    db = str(tmp_path / "history.db")
    app, monitor, state, client = start(monitors, db)
    first_instance = monitor.pipeline.instance_id
    for _ in range(30):
        client.get("/")
    for _ in range(3):
        client.get("/fail")
    client.get(PREFIX + "/performance", headers=AUTH)  # the analytics' own traffic is not recorded
    assert state.write_history() == 2
    assert state.write_history() == 2  # the same minute again: replaced, not added
    monitor.shutdown(timeout=2)

    app, monitor, state, client = start(monitors, db)  # a restart: new process state, new instance id
    assert monitor.pipeline.instance_id != first_instance
    for _ in range(12):
        client.get("/")
    state.write_history()
    body = client.get(PREFIX + "/endpoints?window=1h", headers=AUTH).get_json()
    rows = {r["route"]: r for r in body["endpoints"]}
    assert rows["/"]["count"] == 42
    assert rows["/fail"]["count"] == 3 and rows["/fail"]["errors"] == 3
    assert rows["/"]["status_codes"] == {"200": 42}
    assert body["total"] == 2

    perf = client.get(PREFIX + "/performance?window=24h", headers=AUTH).get_json()
    assert perf["ranked_window"] == "24h"
    assert perf["most_failing_endpoints"][0]["errors"] == 3

    series = client.get(PREFIX + "/timeseries?window=1h", headers=AUTH).get_json()
    assert series["step_s"] == 60 and series["source"] == "history"
    assert sum(p["requests"] for p in series["points"]) == 45
    assert sum(series["routes"]["GET /"]) == 42

    exported = client.get(PREFIX + "/export?format=json&window=6h", headers=AUTH).get_json()
    assert {r["route"]: r["count"] for r in exported["endpoints"]} == {"/": 42, "/fail": 3}

    with sqlite3.connect(db) as conn:
        instances = conn.execute("SELECT COUNT(DISTINCT instance_id) FROM requests").fetchone()[0]
    assert instances == 2
    # In-memory windows are this run's only.
    assert client.get(PREFIX + "/endpoints?window=15m", headers=AUTH).get_json()["endpoints"][0]["count"] == 12


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.conftest import build_app
    from otel_monitor.analytics import analytics_of
    from otel_monitor.testing import closing_client

    db, n = sys.argv[1], int(sys.argv[2])
    app, monitor = build_app(analytics_db=db, analytics_token="t" * 24)
    monitor.pipeline.scheduler.stop()
    state = analytics_of(monitor)
    client = closing_client(app)
    for _ in range(n):
        client.get("/")
    state.write_history()
    for _ in range(5):
        client.get("/fail")
    for _ in range(3):
        state.write_history()  # repeated writes of the same minute must not add up
    monitor.shutdown(timeout=2)
    print(monitor.pipeline.instance_id)
""")


def test_two_processes_writing_one_file_do_not_double_count(tmp_path):
    db = str(tmp_path / "shared.db")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(root=str(ROOT)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MONITORING_"))}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), db, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        for n in (40, 25)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    instance_ids = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(instance_ids) == 2

    reader = History(db, "reader", DURATION_BUCKETS, 7, clock=lambda: 0.0)
    import time

    totals = reader.requests(time.time() - 3600, time.time() + 60)
    by_route = {}
    for (route, _method, _status, _error), s in totals.items():
        by_route[route] = by_route.get(route, 0) + s.count
    assert by_route == {"/": 65, "/fail": 10}
    with sqlite3.connect(db) as conn:
        per_instance = dict(conn.execute("SELECT instance_id, SUM(count) FROM requests GROUP BY instance_id"))
    assert sorted(per_instance.values()) == [25 + 5, 40 + 5]
    assert set(per_instance) == instance_ids


def _series(count: int) -> Series:
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    buckets[2] = count
    return Series(count, count * 0.004, 0.004, tuple(buckets))


def test_minutes_accumulate_and_old_rows_are_pruned(tmp_path):
    now = [1_800_000_000.0]
    history = History(str(tmp_path / "h.db"), "me", DURATION_BUCKETS, retention_days=1, clock=lambda: now[0])
    key = ("/", "GET", 200, "")
    history.write({key: _series(5)}, {"cpu_pct": 10.0})
    now[0] += 20
    history.write({key: _series(8)}, {"cpu_pct": 30.0})  # same minute: 8 in total for it
    assert history.row_count() == 1
    assert history.requests(now[0] - 300, now[0])[key].count == 8
    now[0] += 60
    history.write({key: _series(10)}, {})
    per_minute = history.requests_by_minute(now[0] - 300, now[0])
    assert [per_minute[m][key].count for m in sorted(per_minute)] == [8, 2]
    system = history.system_by_minute(now[0] - 300, now[0])
    assert list(system.values())[0]["cpu_pct"] == 30.0
    now[0] += 86400 + 120  # a day later: the first minutes are past retention
    history.write({key: _series(11)}, {})
    assert sorted(history.requests_by_minute(0, now[0])) == [int(now[0] // 60) * 60]


def test_a_file_written_with_other_buckets_is_not_mixed_in(tmp_path, caplog):
    path = str(tmp_path / "h.db")
    assert History(path, "a", (0.1, 1.0), 7, clock=lambda: 0.0).usable
    other = History(path, "b", DURATION_BUCKETS, 7, clock=lambda: 0.0)
    assert not other.usable
    assert other.write({}, {}) == 0
    assert any("other latency buckets" in r.getMessage() for r in caplog.records)


def test_a_bad_history_path_does_not_stop_the_app(tmp_path, caplog, monitors):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app, monitor, state, client = start(monitors, str(blocker / "sub" / "h.db"))
    assert client.get("/").status_code == 200
    assert state.write_history() == 0
    assert not state.history.usable
    body = client.get(PREFIX + "/endpoints?window=1h", headers=AUTH).get_json()
    assert body["window_available"] is False and body["total"] == 1  # from memory
    assert len([r for r in caplog.records if "cannot use the history file" in r.getMessage()]) == 1


def test_the_last_minute_is_written_at_shutdown(tmp_path, monitors):
    db = str(tmp_path / "history.db")
    app, monitor, state, client = start(monitors, db)
    for _ in range(7):
        client.get("/")
    monitor.shutdown(timeout=5)  # no write_history() call: the shutdown writes
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT SUM(count) FROM requests WHERE route = '/'").fetchone()[0] == 7
