"""otel-monitor doctor runs the start-up validation, and its throw-away app stays quiet about tokens."""

from __future__ import annotations

import logging
import textwrap

import pytest

from otel_monitor.cli import commands as cli

from .conftest import ROOT


@pytest.mark.parametrize(
    ("variable", "named"),
    [("MONITORING_USERNAME", "analytics_password"), ("MONITORING_PASSWORD", "analytics_username")],
)
def test_doctor_fails_like_start_up_on_half_a_credential(monkeypatch, capsys, variable, named):
    monkeypatch.setenv(variable, "admin")
    assert cli.main(["doctor", "--skip-metrics-check"]) == 2
    err = capsys.readouterr().err
    assert named in err and "set both or neither" in err


def test_doctor_fails_like_start_up_for_an_app_with_half_a_credential(tmp_path, monkeypatch, capsys):
    (tmp_path / "half_credential_app.py").write_text(
        textwrap.dedent("""
        from flask import Flask
        app = Flask("half_credential_app")
        app.config["OTEL_MONITOR_ANALYTICS_USERNAME"] = "admin"
    """)
    )
    monkeypatch.chdir(tmp_path)
    assert cli.main(["doctor", "--app", "half_credential_app.py:app", "--skip-metrics-check"]) == 2
    assert "analytics_password" in capsys.readouterr().err


def test_doctor_accepts_half_a_credential_when_the_analytics_are_off(monkeypatch, capsys):
    # Start-up mounts nothing then, so it does not check the credentials either.
    monkeypatch.setenv("MONITORING_USERNAME", "admin")
    monkeypatch.setenv("OTEL_MONITOR_ANALYTICS", "false")
    assert cli.main(["doctor", "--skip-metrics-check"]) == 0, capsys.readouterr()


def test_doctor_metric_check_logs_no_token_url(monkeypatch, caplog, capsys):
    monkeypatch.chdir(ROOT)  # collector-config/ of the checkout: the metric check builds its throw-away app
    with caplog.at_level(logging.DEBUG, logger="otel_monitor"):
        code = cli.main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert not [r for r in caplog.records if "token" in r.getMessage()]
