"""The built-in dashboard: one HTML page plus our own CSS and JS, served by the analytics blueprint.

``register_dashboard(bp, auth, settings)`` adds the routes of :data:`ROUTES` to the analytics
blueprint (mounted at ``analytics_prefix``): module-level views, each taking the blueprint's
:class:`DashboardContext` (built once, frozen), as the JSON views of :mod:`.blueprint` do:

* ``GET  <prefix>/``               the page; a browser without credentials is sent to the login page
* ``GET  <prefix>/login``          a small login form (user name and password, or the access token)
* ``POST <prefix>/login``          CSRF check, throttling (429), then a session cookie (or 401)
* ``POST <prefix>/logout``         CSRF check, then the session cookie is cleared
* ``GET  <prefix>/static/<version>/<name>``  the page's CSS, JS and icon: only files shipped in
  ``static/``. The pages link them under ``<version>``, a hash of their content, so a browser keeps
  them for a year (``immutable``) and an upgrade changes the URL. Any other version, or none
  (``<prefix>/static/<name>``), gets the current file with ``no-cache``: a browser revalidates
  it (ETag, the file's content hash; Last-Modified) and gets ``304 Not Modified`` while it holds it.

The page is a shell: ``static/dashboard.js`` fetches the JSON API (docs/analytics-api.md) and draws
everything in the browser with ``textContent`` and hand-written SVG. No build step, no CDN, no
third-party code. Every response of these routes (errors too) carries a Content-Security-Policy
without inline script or style, ``nosniff``, ``no-store`` (static files: the caching above), a
``same-origin`` referrer policy and ``Vary: Cookie`` (see :data:`SECURITY_HEADERS`).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from flask import Blueprint, Request, abort, make_response, redirect, request, send_from_directory, url_for
from jinja2 import Environment, FileSystemLoader
from werkzeug.wrappers import Response as BaseResponse

from .auth import page, public

if TYPE_CHECKING:
    from ..monitor import Monitor
    from ..settings import Settings

__all__ = [
    "register_dashboard",
    "DashboardAuth",
    "DashboardContext",
    "ROUTES",
    "SECURITY_HEADERS",
    "CONTENT_SECURITY_POLICY",
    "STATIC_DIR",
    "FETCH_MARKER",
]

_HERE = Path(__file__).resolve().parent
STATIC_DIR = _HERE / "static"
TEMPLATES_DIR = _HERE / "templates"


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

#: on the page, the login form and static files. The referrer policy is ``same-origin``, not
#: ``no-referrer``: under ``no-referrer`` browsers send ``Origin: null`` with the login and logout
#: form POSTs, which the CSRF check (``Auth.verify_csrf``) must refuse. ``same-origin`` sends no
#: referrer to any other origin either (trace links also carry ``rel="noreferrer"``).
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: served with an explicit type (nosniff needs the right one; the system's mime table may lack .svg)
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}

#: sent by dashboard.js with every API call (``X-Requested-With``)
FETCH_MARKER = "otel-monitor-dashboard"
#: a version segment of a static URL (see :func:`asset_version`); others are not static URLs
_VERSION = re.compile(r"[0-9a-f]{12}")
#: the versioned URL's content never changes: the browser need not even revalidate it
_CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
_CACHE_REVALIDATE = "no-cache"
_WINDOWS_SHORT = ("1m", "5m", "15m")
_WINDOWS_HISTORY = ("1h", "6h", "24h", "7d")
#: the response flag :func:`mark_cacheable` sets
_CACHEABLE = "otel_monitor_cacheable"


class DashboardAuth(Protocol):
    """What the dashboard's views use of :class:`~otel_monitor.analytics.auth.Auth`."""

    @property
    def enabled(self) -> bool: ...
    @property
    def token(self) -> str | None: ...

    def authenticate(self, request: Request) -> bool: ...
    def check_login(self, username: str, password: str, token: str) -> bool: ...
    def client_key(self, request: Request) -> str: ...
    def retry_after(self, client_key: str) -> float | None: ...
    def record_failure(self, client_key: str) -> None: ...
    def record_success(self, client_key: str) -> None: ...
    def issue_session(self, response: BaseResponse, request: Request) -> None: ...
    def clear_session(self, response: BaseResponse, request: Request) -> None: ...
    def csrf_token(self, request: Request) -> str: ...
    def verify_csrf(self, request: Request) -> bool: ...


