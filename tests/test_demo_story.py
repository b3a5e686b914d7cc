"""The demo's story: its phases, the environment it sets for them, the URLs it prints."""

from __future__ import annotations

import pytest

from otel_monitor.cli._demo import (
    QUICK_STORY,
    STORY,
    Deployment,
    demo_environment,
    deploy_args,
    phase_at,
    story_seconds,
)


@pytest.mark.parametrize("story", [STORY, QUICK_STORY], ids=["full", "quick"])
def test_the_story_is_healthy_then_a_deploy_then_an_incident_then_recovery(story):
    assert [p.name for p in story] == ["healthy", "deployed", "incident", "recovery"]
    assert [p.version for p in story] == ["1.0", "2.0", "2.0", "2.0"]
    assert [p.incident for p in story] == [False, False, True, False]
    # the recovery outlasts the incident: the alert's window (15 s) clears before the story ends
    assert story[3].seconds >= story[2].seconds + 10


def test_the_full_story_takes_a_few_minutes_and_the_quick_one_a_minute():
    assert 150 <= story_seconds(STORY) <= 240
    assert story_seconds(QUICK_STORY) <= 60


def test_phase_at_follows_the_story_and_stays_in_its_last_phase():
    assert phase_at(STORY, 0).name == "healthy"
    assert phase_at(STORY, STORY[0].seconds - 0.01).name == "healthy"
    assert phase_at(STORY, STORY[0].seconds).name == "deployed"
    incident_starts = STORY[0].seconds + STORY[1].seconds
    assert phase_at(STORY, incident_starts + 1).incident
    assert phase_at(STORY, story_seconds(STORY) + 1000).name == "recovery"


def test_the_environment_sets_the_first_version_and_a_shared_session_key_then_removes_them():
    environ: dict[str, str] = {"PATH": "/bin"}
    with demo_environment(STORY, environ) as deploys:
        assert environ["OTEL_MONITOR_SERVICE_VERSION"] == "1.0"
        assert len(environ["OTEL_MONITOR_SECRET_KEY"]) >= 32
        assert deploys
    assert environ == {"PATH": "/bin"}


def test_what_the_user_set_wins_and_with_their_version_nothing_is_deployed():
    environ = {"OTEL_MONITOR_SECRET_KEY": "mine", "OTEL_MONITOR_SERVICE_VERSION": "7.1"}
    with demo_environment(STORY, environ) as deploys:
        assert not deploys
        assert environ == {"OTEL_MONITOR_SECRET_KEY": "mine", "OTEL_MONITOR_SERVICE_VERSION": "7.1"}
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "service.version=3,team=a"}
    with demo_environment(STORY, environ) as deploys:
        assert not deploys and "OTEL_MONITOR_SERVICE_VERSION" not in environ


def test_a_deployment_hands_requests_to_the_app_deployed_last():
    def app(name):
        def wsgi(environ, start_response):
            start_response("200 OK", [])
            return [name]

        return wsgi

    first, second = app(b"1.0"), app(b"2.0")
    deployment = Deployment(first)
    assert deployment({}, lambda *a: None) == [b"1.0"]
    assert deployment.replace(second) is first
    assert deployment({}, lambda *a: None) == [b"2.0"]


def test_the_next_version_takes_over_a_generated_token_and_no_configured_one():
    from flask import Flask

    from otel_monitor import Monitor

    generated, configured = Flask("generated"), Flask("configured")
    monitors = [Monitor(generated, system_metrics=False), Monitor(configured, analytics_token="mine-0123456789")]
    try:
        token = generated.extensions["otel_monitor.analytics"].token
        assert token and deploy_args(generated) == {"analytics_token": token}
        assert deploy_args(configured) == {}  # the user's own setting reaches the next version anyway
    finally:
        for monitor in monitors:
            monitor.shutdown(timeout=2)
