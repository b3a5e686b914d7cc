"""Dashboard sessions end at logout and at a credential change; login throttling is shared by the
workers of a group and keyed so that rotating addresses or user names does not multiply guesses."""

from __future__ import annotations

import base64
import os
import re
import urllib.error
import urllib.request

import pytest

from otel_monitor.analytics._throttle import GLOBAL, PER_CLIENT, Throttle
from otel_monitor.analytics.auth import COOKIE_NAME
from otel_monitor.testing import closing_client

from .conftest import build_app
from .test_gunicorn import gunicorn  # noqa: F401 - the real-gunicorn fixture

PREFIX = "/otel-monitor"
USER = "admin"
PASSWORD = "correct horse battery staple"
KEY = "k" * 32


@pytest.fixture
def make():
    made = []

    def make_app(**settings):
        settings.setdefault("analytics_username", USER)
        settings.setdefault("analytics_password", PASSWORD)
        settings.setdefault("analytics_secret_key", KEY)
        app, monitor = build_app(**settings)
        monitor.pipeline.scheduler.stop()
        made.append(monitor)
        return app, closing_client(app)

    yield make_app
    for monitor in made:
        monitor.shutdown(timeout=2)


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def login(client, password=PASSWORD, user=USER, **environ):
    form = client.get(PREFIX + "/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    return client.post(
        PREFIX + "/login",
        data={"csrf_token": csrf, "username": user, "password": password, "token": "", "next": PREFIX + "/"},
        environ_base=environ,
    )


def session_cookie(client) -> str:
    cookie = client.get_cookie(COOKIE_NAME, path=PREFIX)
    assert cookie is not None
    return cookie.value


def test_a_session_cookie_kept_after_logout_no_longer_works(make):
    app, client = make()
    assert login(client).status_code == 303
    kept = session_cookie(client)
    assert client.get(PREFIX + "/performance").status_code == 200
    page = client.get(PREFIX + "/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(PREFIX + "/logout", data={"csrf_token": csrf}).status_code in (302, 303)
    client.set_cookie(COOKIE_NAME, kept, path=PREFIX)  # replayed from a copy
    assert client.get(PREFIX + "/performance").status_code == 401
    assert login(client).status_code == 303  # a new login works
    assert client.get(PREFIX + "/performance").status_code == 200


def test_a_password_change_ends_existing_sessions(make):
    app, client = make()
    assert login(client).status_code == 303
    kept = session_cookie(client)
    # The app restarts with a new password and the same signing key.
    app2, client2 = make(analytics_password="a new password after the leak")
    client2.set_cookie(COOKIE_NAME, kept, path=PREFIX)
    assert client2.get(PREFIX + "/performance").status_code == 401
    # The same credentials keep the session valid across a restart.
    app3, client3 = make()
    client3.set_cookie(COOKIE_NAME, kept, path=PREFIX)
    assert client3.get(PREFIX + "/performance").status_code == 200


def test_rotating_addresses_and_user_names_share_one_global_budget(make):
    app, client = make()
    refused = 0
    guesses = 0
    for address in range(40):
        for attempt in range(PER_CLIENT - 1):  # each address stays under its own limit
            response = client.get(
                PREFIX + "/performance",
                headers=basic(f"user{attempt}", f"guess{address}-{attempt}"),
                environ_base={"REMOTE_ADDR": f"10.0.{address}.1"},
            )
            if response.status_code == 429:
                refused += 1
            else:
                assert response.status_code == 401
                guesses += 1
    assert guesses == GLOBAL  # not 40 x 9 = 360
    # Even the right password waits now, from a fresh address.
    fresh = client.get(PREFIX + "/performance", headers=basic(USER, PASSWORD), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert fresh.status_code == 429 and int(fresh.headers["Retry-After"]) >= 1


def test_a_signed_in_session_keeps_working_while_guessers_are_throttled(make):
    app, client = make()
    assert login(client).status_code == 303
    attacker = closing_client(app)
    for i in range(GLOBAL):
        attacker.get(
            PREFIX + "/performance", headers=basic(USER, f"guess{i}"), environ_base={"REMOTE_ADDR": f"10.1.{i}.1"}
        )
    fresh = {"REMOTE_ADDR": "10.8.8.8"}
    assert attacker.get(PREFIX + "/performance", headers=basic(USER, PASSWORD), environ_base=fresh).status_code == 429
    client.set_cookie(COOKIE_NAME, session_cookie(client), path=PREFIX)
    assert client.get(PREFIX + "/performance", environ_base=fresh).status_code == 200  # the session, anywhere


def _fail_in_child(path: str, client: str, count: int) -> None:
    throttle = Throttle(path)
    for _ in range(count):
        throttle.record_failure(client)
    os._exit(0)


def test_processes_sharing_the_state_file_share_the_budget(tmp_path):
    path = str(tmp_path / "auth.json")
    children = []
    for _ in range(3):  # three "workers", each failing under the per-address limit
        pid = os.fork()
        if pid == 0:
            _fail_in_child(path, "10.0.0.1", 4)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    throttle = Throttle(path)
    assert throttle.retry_after("10.0.0.1") is not None  # 12 failures in total >= PER_CLIENT
    assert throttle.retry_after("10.0.0.2") is None


def test_a_corrupt_state_file_starts_over_instead_of_failing_logins(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text("{not json")
    throttle = Throttle(str(path))
    assert throttle.retry_after("10.0.0.1") is None
    throttle.record_failure("10.0.0.1")
    assert throttle.tracked_clients() == 1


@pytest.mark.integration
def test_gunicorn_three_workers_allow_no_more_than_one_budget(gunicorn):  # noqa: F811 - gunicorn is the imported fixture
    base, _ = gunicorn(workers=3, env={"MONITORING_USERNAME": USER, "MONITORING_PASSWORD": PASSWORD})
    statuses = []
    for i in range(3 * PER_CLIENT):
        req = urllib.request.Request(base + PREFIX + "/performance", headers=basic(USER, f"guess{i}"))
        try:
            urllib.request.urlopen(req, timeout=10)
            statuses.append(200)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
    assert statuses.count(401) == PER_CLIENT, statuses  # on main: 30 (10 per worker)
    assert statuses[PER_CLIENT:] == [429] * (2 * PER_CLIENT)


def test_an_address_that_signed_in_is_not_locked_out_by_guessers_elsewhere(make):
    app, client = make()
    script = {"REMOTE_ADDR": "10.5.5.5"}
    assert client.get(PREFIX + "/performance", headers=basic(USER, PASSWORD), environ_base=script).status_code == 200
    for i in range(GLOBAL):
        client.get(
            PREFIX + "/performance", headers=basic(USER, f"guess{i}"), environ_base={"REMOTE_ADDR": f"10.2.{i}.1"}
        )
    assert client.get(PREFIX + "/performance", headers=basic(USER, PASSWORD), environ_base=script).status_code == 200
    stranger = client.get(
        PREFIX + "/performance", headers=basic(USER, PASSWORD), environ_base={"REMOTE_ADDR": "10.6.6.6"}
    )
    assert stranger.status_code == 429
    # Its own failures still count.
    for i in range(PER_CLIENT):
        client.get(PREFIX + "/performance", headers=basic(USER, f"mine{i}"), environ_base=script)
    assert client.get(PREFIX + "/performance", headers=basic(USER, PASSWORD), environ_base=script).status_code == 429
