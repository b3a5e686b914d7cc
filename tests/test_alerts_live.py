"""Alerts end to end in one process, with real receivers on 127.0.0.1: a Slack stand-in and an
Alertmanager-format webhook (one HTTP server), and a real SMTP server (aiosmtpd, with STARTTLS)."""

from __future__ import annotations

import json
import re

import pytest

from otel_monitor import SettingsError
from otel_monitor.alerts.wiring import engine_of
from otel_monitor.testing import closing_client

from .alert_receivers import HttpReceiver, SmtpReceiver, self_signed_certificate, wait_until

ERROR_RULE = {
    "name": "checkout failing",
    "metric": "error_rate_pct",
    "op": ">",
    "threshold": 1,
    "window": "2s",
    "for": "1s",
    "severity": "page",
    "labels": {"team": "shop"},
}


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp_receiver(tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test certificate only
    receiver = SmtpReceiver(tls=(cert, key))
    yield receiver
    receiver.close()


def alert_settings(tmp_path, http_receiver, smtp_receiver=None, **extra):
    settings = {
        "alerts_rules": json.dumps([ERROR_RULE]),
        "alerts_default_rules": False,
        "alerts_interval_s": 0.2,
        "alerts_slack_webhook_url": http_receiver.url + "/slack/T000/B000/secret-token",
        "alerts_webhook_url": http_receiver.url + "/hook",
        "alerts_state_file": str(tmp_path / "alerts-state.json"),
        "alerts_external_url": "https://shop.example.com",
        "analytics_token": TOKEN,
    }
    if smtp_receiver is not None:
        settings.update(
            alerts_email_to="ops@example.com,oncall@example.com",
            alerts_email_from="monitor@example.com",
            alerts_smtp_host="127.0.0.1",
            alerts_smtp_port=smtp_receiver.port,
        )
    settings.update(extra)
    return settings


SLACK = "/slack/T000/B000/secret-token"
TOKEN = "alerts-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api(client, path="/otel-monitor/alerts"):
    response = client.get(path, headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def fail_until(client, predicate, what):
    """Failing requests until ``predicate`` holds (bounded by wait_until's timeout)."""

    def step():
        client.get("/fail")
        return predicate()

    return wait_until(step, what=what)


def ticks_after(engine, count):
    """Wait for ``count`` more evaluations by ``engine``."""
    start = engine.evaluations
    wait_until(lambda: engine.evaluations >= start + count, what=f"{count} evaluations")


def test_a_failing_endpoint_fires_once_per_destination_after_for_then_resolves_once(
    monitors, tmp_path, http_receiver, smtp_receiver
):
    app, monitor = monitors.app(**alert_settings(tmp_path, http_receiver, smtp_receiver))
    client = closing_client(app)
    engine = engine_of(monitor.pipeline)
    assert engine is not None

    fail_until(
        client,
        lambda: http_receiver.bodies("/hook") and http_receiver.bodies(SLACK) and smtp_receiver.messages,
        "FIRING",
    )
    # Recovery: no failures in the 2 s window resolves it.
    wait_until(lambda: len(http_receiver.bodies("/hook")) == 2 and len(smtp_receiver.messages) == 2, what="RESOLVED")
    ticks_after(engine, 5)

    hook = http_receiver.bodies("/hook")
    assert [b["status"] for b in hook] == ["firing", "resolved"]
    firing = hook[0]
    assert firing["version"] == "4" and firing["receiver"] == "otel_monitor"
    alert = firing["alerts"][0]
    assert alert["labels"] == {
        "alertname": "checkout failing",
        "severity": "page",
        "service": "test_app",
        "team": "shop",
    }
    assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == "https://shop.example.com/otel-monitor/#alerts"
    assert re.fullmatch(
        r"https://shop\.example\.com/otel-monitor/#traces/[0-9a-f]{32}", alert["annotations"]["trace_url"]
    )
    assert alert["annotations"]["summary"].startswith("checkout failing: error_rate_pct 100 > 1")
    assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
    resolved = hook[1]["alerts"][0]
    assert resolved["status"] == "resolved" and resolved["fingerprint"] == alert["fingerprint"]
    assert resolved["endsAt"] > resolved["startsAt"]

    slack = http_receiver.bodies(SLACK)
    assert len(slack) == 2
    assert slack[0]["text"].startswith("FIRING:1 checkout failing")
    assert slack[1]["text"].startswith("RESOLVED checkout failing")
    assert slack[0]["blocks"][0]["type"] == "header"

    subjects = [m["Subject"] for m in smtp_receiver.messages]
    assert subjects == ["[FIRING:1] checkout failing (test_app)", "[RESOLVED] checkout failing (test_app)"]
    assert smtp_receiver.messages[0].get_payload().startswith("FIRING:1 checkout failing")
    assert smtp_receiver.tls_used == [True, True]  # STARTTLS, offered by the server, was used
    assert sorted(smtp_receiver.envelopes[0].rcpt_tos) == ["oncall@example.com", "ops@example.com"]

    # Counted by outcome on /metrics; the API shows the outcomes; no secret anywhere.
    wait_until(lambda: len(api(client).get_json()["notifications"]) == 6, what="outcomes")
    metrics = client.get("/metrics").get_data(as_text=True)
    counts = {
        (d, k, o): float(v)
        for d, k, o, v in re.findall(
            r'^otel_monitor_alerts_notifications_total\{destination="(\w+)",kind="(\w+)",outcome="(\w+)"[^}]*\} (\S+)$',
            metrics,
            re.M,
        )
    }
    assert counts == {(d, k, "sent"): 1.0 for d in ("slack", "webhook", "email") for k in ("firing", "resolved")}
    body = api(client).get_data(as_text=True)
    assert "secret-token" not in body and "secret-token" not in metrics
    answer = json.loads(body)
    assert {d["name"]: d["target"] for d in answer["destinations"]}["slack"] == f"{http_receiver.url}/***"
    assert {(n["destination"], n["kind"], n["outcome"]) for n in answer["notifications"]} == {
        (d, k, "sent") for d in ("slack", "webhook", "email") for k in ("firing", "resolved")
    }


@pytest.mark.parametrize("kept_in", ["state file", "history database"])
def test_a_restart_while_firing_does_not_notify_again(monitors, tmp_path, http_receiver, kept_in):
    settings = alert_settings(tmp_path, http_receiver, alerts_rules=json.dumps([{**ERROR_RULE, "window": "30s"}]))
    if kept_in == "history database":
        settings.update(alerts_state_file=None, analytics_db=str(tmp_path / "history.db"))
    app, monitor = monitors.app(**settings)
    client = closing_client(app)
    fail_until(client, lambda: http_receiver.bodies("/hook"), "FIRING")
    monitor.shutdown()

    app2, monitor2 = monitors.app(**settings)
    client2 = closing_client(app2)
    engine = engine_of(monitor2.pipeline)
    fail_until(client2, lambda: engine.states.get("checkout failing") is not None, "the new process evaluates")
    assert engine.states["checkout failing"].status == "firing"
    for _ in range(20):
        client2.get("/fail")
    ticks_after(engine, 5)
    assert [b["status"] for b in http_receiver.bodies("/hook")] == ["firing"]
    if kept_in == "history database":
        import sqlite3

        with sqlite3.connect(tmp_path / "history.db") as db:
            [(text,)] = db.execute("SELECT value FROM otel_monitor_alerts WHERE key = 'state'").fetchall()
        assert json.loads(text)["alerts"]["checkout failing"]["status"] == "firing"
    else:
        assert not (tmp_path / "history.db").exists()


def test_a_receiver_answering_500_then_200_gets_the_notice_once_retried(monitors, tmp_path, http_receiver):
    http_receiver.statuses["/hook"] = [500]
    app, monitor = monitors.app(**alert_settings(tmp_path, http_receiver))
    client = closing_client(app)
    fail_until(client, lambda: http_receiver.bodies("/hook"), "the retried FIRING")
    engine = engine_of(monitor.pipeline)
    wait_until(engine.delivery.idle, what="delivery done")
    assert [b["status"] for b in http_receiver.bodies("/hook")] == ["firing"]
    assert http_receiver.attempts["/hook"] == 2
    notes = api(client).get_json()["notifications"]
    hook = [n for n in notes if n["destination"] == "webhook"]
    assert [(n["outcome"], n["attempts"]) for n in hook] == [("sent", 2)]


def test_a_destination_that_stays_down_is_counted_failed_logged_once_and_shown_on_the_alerts_api(
    monitors, tmp_path, http_receiver, caplog
):
    http_receiver.statuses["/hook/secret-path"] = [503] * 10
    settings = alert_settings(tmp_path, http_receiver, alerts_slack_webhook_url=None)
    settings["alerts_webhook_url"] = http_receiver.url + "/hook/secret-path"
    app, monitor = monitors.app(**settings)
    client = closing_client(app)
    engine = engine_of(monitor.pipeline)
    fail_until(client, lambda: http_receiver.attempts.get("/hook/secret-path", 0) >= 4, "four attempts")
    wait_until(engine.delivery.idle, what="delivery done")
    answer = api(client).get_json()
    [hook] = answer["destinations"]
    assert hook["ok"] is False and hook["last_error"] == f"{http_receiver.url}/*** answered HTTP 503"
    assert [(n["outcome"], n["attempts"]) for n in answer["notifications"]] == [("failed", 4)]
    logged = [r.getMessage() for r in caplog.records if "alert notification to webhook" in r.getMessage()]
    assert len(logged) == 1  # four failed attempts, one line a minute
    assert "secret-path" not in caplog.text and "503" in logged[0]


def test_a_malformed_rule_stops_start_up_naming_the_rule_and_the_field(monitors, tmp_path):
    rules = json.dumps([ERROR_RULE, {"name": "checkout slow", "metric": "p95_ms", "threshold": "fast"}])
    with pytest.raises(SettingsError, match=r"alerts_rules: .*rule 'checkout slow': field 'threshold'"):
        monitors.app(alerts_rules=rules)


def test_a_rules_file_is_read_and_a_missing_one_stops_start_up(monitors, tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [ERROR_RULE]}))
    app, monitor = monitors.app(
        alerts_rules=str(path), alerts_state_file=str(tmp_path / "s.json"), analytics_token=TOKEN
    )
    names = [r["name"] for r in api(closing_client(app)).get_json()["alerts"]]
    assert sorted(names) == sorted(["checkout failing", "high average response time", "high error rate",
                                    "high memory use", "high CPU use", "disk almost full"])  # fmt: skip
    with pytest.raises(SettingsError, match=r"alerts_rules: .*cannot read the rules file"):
        monitors.app(alerts_rules=str(tmp_path / "missing.json"))


