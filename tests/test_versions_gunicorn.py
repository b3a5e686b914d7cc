"""Versions and users under real gunicorn -w 4: merged across workers, history across a restart."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from .conftest import stop_process
from .test_gunicorn import gunicorn  # noqa: F401 - the fixture, shared with the other gunicorn tests

pytestmark = pytest.mark.integration
TOKEN = "versions-gunicorn-token-0123"
COUNT_RE = re.compile(r"^http_server_request_duration_seconds_count\{[^}]*\} ([0-9.e+]+)$", re.M)


def api(base: str, path: str) -> dict:
    request = urllib.request.Request(base + "/otel-monitor" + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def send(base: str, user: str | None, count: int) -> None:
    for i in range(count):
        request = urllib.request.Request(f"{base}/work/{i}", headers={"X-User": user} if user else {})
        urllib.request.urlopen(request, timeout=10).read()


def settle(base: str, expected: int) -> None:
    """Until a scrape (which has every worker publish) counts ``expected`` requests (at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            body = response.read().decode()
        if sum(float(v) for v in COUNT_RE.findall(body)) == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"the workers never counted {expected} requests")


def poll(check, what: str):
    deadline = time.monotonic() + 60
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, what
            return result
        time.sleep(0.3)


def test_versions_and_users_are_merged_across_four_workers_and_history_survives_a_restart(
    gunicorn,  # noqa: F811 - the imported fixture
    tmp_path,
):
    env = {
        "MONITORING_DB": str(tmp_path / "history.db"),
        "OTEL_MONITOR_ANALYTICS_TOKEN": TOKEN,
    }
    base, master = gunicorn(workers=4, env={**env, "APP_VERSION": "1.0"}, target="tests.apps.versions_app:app")
    for user, n in (("alice", 100), ("bob", 30), ("carol", 10)):
        send(base, user, n)
    send(base, None, 5)
    settle(base, 145)
    for _ in range(8):  # each answer, whichever worker gives it, is the group's
        users = api(base, "/users?window=15m")
        assert [(u["id"], u["requests"]) for u in users["users"]] == [("alice", 100), ("bob", 30), ("carol", 10)]
        assert users["anonymous_requests"] == 5 and users["exact"] is True
        versions = api(base, "/versions?window=1h")
        assert [(v["version"], v["requests"]) for v in versions["versions"]] == [("1.0", 145)]
    stop_process(master)  # graceful: each worker writes its last minute

    base, master = gunicorn(workers=4, env={**env, "APP_VERSION": "2.0"}, target="tests.apps.versions_app:app")
    send(base, "dave", 20)
    settle(base, 20)

    def both() -> dict | None:
        body = api(base, "/versions?window=24h")
        found = [(v["version"], v["requests"]) for v in body["versions"]]
        return body if found == [("1.0", 145), ("2.0", 20)] else None

    body = poll(both, "both versions with their request counts")
    assert body["current"] == "2.0" and body["regressions"] == []
    users = api(base, "/users?window=24h")  # users are the running processes' (not in the history)
    assert [(u["id"], u["requests"]) for u in users["users"]] == [("dave", 20)]
