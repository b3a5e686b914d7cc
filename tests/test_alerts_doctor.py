"""``otel-monitor doctor`` validates the alert rules and, with ``--test-alert``, sends a TEST notice."""

from __future__ import annotations

import json

from otel_monitor.cli.commands import main

from .alert_receivers import HttpReceiver


def test_doctor_test_alert_sends_one_test_notice_per_destination_and_never_prints_the_secret(tmp_path, capsys):
    receiver = HttpReceiver()
    try:
        slack = receiver.url + "/services/T1/B1/very-secret-token"
        code = main(
            [
                "doctor",
                "--skip-metrics-check",
                "--test-alert",
                "--set",
                f"alerts_slack_webhook_url={slack}",
                "--set",
                f"alerts_webhook_url={receiver.url}/hook",
                "--set",
                f"alerts_state_file={tmp_path / 'state.json'}",
            ]
        )
        out = capsys.readouterr().out
        assert code == 0, out
        assert [b["text"].split(" ")[0] for b in receiver.bodies("/services/T1/B1/very-secret-token")] == ["TEST"]
        [hook] = receiver.bodies("/hook")
        assert hook["version"] == "4" and hook["commonLabels"]["alertname"] == "otel_monitor test"
        assert "alert rule(s) valid: high average response time, high error rate" in out
        assert f"test notification sent to slack ({receiver.url}/***)" in out
        assert "very-secret-token" not in out
    finally:
        receiver.close()


def test_doctor_test_alert_fails_for_a_destination_that_is_down(tmp_path, capsys):
    receiver = HttpReceiver()
    receiver.statuses["/hook"] = [502]
    try:
        code = main(
            ["doctor", "--skip-metrics-check", "--test-alert", "--set", f"alerts_webhook_url={receiver.url}/hook"]
        )
    finally:
        receiver.close()
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAIL  test notification to webhook failed: {receiver.url}/*** answered HTTP 502" in out


def test_doctor_stops_on_a_malformed_rule_naming_it(capsys):
    rules = json.dumps([{"name": "slow checkout", "metric": "p95_ms", "threshold": 500, "window": "5 minutes"}])
    code = main(["doctor", "--skip-metrics-check", "--set", f"alerts_rules={rules}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "rule 'slow checkout': field 'window'" in err
