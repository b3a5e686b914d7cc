"""Versions: every request is attributed to the app's version (resource, history rows), and
``/versions`` lists the versions with their figures and flags the endpoints that got worse."""

from __future__ import annotations

import json
import random
import sqlite3
import time

import pytest
from flask import Flask

from otel_monitor.analytics import analytics_of
from otel_monitor.analytics.history import History
from otel_monitor.analytics.stats import error_rate_test, fisher_greater, mann_whitney
from otel_monitor.analytics.summary import Series
from otel_monitor.analytics.versions import versions_report
from otel_monitor.telemetry._version import detect_version, git_commit
from otel_monitor.telemetry.pipeline import DURATION_BUCKETS
from otel_monitor.testing import closing_client

TOKEN = "versions-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/otel-monitor"


def versioned_app(monitors, db: str, version: str, slow_b: float = 0.0, failing_c: int = 0):
    app = Flask("shop")
    calls = {"c": 0}

    @app.get("/a")
    def a():
        return "a"

    @app.get("/b")
    def b():
        if slow_b:
            time.sleep(slow_b)
        return "b"

    @app.get("/c")
    def c():
        calls["c"] += 1
        if calls["c"] <= failing_c:
            raise RuntimeError("broken in this version")
        return "c"

    monitor = monitors(app, service_version=version, analytics_db=db, analytics_token=TOKEN, system_metrics=False)
    monitor.pipeline.scheduler.stop()  # the tests write the history when they choose
    return app, monitor, analytics_of(monitor), closing_client(app)


def run(client, n: int = 40) -> None:
    for _ in range(n):
        for path in ("/a", "/b", "/c"):
            client.get(path)


def test_two_runs_list_both_versions_and_flag_only_the_endpoint_that_got_30_ms_slower(tmp_path, monitors):
    db = str(tmp_path / "history.db")
    app, monitor, state, client = versioned_app(monitors, db, "1.0")
    run(client)
    monitor.shutdown(timeout=2)  # the last minute is written at shutdown

    app, monitor, state, client = versioned_app(monitors, db, "2.0", slow_b=0.030)
    run(client)
    state.write_history()

    body = client.get(PREFIX + "/versions?window=24h", headers=AUTH).get_json()
    assert [v["version"] for v in body["versions"]] == ["1.0", "2.0"]
    assert body["current"] == "2.0" and body["source"] == "history"
    first, second = body["versions"]
    assert first["requests"] == second["requests"] == 120
    assert first["first_seen"] <= second["first_seen"]
    b_old = next(e for e in first["endpoints"] if e["route"] == "/b")
    b_new = next(e for e in second["endpoints"] if e["route"] == "/b")
    assert b_new["p50_ms"] >= 25 > b_old["p50_ms"]

    assert len(body["regressions"]) == 1, body["regressions"]
    regression = body["regressions"][0]
    assert (regression["route"], regression["method"], regression["metric"]) == ("/b", "GET", "latency")
    assert (regression["from_version"], regression["to_version"]) == ("1.0", "2.0")
    assert regression["requests"] == {"from": 40, "to": 40}
    assert regression["from"]["p95_ms"] < regression["to"]["p95_ms"]
    assert regression["test"]["name"] == "mann-whitney-u"
    assert regression["test"]["p_value"] < regression["test"]["level"] <= 0.01
    assert regression["test"]["effect_size"] > 0.9


def test_the_running_processes_unwritten_requests_are_in_the_window(tmp_path, monitors):
    db = str(tmp_path / "history.db")
    app, monitor, state, client = versioned_app(monitors, db, "1.0")
    run(client, 5)
    monitor.shutdown(timeout=2)
    app, monitor, state, client = versioned_app(monitors, db, "2.0")
    run(client, 3)  # nothing of 2.0 written yet
    body = client.get(PREFIX + "/versions?window=1h", headers=AUTH).get_json()
    assert {v["version"]: v["requests"] for v in body["versions"]} == {"1.0": 15, "2.0": 9}
    state.write_history()
    run(client, 1)
    body = client.get(PREFIX + "/versions?window=1h", headers=AUTH).get_json()
    assert {v["version"]: v["requests"] for v in body["versions"]} == {"1.0": 15, "2.0": 12}


def test_an_error_rate_that_grew_is_flagged_with_its_test(tmp_path, monitors):
    db = str(tmp_path / "history.db")
    app, monitor, state, client = versioned_app(monitors, db, "1.0")
    run(client, 60)
    monitor.shutdown(timeout=2)
    app, monitor, state, client = versioned_app(monitors, db, "2.0", failing_c=12)
    run(client, 60)
    body = client.get(PREFIX + "/versions?window=24h", headers=AUTH).get_json()
    # (failing requests also take longer -- logging a traceback -- so /c may be slower too)
    assert {r["route"] for r in body["regressions"]} == {"/c"}
    [regression] = [r for r in body["regressions"] if r["metric"] == "error_rate"]
    assert regression["route"] == "/c"
    assert regression["from"]["error_rate_pct"] == 0 and regression["to"]["error_rate_pct"] == 20.0
    assert regression["test"]["name"] == "two-proportion-z"
    assert regression["test"]["effect_size"] == 20.0
    assert regression["requests"] == {"from": 60, "to": 60}


