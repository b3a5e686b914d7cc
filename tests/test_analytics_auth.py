"""Access control of the analytics: no default credentials, Basic/Bearer/token/session, throttling,
non-ASCII passwords, headers, and no secret in logs, spans or metrics."""

from __future__ import annotations

import base64
import logging

import pytest
from flask import Flask

from otel_monitor import SettingsError, resolve_settings
from otel_monitor.analytics.auth import COOKIE_NAME, MAX_FAILURES, Auth
from otel_monitor.testing import Telemetry, closing_client

from .conftest import build_app

PREFIX = "/otel-monitor"
ENDPOINTS = (
    "/health",
    "/performance",
    "/endpoints",
    "/timeseries",
    "/metrics",
    "/traces",
    "/dashboard",
    "/export?format=csv",
    "/export?format=json",
)
PASSWORD = "correct horse battery staple"
TOKEN = "bearer-token-abcdefghijklmnop"


def basic(user: str, password: str, encoding: str = "utf-8") -> dict:
    raw = f"{user}:{password}".encode(encoding)
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


@pytest.fixture
def app_with(monitors):
    def make(**settings):
        app, monitor = monitors.app(**settings)
        monitor.pipeline.scheduler.stop()
        return app, monitor, closing_client(app)

    return make


def test_every_endpoint_refuses_without_credentials(app_with):
    app, monitor, client = app_with(
        analytics_username="admin", analytics_password=PASSWORD, analytics_public_health=False
    )
    for path in ENDPOINTS:
        response = client.get(PREFIX + path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="otel_monitor"')
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert set(response.headers["Vary"].replace(" ", "").split(",")) >= {"Cookie", "Authorization"}
        assert response.get_json() == {"error": "authentication required"}


def test_basic_and_bearer_are_accepted(app_with):
    app, monitor, client = app_with(analytics_username="admin", analytics_password=PASSWORD, analytics_token=TOKEN)
    for path in ENDPOINTS:
        assert client.get(PREFIX + path, headers=basic("admin", PASSWORD)).status_code == 200, path
        assert client.get(PREFIX + path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
    assert client.get(PREFIX + "/performance", headers=basic("admin", "wrong")).status_code == 401
    assert client.get(PREFIX + "/performance", headers=basic("root", PASSWORD)).status_code == 401
    assert client.get(PREFIX + "/performance", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(PREFIX + "/performance", headers={"Authorization": "Basic !!!notbase64"}).status_code == 401
    # The token also works as the password of a Basic prompt (curl -u x:TOKEN).
    assert client.get(PREFIX + "/performance", headers=basic("anyone", TOKEN)).status_code == 200


def test_without_credentials_a_token_is_generated_and_logged_in_exactly_one_line(app_with, caplog):
    caplog.set_level(logging.DEBUG)
    app, monitor, client = app_with()
    auth = app.extensions["otel_monitor.analytics"]
    assert auth.enabled and auth.generated_token
    token = auth.token
    assert len(token) >= 32
    # Logged at the first request, as a URL on the server's own address (not the Host header).
    assert not [r for r in caplog.records if token in r.getMessage()]
    client.get("/", headers={"Host": "evil.example"})
    lines = [r.getMessage() for r in caplog.records if token in r.getMessage()]
    assert len(lines) == 1
    assert f"Open http://localhost{PREFIX}/?token={token} " in lines[0]
    # Not open: the token is needed.
    assert client.get(PREFIX + "/performance").status_code == 401
    assert client.get(PREFIX + "/performance", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(PREFIX + f"/performance?token={token}").status_code == 200
    # The demo's printed URLs carry it (printed, not logged).
    assert any(line.endswith(f"{PREFIX}/?token={token}") for line in monitor.describe_urls("http://h"))
    # No further log line repeats it, whatever requests come.
    client.get(PREFIX + f"/performance?token={token}")
    client.get(PREFIX + "/performance?token=wrong")
    assert len([r for r in caplog.records if token in r.getMessage()]) == 1


def test_two_apps_get_different_generated_tokens(app_with):
    first = app_with()[0].extensions["otel_monitor.analytics"].token
    second = app_with()[0].extensions["otel_monitor.analytics"].token
    assert first != second


def test_auth_off_opens_it(app_with, caplog):
    caplog.set_level(logging.WARNING)
    app, monitor, client = app_with(analytics_auth=False)
    for path in ENDPOINTS:
        assert client.get(PREFIX + path).status_code == 200, path
    assert any("authentication is OFF" in r.getMessage() for r in caplog.records)
    assert app.extensions["otel_monitor.analytics"].token is None


def test_health_is_public_by_default_without_the_system_details(app_with):
    app, monitor, client = app_with(analytics_token=TOKEN)
    public = client.get(PREFIX + "/health")
    assert public.status_code == 200
    assert "system" not in public.get_json()
    assert "system" in client.get(PREFIX + "/health", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()


def test_throttled_after_repeated_failures(app_with):
    app, monitor, client = app_with(analytics_username="admin", analytics_password=PASSWORD)
    for _ in range(MAX_FAILURES):
        assert client.get(PREFIX + "/performance", headers=basic("admin", "guess")).status_code == 401
    throttled = client.get(PREFIX + "/performance", headers=basic("admin", PASSWORD))
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 300
    assert throttled.headers["Cache-Control"] == "no-store"
    # Another client is not affected.
    other = client.get(
        PREFIX + "/performance", headers=basic("admin", PASSWORD), environ_base={"REMOTE_ADDR": "10.0.0.2"}
    )
    assert other.status_code == 200


def test_throttle_window_expires():
    auth = Auth(resolve_settings({"analytics_token": TOKEN}, environ={}), b"k" * 32)
    for i in range(MAX_FAILURES):
        assert auth.retry_after("1.2.3.4", now=1000.0 + i) is None
        auth.record_failure("1.2.3.4", now=1000.0 + i)
    assert auth.retry_after("1.2.3.4", now=1010.0) == pytest.approx(290.0)
    assert auth.retry_after("1.2.3.4", now=1301.0) is None  # the oldest failure left the 5 minutes


def test_tracked_clients_are_bounded():
    from otel_monitor.analytics import auth as auth_module

    auth = Auth(resolve_settings({"analytics_token": TOKEN}, environ={}), b"k" * 32)
    for i in range(auth_module.MAX_TRACKED_CLIENTS + 500):
        auth.record_failure(f"10.{i}", now=1.0)
    assert auth.throttle.tracked_clients() == auth_module.MAX_TRACKED_CLIENTS


def test_non_ascii_password(app_with):
    password = "pässwörd-密码-🔑"
    app, monitor, client = app_with(analytics_username="zoë", analytics_password=password)
    assert client.get(PREFIX + "/performance", headers=basic("zoë", password)).status_code == 200
    assert client.get(PREFIX + "/performance", headers=basic("zoë", "passwörd-密码-🔑")).status_code == 401
    assert client.get(PREFIX + "/performance", headers={"Authorization": "Bearer ünïcödé"}).status_code == 401
    assert client.get(PREFIX + "/performance?token=密码").status_code == 401
    auth = app.extensions["otel_monitor.analytics"]
    assert auth.check_login("zoë", password, "")
    assert not auth.check_login("zoë", "x" * 100_000, "")  # long input is capped, not a crash
    # An old browser sending Latin-1 still gets in when the password is Latin-1 representable.
    app2, monitor2, client2 = app_with(analytics_username="zoë", analytics_password="pässwörd")
    assert client2.get(PREFIX + "/performance", headers=basic("zoë", "pässwörd", "latin-1")).status_code == 200


@pytest.mark.parametrize(
    "settings, named",
    [({"analytics_username": "admin"}, "analytics_password"), ({"analytics_password": "secret"}, "analytics_username")],
)
def test_a_username_without_a_password_is_a_start_up_error(settings, named):
    with pytest.raises(SettingsError, match=named):
        build_app(**settings)


def test_the_prefix_cannot_be_the_root():
    with pytest.raises(SettingsError, match="analytics_prefix"):
        build_app(analytics_prefix="/", analytics_token=TOKEN)


def test_username_and_password_from_the_environment(monkeypatch, app_with):
    monkeypatch.setenv("MONITORING_USERNAME", "ops")
    monkeypatch.setenv("MONITORING_PASSWORD", PASSWORD)
    app, monitor, client = app_with()
    assert app.extensions["otel_monitor.analytics"].token is None  # credentials given: nothing generated
    assert client.get(PREFIX + "/performance", headers=basic("ops", PASSWORD)).status_code == 200


def test_session_cookie_from_the_token_link(app_with):
    app, monitor, client = app_with(analytics_token=TOKEN, analytics_secret_key="s" * 32)
    response = client.get(PREFIX + f"/?token={TOKEN}", headers={"Accept": "text/html"})
    assert response.status_code in (302, 303)
    assert "token=" not in response.headers["Location"]
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE_NAME + "=")
    for attribute in ("HttpOnly", "SameSite=Strict", f"Path={PREFIX}", "Max-Age=43200"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http
    # The cookie alone now authenticates the API.
    assert client.get(PREFIX + "/performance").status_code == 200
    client.delete_cookie(COOKIE_NAME, path=PREFIX)
    assert client.get(PREFIX + "/performance").status_code == 401


def test_html_requests_to_pages_are_sent_to_the_login_page(app_with):
    app, monitor, client = app_with(analytics_token=TOKEN)
    response = client.get(PREFIX + "/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code in (302, 303)
    assert response.headers["Location"].startswith(PREFIX + "/login")
    assert client.get(PREFIX + "/performance", headers={"Accept": "text/html"}).status_code == 401  # API: no redirect


def _request(app: Flask, path: str = "/", **kwargs):
    return app.test_request_context(path, **kwargs)


def test_session_and_csrf_primitives():
    settings = resolve_settings({"analytics_token": TOKEN}, environ={})
    auth = Auth(settings, b"k" * 32)
    app = Flask("x")
    with _request(app, base_url="https://monitor.example") as ctx:
        response = app.response_class("")
        auth.issue_session(response, ctx.request)
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        value = cookie.split(";")[0].split("=", 1)[1]
    headers = {"Cookie": f"{COOKIE_NAME}={value}"}
    with _request(app, headers=headers) as ctx:
        assert auth.authenticate(ctx.request)
        token = auth.csrf_token(ctx.request)
    with _request(
        app, method="POST", headers={**headers, "Origin": "http://localhost"}, data={"csrf_token": token}
    ) as ctx:
        assert auth.verify_csrf(ctx.request)
    with _request(app, method="POST", headers={**headers, "X-CSRF-Token": token}) as ctx:
        assert auth.verify_csrf(ctx.request)
    with _request(
        app, method="POST", headers={**headers, "Origin": "http://evil.example"}, data={"csrf_token": token}
    ) as ctx:
        assert not auth.verify_csrf(ctx.request)
    with _request(
        app, method="POST", headers={**headers, "Referer": "http://evil.example/x"}, data={"csrf_token": token}
    ) as ctx:
        assert not auth.verify_csrf(ctx.request)
    with _request(app, method="POST", headers=headers, data={"csrf_token": "0" * 64}) as ctx:
        assert not auth.verify_csrf(ctx.request)
    # Another session's token does not fit this session.
    with _request(app, method="POST", headers={"Cookie": f"{COOKIE_NAME}=forged"}, data={"csrf_token": token}) as ctx:
        assert not auth.authenticate(ctx.request)
        assert not auth.verify_csrf(ctx.request)
    # Before login (no session): a signed token for the login form.
    with _request(app) as ctx:
        login_token = auth.csrf_token(ctx.request)
    with _request(app, method="POST", data={"csrf_token": login_token}) as ctx:
        assert auth.verify_csrf(ctx.request)
    # A session signed with another key is refused.
    other = Auth(settings, b"o" * 32)
    with _request(app, headers=headers) as ctx:
        assert not other.authenticate(ctx.request)
    # Clearing the session expires the cookie.
    with _request(app) as ctx:
        response = app.response_class("")
        auth.clear_session(response, ctx.request)
        assert (
            "Max-Age=0" in response.headers["Set-Cookie"]
            or "Expires=Thu, 01 Jan 1970" in response.headers["Set-Cookie"]
        )


def test_secret_key_comes_from_the_setting_then_the_app(caplog):
    from otel_monitor.analytics.auth import resolve_secret_key

    settings = resolve_settings({"analytics_token": TOKEN, "analytics_secret_key": "from-setting"}, environ={})
    app = Flask("x")
    app.secret_key = "from-app"
    assert resolve_secret_key(settings, app) == b"from-setting"
    assert resolve_secret_key(resolve_settings({"analytics_token": TOKEN}, environ={}), app) == b"from-app"
    assert resolve_secret_key(resolve_settings({"analytics_token": TOKEN}, environ={}), Flask("y")) is None
    caplog.set_level(logging.INFO)
    auth = Auth(resolve_settings({"analytics_token": TOKEN}, environ={}), None)
    auth.log_startup()
    auth.log_startup()
    hints = [r for r in caplog.records if "random key made at start-up" in r.getMessage()]
    assert len(hints) == 1


def test_secrets_never_appear_in_logs_spans_or_metrics(app_with, caplog):
    caplog.set_level(logging.DEBUG)
    secret_key = "secret-key-" + "k" * 24
    app, monitor, client = app_with(
        analytics_username="admin",
        analytics_password=PASSWORD,
        analytics_token=TOKEN,
        analytics_secret_key=secret_key,
        metrics_target_info=True,
    )
    telemetry = Telemetry(monitor)
    client.get(PREFIX + "/performance", headers=basic("admin", PASSWORD))
    client.get(PREFIX + "/performance", headers={"Authorization": f"Bearer {TOKEN}"})
    client.get(PREFIX + f"/performance?token={TOKEN}")
    client.get(PREFIX + "/performance", headers=basic("admin", PASSWORD + "x"))
    client.get("/fail", headers={"Authorization": f"Bearer {TOKEN}"})
    exposition = client.get("/metrics").get_data(as_text=True)
    as_json = client.get(PREFIX + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    traces = client.get(PREFIX + "/traces", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    spans = repr([(s.name, dict(s.attributes), s.events) for s in telemetry.spans()])
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    doctor = repr(monitor.settings.masked())
    for secret in (PASSWORD, TOKEN, secret_key):
        for where, text in (
            ("log", logged),
            ("/metrics", exposition),
            ("metrics json", as_json),
            ("traces", traces),
            ("spans", spans),
            ("masked settings", doctor),
        ):
            assert secret not in text, (secret, where)
    assert "REDACTED" in spans  # ?token= is redacted in url.query
