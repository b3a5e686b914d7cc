"""The dashboard's page routes (Flask test client): security headers, login/logout with CSRF and
throttling, cookie flags, static files (path traversal), and what the page's HTML/JS/CSS may
contain (no inline script or style, no innerHTML, nothing from another origin)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from otel_monitor.analytics.auth import COOKIE_NAME, MAX_FAILURES
from otel_monitor.analytics.dashboard import CONTENT_SECURITY_POLICY, STATIC_DIR, TEMPLATES_DIR
from otel_monitor.testing import closing_client

from .conftest import ROOT

PREFIX = "/otel-monitor"
USER = "admin"
PASSWORD = "correct horse battery staple"
TOKEN = "dashboard-token-abcdefghijklmnop"
HTML = {"Accept": "text/html,application/xhtml+xml"}
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@pytest.fixture
def make(monitors):
    def make_app(**settings):
        settings.setdefault("analytics_username", USER)
        settings.setdefault("analytics_password", PASSWORD)
        app, monitor = monitors.app(**settings)
        monitor.pipeline.scheduler.stop()
        return app, closing_client(app)

    return make_app


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field in the form"
    return match.group(1)


def login(client, username=USER, password=PASSWORD, token="", base_url="http://localhost", **extra):
    form = client.get(PREFIX + "/login", base_url=base_url)
    assert form.status_code == 200
    data = {
        "csrf_token": csrf_of(form.get_data(as_text=True)),
        "username": username,
        "password": password,
        "token": token,
        **extra,
    }
    return client.post(PREFIX + "/login", data=data, base_url=base_url)


def assert_security_headers(response, where: str, cache_control: str = "no-store") -> None:
    assert response.headers["Content-Security-Policy"] == EXPECTED_CSP, where
    assert response.headers["X-Content-Type-Options"] == "nosniff", where
    assert response.headers["Cache-Control"] == cache_control, where
    assert response.headers["Referrer-Policy"] == "same-origin", where
    assert response.headers["X-Frame-Options"] == "DENY", where
    if cache_control == "no-store":  # static files are the same with a session or without
        assert "Cookie" in response.headers.get("Vary", ""), where


def set_cookie_header(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE_NAME + "=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


# -- the page and the redirect to the login page ------------------------------------------------


def test_constant_matches_the_required_policy():
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


def test_unauthenticated_page_redirects_to_the_login_form(make):
    app, client = make()
    response = client.get(PREFIX + "/", headers=HTML)
    assert response.status_code in (302, 303)
    assert response.headers["Location"].startswith(PREFIX + "/login")
    form = client.get(response.headers["Location"])
    assert form.status_code == 200
    assert form.mimetype == "text/html"
    assert_security_headers(form, "login form")
    html = form.get_data(as_text=True)
    assert 'name="username"' in html and 'name="password"' in html and 'name="csrf_token"' in html
    assert 'name="next" value="/otel-monitor/"' in html


def test_page_without_credentials_and_without_html_accept_is_401(make):
    app, client = make()
    assert client.get(PREFIX + "/").status_code == 401


def test_the_pages_fetches_get_a_challenge_browsers_do_not_prompt_for(make):
    app, client = make()
    plain = client.get(PREFIX + "/performance")
    assert plain.status_code == 401
    assert plain.headers["WWW-Authenticate"].startswith("Basic ")  # curl, scripts: unchanged
    from_page = client.get(PREFIX + "/performance", headers={"X-Requested-With": "otel-monitor-dashboard"})
    assert from_page.status_code == 401
    assert from_page.headers["WWW-Authenticate"] == 'Bearer realm="otel_monitor"'
    js = (STATIC_DIR / "js" / "ui" / "api.js").read_text()  # the page's one fetch wrapper
    assert '"X-Requested-With": "otel-monitor-dashboard"' in js


def test_page_headers_and_shell(make):
    app, client = make()
    assert login(client).status_code == 303
    response = client.get(PREFIX + "/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert_security_headers(response, "page")
    html = response.get_data(as_text=True)
    assert f'data-api="{PREFIX}"' in html
    assert 'data-refresh-s="30"' in html
    assert f'data-login-url="{PREFIX}/login"' in html
    assert re.search(rf'src="{PREFIX}/static/[0-9a-f]{{12}}/dashboard.js"', html)
    assert re.search(rf'href="{PREFIX}/static/[0-9a-f]{{12}}/dashboard.css"', html)
    for view in ("overview", "endpoints", "system", "traces", "custom"):
        assert f'href="#{view}"' in html
    assert f'href="{PREFIX}/export?format=csv&amp;window=15m"' in html
    assert f'action="{PREFIX}/logout"' in html


class _Audit(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block, and every URL the markup loads."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.style_elements = 0
        self.style_attributes: list = []
        self.event_handlers: list = []
        self.urls: list = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in attrs
        if tag == "style":
            self.style_elements += 1
        if "style" in attrs:
            self.style_attributes.append(tag)
        self.event_handlers += [name for name in attrs if name.startswith("on")]
        for name in ("src", "href", "action"):
            if attrs.get(name):
                self.urls.append(attrs[name])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1


@pytest.mark.parametrize("which", ["page", "login"])
def test_markup_has_no_inline_script_style_or_foreign_urls(make, which):
    app, client = make()
    if which == "page":
        login(client)
        html = client.get(PREFIX + "/").get_data(as_text=True)
    else:
        html = client.get(PREFIX + "/login").get_data(as_text=True)
    audit = _Audit()
    audit.feed(html)
    assert audit.inline_scripts == 0
    assert audit.style_elements == 0
    assert audit.style_attributes == []
    assert audit.event_handlers == []
    for url in audit.urls:
        assert url.startswith(("/", "#")), url  # same origin only: no CDN, nothing from the internet


@pytest.mark.parametrize("name", sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*.js")))
def test_static_assets_contain_no_html_injection_sinks_or_foreign_urls(name):
    # Every script of the page: the entry module, its ui/ and views/ modules, fleet.js.
    source = (STATIC_DIR / name).read_text()
    js = re.sub(r"^\s*//.*$", "", re.sub(r"/\*.*?\*/", "", source, flags=re.S), flags=re.M)  # code, not comments
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("style"',
        "cssText",
        "javascript:",
    ):
        assert sink not in js, (name, sink)
    # The page fetches only through ui/api.js (fleet.js wraps that same fetch): same-origin credentials.
    if re.search(r"\bfetch\(", js):
        assert name in ("js/ui/api.js", "fleet.js"), name
        assert 'credentials: "same-origin"' in js, name
    everything = (
        source + (STATIC_DIR / "dashboard.css").read_text() + "".join(p.read_text() for p in TEMPLATES_DIR.iterdir())
    )
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", everything))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace is a name, not a fetch
    assert "@import" not in everything


# -- login and logout ----------------------------------------------------------------------------


def test_login_sets_a_strict_http_only_session_cookie_and_logout_clears_it(make):
    app, client = make()
    response = login(client)
    assert response.status_code == 303
    assert response.headers["Location"] == PREFIX + "/"
    assert_security_headers(response, "login POST")
    cookie = set_cookie_header(response)
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    assert f"path={PREFIX}" in flags

    page = client.get(PREFIX + "/")
    assert page.status_code == 200
    token = csrf_of(page.get_data(as_text=True))
    # The JSON API accepts the session too (what the page's fetch() calls rely on).
    assert client.get(PREFIX + "/performance").status_code == 200

    response = client.post(PREFIX + "/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == PREFIX + "/login"
    assert_security_headers(response, "logout")
    cleared = set_cookie_header(response)
    assert "Max-Age=0" in cleared or "Expires=Thu, 01 Jan 1970" in cleared
    after = client.get(PREFIX + "/", headers=HTML)
    assert after.status_code in (302, 303)
    assert client.get(PREFIX + "/performance").status_code == 401


def test_cookie_is_secure_on_https(make):
    app, client = make()
    response = login(client, base_url="https://localhost")
    assert response.status_code == 303
    flags = [part.strip().lower() for part in set_cookie_header(response).split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags


def test_login_without_csrf_token_is_403(make):
    app, client = make()
    response = client.post(PREFIX + "/login", data={"username": USER, "password": PASSWORD})
    assert response.status_code == 403
    assert_security_headers(response, "403 login")
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")
    assert 'name="csrf_token"' in response.get_data(as_text=True)  # the form again, with a fresh token


def test_login_with_a_forged_csrf_token_is_403(make):
    app, client = make()
    response = client.post(
        PREFIX + "/login", data={"username": USER, "password": PASSWORD, "csrf_token": "ImxvZ2luIg.forged.signature"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "header", [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Referer": "https://evil.example/page"}]
)
def test_login_from_a_foreign_origin_is_403(make, header):
    app, client = make()
    token = csrf_of(client.get(PREFIX + "/login").get_data(as_text=True))
    response = client.post(
        PREFIX + "/login", data={"csrf_token": token, "username": USER, "password": PASSWORD}, headers=header
    )
    assert response.status_code == 403
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")


def test_login_from_our_own_origin_is_accepted(make):
    app, client = make()
    token = csrf_of(client.get(PREFIX + "/login").get_data(as_text=True))
    response = client.post(
        PREFIX + "/login",
        data={"csrf_token": token, "username": USER, "password": PASSWORD},
        headers={"Origin": "http://localhost"},
    )
    assert response.status_code == 303


def test_logout_needs_the_csrf_token_and_our_origin(make):
    app, client = make()
    login(client)
    token = csrf_of(client.get(PREFIX + "/").get_data(as_text=True))
    assert client.post(PREFIX + "/logout").status_code == 403
    refused = client.post(PREFIX + "/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert_security_headers(refused, "403 logout")
    assert client.get(PREFIX + "/").status_code == 200  # still logged in


def test_wrong_password_is_401_with_the_form_and_escaped_input(make):
    app, client = make()
    response = login(client, username="<script>alert(1)</script>", password="nope")
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Wrong user name, password or token." in html
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")


def test_repeated_failures_are_throttled_with_429(make):
    app, client = make()
    for _ in range(MAX_FAILURES):
        assert login(client, password="wrong").status_code == 401
    response = login(client)  # even the right password waits now
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")


def test_token_login(make):
    app, client = make(analytics_username=None, analytics_password=None, analytics_token=TOKEN)
    html = client.get(PREFIX + "/login").get_data(as_text=True)
    assert 'name="token"' in html and 'name="password"' not in html
    assert login(client, username="", password="", token="wrong").status_code == 401
    response = login(client, username="", password="", token=TOKEN)
    assert response.status_code == 303
    assert client.get(PREFIX + "/").status_code == 200


@pytest.mark.parametrize(
    "next_, expected",
    [
        (PREFIX + "/#ignored", PREFIX + "/#ignored"),
        (PREFIX + "/?window=5m", PREFIX + "/?window=5m"),
        ("https://evil.example/", PREFIX + "/"),
        ("//evil.example/", PREFIX + "/"),
        ("/\\evil.example", PREFIX + "/"),
        (PREFIX + "/../../elsewhere", PREFIX + "/"),
        ("/other-app", PREFIX + "/"),
        ("", PREFIX + "/"),
    ],
)
def test_next_only_leads_to_the_dashboard(make, next_, expected):
    app, client = make()
    response = login(client, next=next_)
    assert response.status_code == 303
    assert response.headers["Location"] == expected


def test_login_page_when_logged_in_goes_to_the_page(make):
    app, client = make()
    login(client)
    response = client.get(PREFIX + "/login")
    assert response.status_code == 303
    assert response.headers["Location"] == PREFIX + "/"


def test_auth_off_serves_the_page_without_login(make):
    app, client = make(analytics_username=None, analytics_password=None, analytics_auth=False)
    response = client.get(PREFIX + "/")
    assert response.status_code == 200
    assert_security_headers(response, "page, auth off")
    html = response.get_data(as_text=True)
    assert 'data-auth="off"' in html and "/logout" not in html
    assert client.get(PREFIX + "/login").status_code == 303


def test_custom_prefix(make):
    app, client = make(analytics_prefix="/professional-analytics")
    form = client.get("/professional-analytics/login")
    assert form.status_code == 200
    response = client.post(
        "/professional-analytics/login",
        data={"csrf_token": csrf_of(form.get_data(as_text=True)), "username": USER, "password": PASSWORD},
    )
    assert response.headers["Location"] == "/professional-analytics/"
    html = client.get("/professional-analytics/").get_data(as_text=True)
    assert 'data-api="/professional-analytics"' in html


# -- refresh interval ----------------------------------------------------------------------------


@pytest.mark.parametrize("value, shown", [("5", "5"), ("2.5", "2.5"), ("0", "30"), ("soon", "30")])
def test_refresh_interval_from_the_environment(make, monkeypatch, value, shown):
    monkeypatch.setenv("OTEL_MONITOR_DASHBOARD_REFRESH_S", value)
    try:
        app, client = make()
    except Exception:  # noqa: BLE001 - the settings row, once added, refuses a bad value at start-up: also fine
        assert shown == "30"
        return
    login(client)
    assert f'data-refresh-s="{shown}"' in client.get(PREFIX + "/").get_data(as_text=True)


# -- static files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, mimetype",
    [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_static_files_are_public_with_headers_and_types(make, name, mimetype):
    app, client = make()
    response = client.get(f"{PREFIX}/static/{name}")  # no credentials: the login page needs the CSS
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.get_data() == (STATIC_DIR / name).read_bytes()
    assert_security_headers(response, name, cache_control="no-cache")  # caching: tests/test_static_caching.py


@pytest.mark.parametrize(
    "path",
    [
        "../dashboard.py",
        "..%2fdashboard.py",
        "%2e%2e%2fdashboard.py",
        "%2E%2E%2Fauth.py",
        "%2e%2e/%2e%2e/settings.py",
        "..%5cdashboard.py",
        "%5c..%5cdashboard.py",
        "..\\dashboard.py",
        "dashboard.css%00",
        "dashboard.css%00.py",
        "%00",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "C:%5cWindows%5cwin.ini",
        "x/../dashboard.css",
        "./dashboard.css",
        "../templates/dashboard.html",
        "..;/dashboard.py",
        "nonexistent.js",
        "DASHBOARD.JS",
        "",
    ],
)
def test_static_path_traversal_is_404(make, path):
    app, client = make()
    login(client)  # authenticated: a refusal is about the path, not the credentials
    # (Werkzeug first merges '//' with a 308 redirect; wherever that leads must be a 404 too.)
    response = client.get(f"{PREFIX}/static/{path}", follow_redirects=True)
    assert response.status_code == 404, (path, response.status_code)
    assert b"import" not in response.get_data()  # no Python source leaked


def test_static_404_has_the_security_headers(make):
    app, client = make()
    response = client.get(f"{PREFIX}/static/nonexistent.js")
    assert response.status_code == 404
    assert_security_headers(response, "static 404")


# -- the example app -----------------------------------------------------------------------------


def test_example_app_serves_the_dashboard_at_slash_dashboard(monkeypatch):
    import importlib.util

    monkeypatch.setenv("OTEL_MONITOR_SYSTEM_METRICS", "false")
    monkeypatch.setenv("MONITORING_USERNAME", USER)
    monkeypatch.setenv("MONITORING_PASSWORD", PASSWORD)
    spec = importlib.util.spec_from_file_location("example_app_for_dashboard", Path(ROOT) / "examples" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    try:
        response = closing_client(app).get("/dashboard")
        assert response.status_code in (301, 302, 303, 307, 308)
        assert response.headers["Location"] == "/professional-analytics/"
    finally:
        app.extensions["otel_monitor"].shutdown(timeout=2)


def test_the_dashboard_routes_are_one_table_of_module_level_views_marked_page_or_public():
    import dataclasses

    from flask import Blueprint, Flask

    from otel_monitor.analytics.dashboard import ROUTES, DashboardContext, register_dashboard
    from otel_monitor.settings import resolve_settings

    class NoAuth:  # what the dashboard reads of Auth when authentication is off
        enabled = False
        token = None

    app = Flask("routes_table")
    bp = Blueprint("analytics", __name__, url_prefix=PREFIX)
    ctx = register_dashboard(bp, NoAuth(), resolve_settings({"service_name": "shop"}, environ={}))  # type: ignore[arg-type]
    app.register_blueprint(bp)
    registered = {
        (rule.rule, next(iter(rule.methods - {"HEAD", "OPTIONS"})), rule.endpoint) for rule in app.url_map.iter_rules()
    }
    assert registered - {("/static/<path:filename>", "GET", "static")} == {
        (PREFIX + rule, method, f"analytics.{endpoint}") for rule, endpoint, _, method, _ in ROUTES
    }
    for _, endpoint, _, _, access in ROUTES:
        view = app.view_functions[f"analytics.{endpoint}"]
        assert getattr(view, "_otel_monitor_page", False) is (access == "page")
        assert getattr(view, "_otel_monitor_public", False) is (access == "public")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.service = "other"  # type: ignore[misc]
    assert isinstance(ctx, DashboardContext) and ctx.service == "shop" and not ctx.history
    page = closing_client(app).get(PREFIX + "/")
    assert page.status_code == 200 and page.headers["Content-Security-Policy"] == EXPECTED_CSP