def test_without_a_history_file_the_window_is_the_running_versions(monitors):
    app, monitor = monitors.app(service_version="3.1", analytics_token=TOKEN)
    client = closing_client(app)
    for _ in range(4):
        client.get("/")
    body = client.get(PREFIX + "/versions?window=15m", headers=AUTH).get_json()
    assert body["source"] == "memory" and body["regressions"] == []
    [version] = body["versions"]
    assert (version["version"], version["requests"], version["current"]) == ("3.1", 4, True)


def test_a_bad_window_is_refused(monitors):
    app, monitor = monitors.app(analytics_token=TOKEN)
    response = closing_client(app).get(PREFIX + "/versions?window=2d", headers=AUTH)
    assert response.status_code == 400 and "window must be one of" in response.get_json()["error"]


# -- where the version comes from -----------------------------------------------------------------


def test_the_version_is_on_the_resource_and_in_target_info(monitors):
    app, monitor = monitors.app(service_version='1.0"<b>')
    assert monitor.pipeline.resource.attributes["service.version"] == '1.0"<b>'
    client = closing_client(app)
    client.get("/")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'service_version="1.0\\"<b>"' in text


def test_the_setting_beats_the_resource_attributes_which_beat_detection(monitors, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=from-env,team=a")
    app, monitor = monitors.app()
    assert monitor.pipeline.resource.attributes["service.version"] == "from-env"
    app2, monitor2 = monitors.app(service_version="from-setting")
    assert monitor2.pipeline.resource.attributes["service.version"] == "from-setting"


def test_the_version_is_detected_from_the_apps_checkout(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(sha + "\n")
    package = tmp_path / "repo" / "src" / "shop"
    package.mkdir(parents=True)
    assert git_commit(str(package)) == sha[:12]
    (git / "refs" / "heads" / "main").unlink()  # after git gc: the ref is in packed-refs
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{sha[::-1]} refs/heads/main\n")
    assert git_commit(str(package)) == sha[::-1][:12]
    (git / "HEAD").write_text(sha + "\n")  # a detached checkout (a deployed tag)
    assert git_commit(str(package)) == sha[:12]


def test_a_worktree_checkout_reads_head_from_its_gitdir_and_refs_from_the_common_dir(tmp_path):
    sha = "89abcdef0123456789abcdef0123456789abcdef"
    common = tmp_path / "main" / ".git"
    (common / "refs" / "heads").mkdir(parents=True)
    (common / "refs" / "heads" / "feature").write_text(sha)
    private = common / "worktrees" / "wt"
    private.mkdir(parents=True)
    (private / "HEAD").write_text("ref: refs/heads/feature")
    (private / "commondir").write_text("../..")
    checkout = tmp_path / "wt"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {private}\n")
    assert git_commit(str(checkout)) == sha[:12]


def test_outside_a_checkout_the_distributions_version_else_unknown(tmp_path):
    from importlib.metadata import version

    assert detect_version(str(tmp_path), "flask.app") == version("flask")
    assert detect_version(str(tmp_path), "no_such_module_here") == "unknown"


# -- the history file -------------------------------------------------------------------------------

_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
    minute INTEGER NOT NULL, instance_id TEXT NOT NULL, route TEXT NOT NULL, method TEXT NOT NULL,
    status INTEGER NOT NULL, error TEXT NOT NULL,
    count INTEGER NOT NULL, errors INTEGER NOT NULL, sum_s REAL NOT NULL, max_s REAL, buckets TEXT NOT NULL,
    PRIMARY KEY (minute, instance_id, route, method, status, error)) WITHOUT ROWID;
"""


def test_a_schema_1_history_file_is_migrated_and_its_rows_read_as_version_unknown(tmp_path):
    db = str(tmp_path / "old.db")
    now = time.time()
    minute = int(now // 60) * 60 - 120
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    buckets[2] = 7
    with sqlite3.connect(db) as conn:
        conn.executescript(_SCHEMA_1)
        conn.execute("INSERT INTO meta VALUES ('schema', '1'), ('bounds', ?)", (json.dumps(list(DURATION_BUCKETS)),))
        conn.execute(
            "INSERT INTO requests VALUES (?, 'old', '/', 'GET', 200, '', 7, 0, 0.01, 0.004, ?)",
            (minute, json.dumps(buckets)),
        )
    history = History(db, "new", DURATION_BUCKETS, 7, time.time, version="2.0")
    assert history.usable
    key = ("/", "GET", 200, "")
    history.write({key: Series(3, 0.003, 0.001, tuple(buckets[:2] + [3] + buckets[3:]))}, {})
    by_version = history.requests_by_version(now - 3600, now + 60)
    assert by_version["unknown"][key].count == 7 and by_version["2.0"][key].count == 3
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"
    assert set(history.versions(now - 3600, now + 60)) == {"unknown", "2.0"}


# -- the tests themselves ---------------------------------------------------------------------------


def test_mann_whitney_on_buckets_matches_the_rank_sum_computed_by_hand():
    # A: 2 in bucket 0, 1 in bucket 1; B: 1 in bucket 1, 2 in bucket 2. Ranks: bucket 0 -> 1.5,
    # bucket 1 -> 3.5 (ties), bucket 2 -> 5.5; B's rank sum 3.5 + 11 = 14.5, U_B = 14.5 - 6 = 8.5.
    result = mann_whitney([2, 1, 0], [0, 1, 2])
    assert result is not None
    assert result.u == 8.5 and result.effect == pytest.approx(8.5 / 9)
    same = mann_whitney([10, 20, 5], [10, 20, 5])
    assert same is not None and same.effect == 0.5 and same.p_value > 0.4


def test_fishers_exact_test_matches_the_lady_tasting_tea():
    # Fisher's own example: 3 of 4 cups right; P(at least 3) = (16 + 1) / 70.
    assert fisher_greater(1, 4, 3, 4) == pytest.approx(17 / 70)
    small = error_rate_test(0, 40, 3, 40)
    assert small is not None and small.test == "fisher"
    large = error_rate_test(50, 1000, 80, 1000)
    assert large is not None and large.test == "z" and large.p_value < 0.01


def _histogram(rng: random.Random, n: int, median_s: float) -> Series:
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    total = 0.0
    for _ in range(n):
        value = rng.lognormvariate(0, 0.5) * median_s
        total += value
        index = next((i for i, b in enumerate(DURATION_BUCKETS) if value <= b), len(DURATION_BUCKETS))
        buckets[index] += 1
    return Series(n, total, None, tuple(buckets))


def test_noise_between_two_versions_with_the_same_latencies_is_not_flagged():
    rng = random.Random(23)
    data = {}
    for order, version in enumerate(("1.0", "2.0")):
        requests = {}
        for e in range(50):  # 50 endpoints, each with the same latency distribution in both versions
            requests[(f"/e{e}", "GET", 200, "")] = _histogram(rng, rng.randint(30, 400), 0.003 * (1 + e % 7))
        data[version] = {"requests": requests, "first_seen": float(order), "last_seen": float(order) + 1}
    report = versions_report(data, DURATION_BUCKETS, "2.0")
    assert report["regressions"] == []


def test_too_few_requests_are_not_tested():
    rng = random.Random(5)
    data = {
        "1.0": {"requests": {("/x", "GET", 200, ""): _histogram(rng, 20, 0.002)}, "first_seen": 0.0, "last_seen": 1.0},
        "2.0": {"requests": {("/x", "GET", 200, ""): _histogram(rng, 20, 0.2)}, "first_seen": 2.0, "last_seen": 3.0},
    }
    assert versions_report(data, DURATION_BUCKETS, "2.0")["regressions"] == []


def test_a_monitor_without_a_version_setting_names_the_checkouts_commit(monitors):
    # These tests run from a git checkout: the test app's root path is inside it.
    app = Flask("anything")
    monitor = monitors(app, system_metrics=False)
    expected = git_commit(app.root_path)
    assert expected is not None and len(expected) == 12
    assert monitor.pipeline.resource.attributes["service.version"] == expected
    assert monitor.settings.source_of("service_version") == "detected"


def test_a_process_losing_the_migration_race_still_uses_the_file(tmp_path):
    from otel_monitor.analytics.history import _migrate

    db = str(tmp_path / "old.db")
    with sqlite3.connect(db) as conn:
        conn.executescript(_SCHEMA_1)
        conn.execute("INSERT INTO meta VALUES ('schema', '1'), ('bounds', ?)", (json.dumps(list(DURATION_BUCKETS)),))
    late = sqlite3.connect(db)
    stale = list(late.execute("PRAGMA table_info(requests)"))  # read before the other process migrated
    assert History(db, "first", DURATION_BUCKETS, 7, time.time, version="2.0").usable  # migrates

    class StaleFirstRead:
        """The losing process's view: its first look at the columns predates the migration."""

        def __init__(self) -> None:
            self.first = True

        def execute(self, sql: str, *args):
            if self.first and "table_info" in sql:
                self.first = False
                return iter(stale)
            return late.execute(sql, *args)

    try:
        _migrate(StaleFirstRead())  # its ALTER TABLE fails ("duplicate column name"): not an error
    finally:
        late.close()
    assert History(db, "second", DURATION_BUCKETS, 7, time.time, version="2.0").usable
