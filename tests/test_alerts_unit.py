"""The alerts' own logic: rule parsing, durations, the state machine, schedules, payload formats."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from otel_monitor.alerts.digest import latest_due, parse_schedule
from otel_monitor.alerts.notices import AlertItem, Notice, alertmanager_payload, email_message, slack_payload
from otel_monitor.alerts.rules import DEFAULT_RULES, RuleError, load_rules, parse_duration, parse_rules
from otel_monitor.alerts.silences import is_silenced, new_silence
from otel_monitor.alerts.state import AlertState, decide, mark_notified, step
from otel_monitor.alerts.store import EvaluatorLock, JsonStore


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), (90, 90), ("2.5", 2.5), ("0", 0)]
)
def test_durations_are_seconds_minutes_hours_or_a_number_of_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "", "m", "-1", "8d", True, "9999999"])
def test_a_duration_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_issue_s_rule_parses_with_every_field():
    [rule] = parse_rules(
        json.dumps(
            [
                {
                    "name": "checkout slow",
                    "metric": "p95_ms",
                    "route": "/checkout",
                    "method": "get",
                    "op": ">",
                    "threshold": 500,
                    "window": "5m",
                    "for": "2m",
                    "severity": "page",
                    "labels": {"team": "shop"},
                }
            ]
        )
    )
    assert (rule.name, rule.metric, rule.route, rule.method, rule.op, rule.threshold) == (
        "checkout slow", "p95_ms", "/checkout", "GET", ">", 500.0
    )  # fmt: skip
    assert (rule.window_s, rule.for_s, rule.severity, dict(rule.labels)) == (300, 120, "page", {"team": "shop"})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "a", "metric": "p96_ms", "threshold": 1}, "rule 'a': field 'metric'"),
        ({"name": "a", "metric": "p95_ms", "threshold": 1, "op": "=="}, "rule 'a': field 'op'"),
        ({"name": "a", "metric": "p95_ms"}, "rule 'a': field 'threshold'"),
        ({"name": "a", "metric": "p95_ms", "threshold": 1, "window": "0s"}, "rule 'a': field 'window'"),
        ({"name": "a", "metric": "p95_ms", "threshold": 1, "for": "soon"}, "rule 'a': field 'for'"),
        ({"name": "a", "metric": "cpu_pct", "threshold": 1, "route": "/x"}, "rule 'a': field 'route'"),
        ({"name": "a", "metric": "p95_ms", "threshold": 1, "labels": {"bad-name": "x"}}, "rule 'a': field 'labels'"),
        ({"name": "a", "metric": "p95_ms", "threshold": 1, "treshold": 2}, "rule 'a': field 'treshold'"),
        ({"metric": "p95_ms", "threshold": 1}, "rule #1: field 'name'"),
    ],
)
def test_a_bad_rule_names_the_rule_and_the_field(rule, message):
    with pytest.raises(RuleError, match=message):
        parse_rules(json.dumps([rule]))


def test_two_rules_with_one_name_and_bad_documents_are_refused():
    rule = {"name": "a", "metric": "p95_ms", "threshold": 1}
    with pytest.raises(RuleError, match="rule 'a': field 'name': two rules"):
        parse_rules(json.dumps([rule, rule]))
    with pytest.raises(RuleError, match="not valid JSON"):
        parse_rules("[{")
    with pytest.raises(RuleError, match="expected a list of rules"):
        parse_rules('{"alerts": []}')


def test_custom_rules_join_the_defaults_replace_one_by_name_or_stand_alone():
    custom = json.dumps({"rules": [{"name": "high error rate", "metric": "error_rate_pct", "threshold": 5}]})
    rules = load_rules(custom, defaults=True)
    assert sorted(r.name for r in rules) == sorted(r.name for r in DEFAULT_RULES)
    assert [r.threshold for r in rules if r.name == "high error rate"] == [5.0]
    assert [r.name for r in load_rules(custom, defaults=False)] == ["high error rate"]
    assert [(r.metric, r.threshold) for r in DEFAULT_RULES] == [
        ("avg_ms", 100), ("error_rate_pct", 1), ("memory_pct", 80), ("cpu_pct", 70), ("disk_pct", 90)
    ]  # fmt: skip


RULE = parse_rules(json.dumps([{"name": "r", "metric": "p95_ms", "threshold": 100, "for": "10s"}]))[0]


def test_an_alert_is_pending_for_its_for_then_fires_once_then_resolves_once():
    s = step(AlertState(), RULE, 150, now=0)
    assert s.status == "pending" and decide(s, 0, 0) is None
    s = step(s, RULE, 150, now=9)
    assert s.status == "pending"
    s = step(s, RULE, 150, now=10)
    assert s.status == "firing" and decide(s, 10, 0) == "firing"
    s = mark_notified(s, "firing", 10)
    s = step(s, RULE, 150, now=20)
    assert decide(s, 20, 0) is None  # once per change of state
    s = step(s, RULE, 50, now=30)
    assert s.status == "inactive" and s.resolved_at == 30 and decide(s, 30, 0) == "resolved"
    s = mark_notified(s, "resolved", 30)
    assert decide(step(s, RULE, 50, now=40), 40, 0) is None


def test_a_blip_shorter_than_for_never_fires_and_no_data_is_not_a_breach():
    s = step(AlertState(), RULE, 150, now=0)
    s = step(s, RULE, None, now=5)
    assert s.status == "inactive"
    s = step(s, RULE, 150, now=6)
    assert s.active_since == 6  # the for starts again
    assert step(s, RULE, 150, now=15).status == "pending"


def test_a_firing_alert_is_repeated_after_the_repeat_interval():
    s = mark_notified(AlertState(status="firing", value=150), "firing", 0)
    assert decide(s, 3599, 3600) is None and decide(s, 3600, 3600) == "repeat"
    assert decide(s, 10**6, 0) is None


def test_a_stored_state_survives_a_round_trip_and_garbage_reads_as_inactive():
    s = mark_notified(AlertState("firing", 1.5, 1.0, 2.0, None), "firing", 2.0)
    assert AlertState.from_json(json.loads(json.dumps(s.as_json()))) == s
    assert AlertState.from_json({"status": "exploded", "value": "x"}) == AlertState()


def test_schedules_daily_and_weekly_in_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        daily, weekly = parse_schedule("daily 08:00"), parse_schedule("weekly mon 08:30")
        now = datetime(2026, 12, 9, 7, 0).timestamp()  # a Wednesday, 07:00 in Berlin
        assert datetime.fromtimestamp(latest_due(daily, now)) == datetime(2026, 12, 8, 8, 0)
        assert datetime.fromtimestamp(latest_due(weekly, now)) == datetime(2026, 12, 7, 8, 30)
        with pytest.raises(ValueError):
            parse_schedule("hourly")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def _notice(kind="firing"):
    item = AlertItem(
        rule="<b>x</b> & co",
        status="firing" if kind == "firing" else "resolved",
        value=812.0,
        threshold=500.0,
        op=">",
        metric="p95_ms",
        severity="page",
        labels={"alertname": "<b>x</b> & co", "severity": "page"},
        summary="",
        starts_at=1_700_000_000.0,
        ends_at=None if kind == "firing" else 1_700_000_100.0,
        dashboard_url="https://e.example/otel-monitor/#alerts",
        route="/checkout",
        method="GET",
    )
    return Notice(kind=kind, service="shop", alerts=(item,))


def test_slack_text_escapes_what_users_wrote_and_starts_with_firing():
    payload = slack_payload(_notice())
    assert payload["text"].startswith("FIRING:1 &lt;b&gt;x&lt;/b&gt; &amp; co (shop)")
    assert "p95_ms 812 &gt; 500 on GET /checkout" in payload["blocks"][1]["text"]["text"]


def test_the_webhook_payload_is_alertmanager_s_and_email_subjects_say_the_status_first():
    payload = alertmanager_payload(_notice("resolved"))
    assert payload["status"] == "resolved" and payload["version"] == "4"
    assert payload["alerts"][0]["endsAt"] == "2023-11-14T22:15:00.000Z"
    message = email_message(_notice("resolved"), "a@example.com", ("b@example.com",))
    assert message["Subject"] == "[RESOLVED] <b>x</b> & co (shop)"
    assert message.get_content().startswith("RESOLVED <b>x</b> & co (shop)\nRESOLVED <b>x</b> & co: p95_ms 812")


def test_silences_match_by_rule_name_or_star_until_they_end():
    silence = new_silence({"rule": "r", "duration": "1h"}, 100.0, ["r"], "me")
    assert is_silenced("r", [silence], 101.0) and not is_silenced("other", [silence], 101.0)
    assert not is_silenced("r", [silence], 100.0 + 3600)
    assert is_silenced("any", [new_silence({"rule": "*"}, 0.0, [], "me")], 1.0)
    with pytest.raises(ValueError, match="rule:"):
        new_silence({"rule": "nope"}, 0.0, ["r"], "me")


def test_one_process_holds_the_evaluator_lock_until_it_releases_it(tmp_path):
    first, second = EvaluatorLock(str(tmp_path / "l")), EvaluatorLock(str(tmp_path / "l"))
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_the_store_keeps_changes_from_two_writers(tmp_path):
    store = JsonStore(str(tmp_path / "s.json"))
    store.update(lambda d: d["silences"].append({"id": "a"}))
    JsonStore(str(tmp_path / "s.json")).update(lambda d: d["silences"].append({"id": "b"}))
    assert [s["id"] for s in store.load()["silences"]] == ["a", "b"]


def _snapshot(t, ok, failed):
    from otel_monitor.alerts.evaluate import Snapshot
    from otel_monitor.analytics.summary import Sample, Series

    requests = {}
    if ok:
        requests[("/a", "GET", 200, "")] = Series(ok, 0.01 * ok, 0.01, (ok, 0))
    if failed:
        requests[("/a", "GET", 500, "500")] = Series(failed, 0.01 * failed, 0.01, (failed, 0))
    return Snapshot(Sample(t, requests, {"cpu_pct": 42.0}), {})


def test_a_window_longer_than_the_process_s_life_counts_everything_since_the_start():
    from otel_monitor.alerts.evaluate import Readings, measure

    rule = parse_rules(json.dumps([{"name": "e", "metric": "error_rate_pct", "threshold": 1, "window": "1m"}]))[0]
    readings = Readings(120)
    readings.add(_snapshot(10.0, 0, 1))  # the one failure came before the first evaluation
    now = _snapshot(11.0, 3, 1)
    assert measure(rule, now, readings, (1.0,), 0.5, started=0.0) == 25.0  # 1 of 4 since the start
    later = _snapshot(80.0, 3, 1)
    readings.add(now)
    assert measure(rule, later, readings, (1.0,), 0.5, started=0.0) is None  # nothing in the last minute
    cpu = parse_rules(json.dumps([{"name": "c", "metric": "cpu_pct", "threshold": 1}]))[0]
    assert measure(cpu, later, readings, (1.0,), 0.5, started=0.0) == 42.0


def test_a_bad_secret_setting_is_named_without_repeating_its_value():
    from otel_monitor.settings import SettingsError, resolve_settings

    with pytest.raises(SettingsError) as bad:
        resolve_settings({"alerts_slack_webhook_url": "hooks.slack.com/services/T0/B0/s3cr3t-token"})
    assert str(bad.value).startswith("alerts_slack_webhook_url: bad value (secret, not shown) from argument")
    assert "s3cr3t" not in str(bad.value)


def test_a_state_file_behind_a_symlink_is_not_read(tmp_path):
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text(json.dumps({"silences": [{"id": "planted", "rule": "*"}]}))
    (tmp_path / "s.json").symlink_to(elsewhere)
    assert JsonStore(str(tmp_path / "s.json")).load()["silences"] == []


class _Flaky:
    """A destination failing ``failures`` times (may pass), then delivering; records each try."""

    def __init__(self, name, failures, log, retry=True):
        self.name, self.target, self.failures, self.log, self.retry = name, name, failures, log, retry

    def send(self, notice):
        from otel_monitor.alerts.destinations import DeliveryError

        self.log.append(self.name)
        if self.failures:
            self.failures -= 1
            raise DeliveryError(f"{self.name} down", retry=self.retry)


def _deliver(destinations):
    from otel_monitor.alerts.delivery import Delivery

    outcomes, counts = [], []

    class Counter:
        def add(self, amount, attributes):
            counts.append((amount, attributes))

    delivery = Delivery(destinations, Counter(), outcomes.append, attempts=3, backoff_s=0.01)
    delivery.submit(Notice(kind="test", service="s"))
    from .alert_receivers import wait_until

    wait_until(lambda: len(outcomes) == len(destinations), what="outcomes")
    delivery.stop()
    return outcomes, counts


def test_a_destination_that_is_down_does_not_hold_up_the_others_and_is_retried_with_a_bound():
    log: list[str] = []
    outcomes, counts = _deliver([_Flaky("down", 10, log), _Flaky("up", 0, log), _Flaky("flaky", 1, log)])
    assert log[:3] == ["down", "up", "flaky"]  # everybody's first attempt comes first
    assert {(o.destination, o.outcome, o.attempts) for o in outcomes} == {
        ("down", "failed", 3), ("up", "sent", 1), ("flaky", "sent", 2)
    }  # fmt: skip
    assert sorted((a["destination"], a["outcome"]) for _, a in counts) == [
        ("down", "failed"), ("flaky", "sent"), ("up", "sent")
    ]  # fmt: skip


def test_an_answer_that_will_not_change_is_not_retried():
    log: list[str] = []
    [outcome], _ = _deliver([_Flaky("gone", 5, log, retry=False)])
    assert (outcome.outcome, outcome.attempts, log) == ("failed", 1, ["gone"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("alerts_email_from", "a@example.com\r\nBcc: victim@example.com"),
        ("alerts_email_from", "a@example.com,b@example.com"),
        ("alerts_email_to", "ops@example.com, not an address"),
        ("alerts_report_schedule", "every day at 8"),
        ("alerts_smtp_starttls", "sometimes"),
    ],
)
def test_bad_alert_settings_stop_start_up_naming_the_setting(name, value):
    from otel_monitor.settings import SettingsError, resolve_settings

    with pytest.raises(SettingsError, match=f"^{name}: bad value"):
        resolve_settings({name: value})
