"""The demo's history file and the generated token's login URL: what is printed and logged opens."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from flask import Flask

from otel_monitor import Monitor
from otel_monitor.analytics.login_notice import base_url_of
from otel_monitor.cli._demo import temporary_history, urls_for
from otel_monitor.testing import closing_client

PREFIX = "/otel-monitor"


# -- the history file ----------------------------------------------------------------------------


def test_the_demo_history_is_a_temporary_sqlite_file_removed_when_the_demo_stops():
    environ: dict[str, str] = {}
    with temporary_history(environ) as path:
        assert path is not None and path.endswith("history.db")
        assert environ["MONITORING_DB"] == path
        assert os.path.isdir(os.path.dirname(path))
        open(path, "w").close()  # what the history store does on first use
    assert "MONITORING_DB" not in environ
    assert not os.path.exists(os.path.dirname(path))


def test_a_history_file_the_user_chose_is_used_and_kept(tmp_path):
    chosen = str(tmp_path / "mine.db")
    environ = {"MONITORING_DB": chosen}
    with temporary_history(environ) as path:
        assert path is None
        assert environ["MONITORING_DB"] == chosen
    assert environ == {"MONITORING_DB": chosen}


# -- the server's own address --------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}, "http://127.0.0.1:8000"),
        ({"SERVER_NAME": "0.0.0.0", "SERVER_PORT": "8000"}, "http://127.0.0.1:8000"),
        ({"SERVER_NAME": "::", "SERVER_PORT": "8000"}, "http://[::1]:8000"),
        ({"SERVER_NAME": "::1", "SERVER_PORT": "9000"}, "http://[::1]:9000"),
        ({"SERVER_NAME": "shop.example", "SERVER_PORT": "80"}, "http://shop.example"),
        ({"wsgi.url_scheme": "https", "SERVER_NAME": "shop.example", "SERVER_PORT": "443"}, "https://shop.example"),
        ({"SERVER_NAME": "h", "SERVER_PORT": "8000", "SCRIPT_NAME": "/shop"}, "http://h:8000/shop"),
    ],
)
def test_the_login_url_is_built_from_the_server_address(environ, expected):
    assert base_url_of({**environ, "HTTP_HOST": "attacker.example"}) == expected


# -- the log line ---------------------------------------------------------------------------------


def token_lines(caplog, token: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if token in r.getMessage()]


@pytest.fixture
def app_and_auth():
    app = Flask("demo_urls")
    app.add_url_rule("/", "index", lambda: "ok")
    monitor = Monitor(app, system_metrics=False)
    yield app, app.extensions["otel_monitor.analytics"], monitor
    monitor.shutdown(timeout=2)


def test_the_first_request_logs_the_login_url_once_then_the_hook_is_gone(app_and_auth, caplog):
    caplog.set_level(logging.WARNING, logger="otel_monitor")
    app, auth, _ = app_and_auth
    hooks_before = len(app.before_request_funcs.get(None, []))
    client = closing_client(app)
    client.get("/", base_url="http://127.0.0.1:8123")
    client.get("/", base_url="http://127.0.0.1:8123")
    assert len(token_lines(caplog, auth.token)) == 1
    assert f"Open http://127.0.0.1:8123{PREFIX}/?token={auth.token} " in token_lines(caplog, auth.token)[0]
    assert len(app.before_request_funcs.get(None, [])) == hooks_before - 1  # nothing left per request


def test_concurrent_first_requests_log_it_once(app_and_auth, caplog):
    caplog.set_level(logging.WARNING, logger="otel_monitor")
    app, auth, _ = app_and_auth
    barrier = threading.Barrier(8)

    def first() -> None:
        barrier.wait()
        closing_client(app).get("/")

    threads = [threading.Thread(target=first) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(token_lines(caplog, auth.token)) == 1


def test_the_demo_logs_the_url_before_printing_its_own_lines_and_every_line_needing_it_carries_it(app_and_auth, caplog):
    caplog.set_level(logging.WARNING, logger="otel_monitor")
    app, auth, _ = app_and_auth
    lines = urls_for(app, "http://127.0.0.1:8124")
    assert f"analytics:  http://127.0.0.1:8124{PREFIX}/performance?token={auth.token}" in lines
    assert f"dashboard:  http://127.0.0.1:8124{PREFIX}/?token={auth.token}" in lines
    assert f"health:     http://127.0.0.1:8124{PREFIX}/health" in lines  # public by default
    assert len(token_lines(caplog, auth.token)) == 1
    closing_client(app).get("/")  # the first request: already logged
    assert len(token_lines(caplog, auth.token)) == 1


def test_configured_credentials_log_no_url_and_print_no_token():
    app = Flask("demo_urls_configured")
    monitor = Monitor(app, system_metrics=False, analytics_token="chosen-token-0123456789abcdef")
    try:
        assert not any("token=" in line for line in urls_for(app, "http://h"))
        assert app.before_request_funcs.get(None, []) == []  # nothing of the monitor's runs per request
        assert app.url_value_preprocessors.get(None, []) == []
    finally:
        monitor.shutdown(timeout=2)