# -- the context every view reads ------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardContext:
    """What the dashboard's views of one monitored app need: built once per blueprint."""

    auth: DashboardAuth
    templates: Environment
    #: the files of ``static/`` (and its ``js/`` modules) that are ever served, by relative path
    static_files: frozenset[str]
    #: file -> ETag (its content's hash)
    etags: Mapping[str, str]
    #: the static files' version segment (:func:`asset_version`)
    version: str
    refresh_s: float
    #: ``analytics_source=prometheus``: the page loads the fleet view
    fleet: bool
    #: the long windows are offered (a history database, or Prometheus)
    history: bool
    service: str
    #: a user name and password are configured (the login form asks for them)
    has_password: bool
    slow_ms: float

    @classmethod
    def build(cls, settings: Settings, auth: DashboardAuth) -> DashboardContext:
        templates = Environment(
            loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True, trim_blocks=True, lstrip_blocks=True
        )
        # Only files shipped in static/ (and its js/ modules) are ever served, by their path relative to
        # it ("js/format.js"): the set is fixed when the blueprint is built.
        static_files = frozenset(
            p.relative_to(STATIC_DIR).as_posix()
            for p in STATIC_DIR.rglob("*")
            if p.is_file() and p.suffix in _STATIC_TYPES
        )
        etags = {name: _digest((STATIC_DIR / name).read_bytes()) for name in static_files}
        # Read with defaults: the dashboard's own tests register it over canned settings objects.
        fleet = getattr(settings, "analytics_source", "memory") == "prometheus"
        return cls(
            auth=auth,
            templates=templates,
            static_files=static_files,
            etags=etags,
            version=asset_version(etags),
            refresh_s=float(settings.dashboard_refresh_s),
            fleet=fleet,
            history=bool(getattr(settings, "analytics_db", None)) or fleet,  # Prometheus keeps the long windows
            service=getattr(settings, "service_name", None) or "",
            has_password=bool(getattr(settings, "analytics_username", None)),
            slow_ms=float(getattr(settings, "analytics_slow_ms", 500.0)),
        )


# -- helpers of the views --------------------------------------------------------------------------


def _endpoint_url(name: str) -> str:
    return url_for(f"{request.blueprint}.{name}")


def _html(ctx: DashboardContext, template: str, status: int = 200, **context: object) -> BaseResponse:
    context.setdefault("static_url", _endpoint_url("dashboard_page") + "static/" + ctx.version)
    body = ctx.templates.get_template(template).render(service=ctx.service, **context)
    response = make_response(body, status)
    response.mimetype = "text/html"
    return response


def _next_url(value: object) -> str:
    """Where to go after logging in: ``next`` when it is a page of this dashboard, else the page."""
    page_url = _endpoint_url("dashboard_page")
    text = value if isinstance(value, str) else ""
    if (
        len(text) <= 2000
        and text.startswith(page_url)
        and not text.startswith("//")
        and "\\" not in text
        and ".." not in text
        and "%2e" not in text.lower()
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
    ):
        return text
    return page_url


def _login_form(
    ctx: DashboardContext, status: int = 200, message: str = "", username: str = "", next_: str = ""
) -> BaseResponse:
    auth = ctx.auth
    return _html(
        ctx,
        "login.html",
        status,
        csrf_token=auth.csrf_token(request),
        message=message,
        username=username,
        show_password=ctx.has_password or not auth.token,
        show_token=bool(auth.token),
        action=_endpoint_url("dashboard_login"),
        next=_next_url(next_),
    )


# -- the views -------------------------------------------------------------------------------------


def dashboard_page(ctx: DashboardContext) -> BaseResponse:
    # The blueprint's guard already sends browsers without credentials to the login page (and
    # swaps a ?token= login link for a session cookie); this is the second line.
    auth = ctx.auth
    if auth.enabled and not auth.authenticate(request):
        return redirect(_endpoint_url("dashboard_login"), 303)
    base = _endpoint_url("dashboard_page")
    windows = _WINDOWS_SHORT + (_WINDOWS_HISTORY if ctx.history else ())
    return _html(
        ctx,
        "dashboard.html",
        api=base.rstrip("/"),
        refresh_s=f"{ctx.refresh_s:g}",
        history="true" if ctx.history else "false",
        slow_ms=f"{ctx.slow_ms:g}",
        auth_enabled=bool(auth.enabled),
        login_url=_endpoint_url("dashboard_login"),
        logout_url=_endpoint_url("dashboard_logout"),
        csrf_token=auth.csrf_token(request) if auth.enabled else "",
        windows=windows,
        fleet=ctx.fleet,
    )


def dashboard_login(ctx: DashboardContext) -> BaseResponse:
    auth = ctx.auth
    if not auth.enabled or (auth.authenticate(request) and "token" not in request.args):
        return redirect(_next_url(request.args.get("next")), 303)
    return _login_form(ctx, next_=request.args.get("next", ""))


def dashboard_login_submit(ctx: DashboardContext) -> BaseResponse:
    auth = ctx.auth
    if not auth.enabled:
        return redirect(_endpoint_url("dashboard_page"), 303)
    next_ = request.form.get("next", "")
    if not auth.verify_csrf(request):
        return _login_form(
            ctx, 403, "Your login form expired or came from another site. Please try again.", next_=next_
        )
    client = auth.client_key(request)
    wait = auth.retry_after(client)
    if wait is not None:
        response = _login_form(ctx, 429, "Too many failed attempts. Wait a few minutes, then try again.", next_=next_)
        response.headers["Retry-After"] = str(int(math.ceil(wait)))
        return response
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    token = request.form.get("token", "")
    if auth.check_login(username, password, token):
        auth.record_success(client)
        response = redirect(_next_url(next_), 303)
        auth.issue_session(response, request)
        return response
    auth.record_failure(client)
    return _login_form(ctx, 401, "Wrong user name, password or token.", username=username[:200], next_=next_)