def test_silences_are_posted_as_json_with_credentials_and_keep_a_firing_alert_quiet(monitors, tmp_path, http_receiver):
    app, monitor = monitors.app(**alert_settings(tmp_path, http_receiver))
    client = closing_client(app)
    url = "/otel-monitor/alerts/silences"
    body = {"rule": "checkout failing", "duration": "1h", "comment": "deploy"}
    assert client.post(url, data=body, headers=AUTH).status_code == 415  # a form: what a cross-site page can send
    cross = client.post(url, json=body, headers={**AUTH, "Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json={**body, "rule": "nope"}, headers=AUTH).get_json() == {
        "error": "rule: expected the name of a rule, or * for all of them"
    }
    created = client.post(url, json=body, headers=AUTH)
    assert created.status_code == 201
    silence = created.get_json()["silence"]
    assert silence["active"] is True and silence["comment"] == "deploy"

    engine = engine_of(monitor.pipeline)
    fail_until(
        client,
        lambda: engine.states.get("checkout failing", None) and engine.states["checkout failing"].status == "firing",
        "firing",
    )
    ticks_after(engine, 3)
    assert http_receiver.bodies("/hook") == []  # silenced
    assert client.delete(f"{url}/{silence['id']}", headers=AUTH).get_json() == {"deleted": silence["id"]}
    fail_until(client, lambda: http_receiver.bodies("/hook"), "FIRING once the silence is gone")
    assert [b["status"] for b in http_receiver.bodies("/hook")] == ["firing"]
    assert api(client, url).get_json() == {"silences": []}


def test_the_scheduled_digest_goes_out_once_with_traffic_errors_and_the_slowest_endpoints(
    monitors, tmp_path, http_receiver, monkeypatch
):
    import time as _time
    from datetime import datetime, timezone

    from otel_monitor.analytics import analytics_of

    monkeypatch.setenv("TZ", "UTC")
    _time.tzset()
    try:
        app, monitor = monitors.app(**alert_settings(tmp_path, http_receiver, alerts_report_schedule="daily 08:00"))
        client = closing_client(app)
        now = [datetime(2026, 12, 7, 7, 59, tzinfo=timezone.utc).timestamp()]
        analytics_of(monitor).use_clock(lambda: now[0])
        engine = engine_of(monitor.pipeline)
        for _ in range(3):
            client.get("/users/1")
        client.get("/fail")
        wait_until(lambda: engine.store.load()["report_last"] == now[0], what="the first evaluation notes the time")
        assert http_receiver.bodies("/hook") == []  # starting is no reason for yesterday's digest
        now[0] += 120  # 08:01
        [report] = wait_until(lambda: http_receiver.bodies("/hook"), what="the digest")
        ticks_after(engine, 5)
        assert len(http_receiver.bodies("/hook")) == 1 and len(http_receiver.bodies(SLACK)) == 1
        assert report["commonAnnotations"]["summary"] == "REPORT daily digest (test_app)"
        text = report["commonAnnotations"]["description"]
        assert "Daily report: 2026-12-06 08:01 to 2026-12-07 08:01 UTC" in text
        assert "Requests: 4" in text and "Error rate: 25 %" in text
        assert "Most failing endpoints:\n  GET /fail: 1 errors (100 %)" in text
        assert "New errors:\n  ValueError on GET /fail: 1 times" in text
        assert http_receiver.bodies(SLACK)[0]["text"].startswith("REPORT daily digest (test_app)")
    finally:
        monkeypatch.delenv("TZ")
        _time.tzset()
