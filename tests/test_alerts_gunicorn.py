"""Alerts under real gunicorn -w 4: one evaluator for the group, so one notice per change of state."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from .alert_receivers import HttpReceiver, wait_until
from .test_gunicorn import gunicorn  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

RULE = {"name": "boom rate", "metric": "error_rate_pct", "threshold": 1, "window": "4s", "for": "1s"}


def hit(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError:
        pass


@pytest.mark.parametrize("options", [(), ("--preload",)], ids=["sync", "sync-preload"])
def test_four_workers_send_exactly_one_firing_and_one_resolved_notice(gunicorn, tmp_path, options):  # noqa: F811
    receiver = HttpReceiver()
    try:
        env = {
            "OTEL_MONITOR_ALERTS_RULES": json.dumps([RULE]),
            "OTEL_MONITOR_ALERTS_DEFAULT_RULES": "false",
            "OTEL_MONITOR_ALERTS_INTERVAL_S": "0.3",
            "OTEL_MONITOR_ALERTS_WEBHOOK_URL": receiver.url + "/hook",
            "OTEL_MONITOR_ALERTS_SLACK_WEBHOOK_URL": receiver.url + "/slack",
            "OTEL_MONITOR_ALERTS_STATE_FILE": str(tmp_path / "alerts.json"),
            "OTEL_MONITOR_ANALYTICS_TOKEN": "t",
        }
        base, _master = gunicorn(*options, env=env)
        n = 0

        def failing() -> bool:
            nonlocal n
            for _ in range(8):  # spread over the workers
                n += 1
                hit(f"{base}/boom/{n}")
            return bool(receiver.bodies("/hook"))

        wait_until(failing, what="FIRING")
        wait_until(lambda: len(receiver.bodies("/hook")) >= 2, what="RESOLVED")
        # Several more evaluations by whichever worker holds the lock: nothing more is sent.
        state = tmp_path / "alerts.json"
        first = json.loads(state.read_text())["alerts"]["boom rate"]["evaluated_at"]
        wait_until(
            lambda: json.loads(state.read_text())["alerts"]["boom rate"]["evaluated_at"] > first + 3,
            what="3 s of evaluations",
        )
        for path in ("/hook", "/slack"):
            bodies = receiver.bodies(path)
            statuses = [b["status"] for b in bodies] if path == "/hook" else [b["text"].split(" ")[0] for b in bodies]
            assert statuses == (["firing", "resolved"] if path == "/hook" else ["FIRING:1", "RESOLVED"])
        request = urllib.request.Request(base + "/otel-monitor/alerts", headers={"Authorization": "Bearer t"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert [a["state"]["status"] for a in answer["alerts"]] == ["inactive"]
        assert len(answer["notifications"]) == 4
        # Counted once, in the evaluating worker: the group's /metrics (through any worker) says so.
        with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
            metrics = response.read().decode()
        counted = re.findall(
            r'^otel_monitor_alerts_notifications_total\{destination="(\w+)",kind="(\w+)",outcome="(\w+)"[^}]*\} (\S+)$',
            metrics,
            re.M,
        )
        assert sorted(counted) == sorted(
            (d, k, "sent", "1") for d in ("slack", "webhook") for k in ("firing", "resolved")
        )
    finally:
        receiver.close()