def dashboard_logout(ctx: DashboardContext) -> BaseResponse:
    if not ctx.auth.verify_csrf(request):
        abort(403)
    response = redirect(_endpoint_url("dashboard_login"), 303)
    ctx.auth.clear_session(response, request)
    return response


def dashboard_static(ctx: DashboardContext, filename: str) -> BaseResponse:
    # The allow-list already rules out '..', '%2e%2e%2f' (decoded before routing), '\\', NUL and
    # absolute paths; send_from_directory's safe_join is the second line.
    # "<version>/<name>" or "<name>", where a name may sit in a subfolder ("js/format.js"): a
    # module's relative imports then resolve under the page's own version.
    given, _, name = filename.partition("/")
    if not (name and _VERSION.fullmatch(given)):
        given, name = "", filename
    if name not in ctx.static_files:
        abort(404)
    response = send_from_directory(str(STATIC_DIR), name, etag=ctx.etags[name], conditional=True)
    content_type = _STATIC_TYPES.get(os.path.splitext(name)[1])
    if content_type:
        response.headers["Content-Type"] = content_type
    # An old version (a page from before an upgrade) gets today's file, revalidated each time.
    response.headers["Cache-Control"] = _CACHE_IMMUTABLE if given == ctx.version else _CACHE_REVALIDATE
    mark_cacheable(response)
    return response


def dashboard_headers(response: BaseResponse) -> BaseResponse:
    """The blueprint's ``after_request``: the security headers on every response of :data:`ROUTES`."""
    if (request.endpoint or "").rpartition(".")[2] in _ENDPOINTS:
        # Every response of these views, errors included (403 from logout, 404 from static).
        secure(response)
    elif response.status_code == 401 and request.headers.get("X-Requested-With") == FETCH_MARKER:
        # The page's own fetch() calls: a Basic challenge would make the browser show its own
        # password dialog (and hold the request) when the session ends; a Bearer challenge is as
        # true (the API takes tokens) and browsers do not prompt for it, so the page sees the
        # 401 and goes to its login form.
        response.headers["WWW-Authenticate"] = 'Bearer realm="otel_monitor"'
    return response


#: (URL rule, endpoint name, view, method, who may call it): ``page`` is the HTML page (a browser
#: without credentials is sent to the login form), ``public`` needs no credentials
ROUTES: tuple[tuple[str, str, Callable[..., BaseResponse], str, str], ...] = (
    ("/", "dashboard_page", dashboard_page, "GET", "page"),
    ("/login", "dashboard_login", dashboard_login, "GET", "public"),
    ("/login", "dashboard_login_submit", dashboard_login_submit, "POST", "public"),
    ("/logout", "dashboard_logout", dashboard_logout, "POST", "public"),
    ("/static/<path:filename>", "dashboard_static", dashboard_static, "GET", "public"),
)
_ENDPOINTS = frozenset(endpoint for _, endpoint, _, _, _ in ROUTES)


def register_dashboard(
    bp: Blueprint, auth: DashboardAuth, settings: Settings, monitor: Monitor | None = None
) -> DashboardContext:
    """Add the dashboard's page, login/logout and static routes (:data:`ROUTES`) to the analytics
    blueprint ``bp``; returns the context they read. ``monitor`` is not read (kept for callers)."""
    ctx = DashboardContext.build(settings, auth)
    for rule, endpoint, view, method, access in ROUTES:
        handler = functools.partial(view, ctx)
        bp.add_url_rule(rule, endpoint, page(handler) if access == "page" else public(handler), methods=[method])
    bp.after_request(dashboard_headers)
    return ctx


# -- headers and static versions ---------------------------------------------------------------------


def secure(response: BaseResponse) -> BaseResponse:
    """Add the dashboard's security headers to ``response`` (and ``Vary: Cookie``); returns it."""
    cacheable = is_cacheable(response)
    for name, value in SECURITY_HEADERS.items():
        if not (cacheable and name == "Cache-Control"):
            response.headers[name] = value
    if not cacheable:  # a static file is the same for everyone, with a session or without
        response.vary.add("Cookie")
    return response


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:32]


def asset_version(etags: dict[str, str]) -> str:
    """One version for all static files (12 hex digits): changes when any file's content does."""
    joined = "".join(f"{name}={etags[name]};" for name in sorted(etags))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def mark_cacheable(response: BaseResponse) -> None:
    """Let ``response`` keep its own Cache-Control (the blueprint's ``no-store`` is for the API)."""
    setattr(response, _CACHEABLE, True)  # a flag on a response we made, read by the blueprint's after_request


def is_cacheable(response: BaseResponse) -> bool:
    return getattr(response, _CACHEABLE, False) is True
