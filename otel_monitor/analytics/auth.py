"""Access control for the analytics API and dashboard. No default credentials, ever.

Accepted, in this order (any one is enough):

* ``Authorization: Basic`` with ``MONITORING_USERNAME`` / ``MONITORING_PASSWORD`` (or any user
  name with the access token as the password, so a browser's Basic prompt works with a token);
* ``Authorization: Bearer <token>``;
* ``?token=<token>`` (the dashboard's login link; page requests exchange it for a session cookie);
* the signed session cookie ``otel_monitor_session`` issued by the dashboard's login form.

With nothing configured, a token is generated at start-up and logged once, as a URL (as
Jupyter does). ``OTEL_MONITOR_ANALYTICS_AUTH=off`` is the only way to open the analytics.

Every comparison is constant-time on UTF-8 bytes of capped length. Clients that fail
:data:`MAX_FAILURES` times within :data:`FAILURE_WINDOW_S` get 429 with ``Retry-After``, and so
does everyone once all clients together failed :data:`GLOBAL_FAILURES` times (an existing session
still works); the budgets are shared by the workers of a pre-fork group (:mod:`._throttle`).
A session cookie carries a tag of the credentials it was issued for (a password or token change
ends it) and logout revokes its id. No secret
is ever written to a log line (except the generated token's one start-up line), a span or a metric.

Usage (what the blueprint and the dashboard's login page do)::

    auth = Auth(settings, resolve_secret_key(settings, app))
    if auth.retry_after(auth.client_key(request)) is not None: ...   # 429
    if not auth.authenticate(request): auth.record_failure(...)        # 401
    if auth.verify_csrf(request) and auth.check_login(u, p, t): auth.issue_session(response, request)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from ..settings import Settings, SettingsError
from ._throttle import GLOBAL, MAX_TRACKED_CLIENTS, PER_CLIENT, WINDOW_S, Throttle

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.wrappers import Request, Response

__all__ = [
    "Auth",
    "resolve_secret_key",
    "validate_settings",
    "public",
    "page",
    "COOKIE_NAME",
    "MAX_FAILURES",
    "FAILURE_WINDOW_S",
    "GLOBAL_FAILURES",
    "MAX_TRACKED_CLIENTS",
    "SESSION_MAX_AGE_S",
]

_logger = logging.getLogger("otel_monitor")
#: a view function, returned as it was given (marked)
_View = TypeVar("_View", bound=Callable[..., object])

COOKIE_NAME = "otel_monitor_session"
SESSION_MAX_AGE_S = 12 * 3600
#: this many failed attempts from one client within FAILURE_WINDOW_S -> 429 (and GLOBAL_FAILURES
#: from all clients together: see _throttle)
MAX_FAILURES = PER_CLIENT
GLOBAL_FAILURES = GLOBAL
FAILURE_WINDOW_S = WINDOW_S
#: longest credential we look at (bytes); longer input is cut before any comparison
MAX_CREDENTIAL_BYTES = 1024
_SESSION_SALT = "otel_monitor.session"
_ANON_CSRF_SALT = "otel_monitor.csrf.anonymous"


def validate_settings(settings: Settings) -> None:
    """Start-up checks: a user name needs a password and the other way round; a real prefix."""
    if settings.analytics_prefix.rstrip("/") == "":
        raise SettingsError(
            "analytics_prefix: '/' would mount the analytics over the app's own URLs; use a path such as /otel-monitor"
        )
    if settings.analytics_username and not settings.analytics_password:
        raise SettingsError(
            "analytics_password: MONITORING_USERNAME (analytics_username) is set but "
            "MONITORING_PASSWORD (analytics_password) is not; set both or neither"
        )
    if settings.analytics_password and not settings.analytics_username:
        raise SettingsError(
            "analytics_username: MONITORING_PASSWORD (analytics_password) is set but "
            "MONITORING_USERNAME (analytics_username) is not; set both or neither"
        )


def _group_secret(name: str) -> bytes | None:
    try:
        from ..metrics.multiprocess import group_secret

        return group_secret(name)
    except Exception:  # noqa: BLE001 - a per-process secret still works on one worker
        return None


def _first_in_group(notice: str) -> bool:
    try:
        from ..prefork import claim_once

        return claim_once(notice)
    except Exception:  # noqa: BLE001 - better logged twice than never
        return True


def resolve_secret_key(settings: Settings, app: Flask | None = None) -> bytes | None:
    """``analytics_secret_key``, else the Flask app's ``secret_key``, else None (Auth makes a random one)."""
    key = settings.analytics_secret_key or (getattr(app, "secret_key", None) if app is not None else None)
    if not key:
        return None
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def public(view: _View) -> _View:
    """Mark a blueprint view as reachable without credentials (the login page, static files)."""
    view._otel_monitor_public = True  # type: ignore[attr-defined]
    return view


def page(view: _View) -> _View:
    """Mark a blueprint view as an HTML page: browsers without credentials are sent to the login page."""
    view._otel_monitor_page = True  # type: ignore[attr-defined]
    return view


def _utf8(value: object) -> bytes:
    """Bytes for a constant-time comparison: UTF-8 (non-ASCII safe), capped."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value[:MAX_CREDENTIAL_BYTES]
    return str(value).encode("utf-8", "surrogateescape")[:MAX_CREDENTIAL_BYTES]


def _equal(given: object, expected: bytes | None) -> bool:
    """Constant-time equality; False when nothing is expected (never matches an unset secret)."""
    if not expected:
        hmac.compare_digest(_utf8(given), b"\0")  # same work either way
        return False
    return hmac.compare_digest(_utf8(given), expected)


class Auth:
    """Credentials, sessions, CSRF tokens and login throttling for one monitored app."""

    def __init__(self, settings: Settings, secret_key: bytes | None) -> None:
        validate_settings(settings)
        self.prefix = settings.analytics_prefix.rstrip("/")
        #: False only when ``analytics_auth`` is explicitly off
        self.enabled: bool = bool(settings.analytics_auth)
        shared = None if secret_key else _group_secret("session-key")
        self._secret: bytes = secret_key or shared or secrets.token_bytes(32)
        self.secret_is_per_process = not secret_key and shared is None
        self._username = _utf8(settings.analytics_username) if settings.analytics_username else None
        self._password = _utf8(settings.analytics_password) if settings.analytics_password else None
        self.generated_token = False
        token = settings.analytics_token
        if token is None and self._username is None and self.enabled:
            # Under a pre-fork server every worker derives the same token from the group secret.
            group = _group_secret("analytics-token")
            token = base64.urlsafe_b64encode(group[:24]).decode().rstrip("=") if group else secrets.token_urlsafe(24)
            self.generated_token = True
        #: the access token: configured, generated (nothing else configured), or None
        self.token: str | None = token
        self._token = _utf8(token) if token else None
        self.throttle = Throttle()
        # Sessions name the credentials they were issued for: changing any of them ends them all.
        material = b"\0".join((self._username or b"", self._password or b"", self._token or b""))
        self._credentials_tag = hmac.new(self._secret, b"credentials:" + material, hashlib.sha256).hexdigest()
        from itsdangerous import URLSafeTimedSerializer

        self._sessions = URLSafeTimedSerializer(self._secret, salt=_SESSION_SALT)
        self._anon_csrf = URLSafeTimedSerializer(self._secret, salt=_ANON_CSRF_SALT)
        self._logged = False
        self._logged_url = False

    # -- start-up -----------------------------------------------------------------------------

    def log_startup(self) -> None:
        """Log (once) an open-analytics warning or a random-key hint; the token's URL waits for an address."""
        if self._logged:
            return
        self._logged = True
        if not self.enabled:
            _logger.warning(
                "otel_monitor: analytics authentication is OFF (analytics_auth=false): anyone who "
                "can reach this app can read %s/",
                self.prefix,
            )
            return
        if self.secret_is_per_process:
            _logger.info(
                "otel_monitor: no analytics_secret_key (OTEL_MONITOR_SECRET_KEY) nor app.secret_key: "
                "dashboard sessions are signed with a random key made at start-up (shared by the "
                "workers of one server), so they end when the server restarts"
            )

    def log_login_url(self, base_url: str) -> None:
        """Log (once) the generated token as a login URL on ``base_url`` (e.g. ``http://127.0.0.1:8000``)."""
        if not self.generated_token or self._logged_url:
            return
        self._logged_url = True
        if not _first_in_group("login-url"):
            return  # another worker of this server logged the same URL (the token is the group's)
        # The one log line that carries a secret, on purpose: it is the only way in.
        _logger.warning(
            "otel_monitor: no analytics credentials configured; a random access token was "
            "generated. Open %s%s/?token=%s (or send 'Authorization: Bearer <token>'). Set "
            "MONITORING_USERNAME/MONITORING_PASSWORD or OTEL_MONITOR_ANALYTICS_TOKEN to choose your own.",
            base_url.rstrip("/"),
            self.prefix,
            self.token,
        )

    # -- credentials ---------------------------------------------------------------------------

    def authenticate(self, request: Request) -> bool:
        """True when the request carries valid credentials (always True when auth is off)."""
        if not self.enabled:
            return True
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, value = header.strip().partition(" ")
            scheme = scheme.lower()
            if scheme == "basic" and self._basic_ok(value.strip()):
                return True
            if scheme == "bearer" and _equal(value.strip(), self._token):
                return True
        query_token = request.args.get("token")
        if query_token is not None and _equal(query_token, self._token):
            return True
        return self.session_id(request) is not None

    def presented_credentials(self, request: Request) -> bool:
        """Did the request try to authenticate (header or ?token=)? Only such failures are counted."""
        return bool(request.headers.get("Authorization")) or "token" in request.args

    def _basic_ok(self, value: str) -> bool:
        try:
            raw = base64.b64decode(_utf8(value), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        if not sep:
            return False
        ok = False
        if self._username is not None:
            # Browsers send UTF-8 (RFC 7617 charset=UTF-8); some older ones Latin-1.
            candidates = [(user, password)]
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                candidates.append((user.decode("latin-1").encode("utf-8"), password.decode("latin-1").encode("utf-8")))
            for u, p in candidates:
                ok_user = _equal(u, self._username)
                ok_password = _equal(p, self._password)
                ok = ok or (ok_user and ok_password)
        # A token works as the password of any user name (a browser's Basic prompt, curl -u x:TOKEN).
        ok_token = _equal(password, self._token)
        return ok or ok_token

    def check_login(self, username: str, password: str, token: str) -> bool:
        """For the login form: user name and password, or the token (either field set may be empty)."""
        ok_user = _equal(username or "", self._username)
        ok_password = _equal(password or "", self._password)
        ok_token = _equal(token or "", self._token)
        return (self._username is not None and ok_user and ok_password) or (self._token is not None and ok_token)

    # -- throttling ----------------------------------------------------------------------------

    def client_key(self, request: Request) -> str:
        """Who is failing: the remote address (put ProxyFix in front when behind a proxy)."""
        return str(request.remote_addr or "unknown")[:64]

    def retry_after(self, client_key: str, now: float | None = None) -> float | None:
        """Seconds this client must wait (its own or the global budget is used up); else None."""
        return self.throttle.retry_after(client_key, now)

    def record_failure(self, client_key: str, now: float | None = None) -> None:
        self.throttle.record_failure(client_key, now)

    def record_success(self, client_key: str, now: float | None = None) -> None:
        """A client that authenticated is not locked out by other clients' failures (its own still count)."""
        self.throttle.record_success(client_key, now)

    # -- sessions ------------------------------------------------------------------------------

    def issue_session(self, response: Response, request: Request) -> None:
        """Set the signed session cookie (HttpOnly, SameSite=Strict, Secure on HTTPS, 12 h)."""
        value = self._sessions.dumps({"sid": secrets.token_urlsafe(16), "cred": self._credentials_tag})
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=SESSION_MAX_AGE_S,
            path=self.prefix or "/",
            secure=bool(request.is_secure),
            httponly=True,
            samesite="Strict",
        )

    def clear_session(self, response: Response, request: Request) -> None:
        """Log out: the cookie is deleted and its session id refused from now on (a copy kept elsewhere too)."""
        sid = self.session_id(request)
        if sid is not None:
            self.throttle.revoke(sid, SESSION_MAX_AGE_S)
        response.delete_cookie(
            COOKIE_NAME, path=self.prefix or "/", secure=bool(request.is_secure), httponly=True, samesite="Strict"
        )

    def session_id(self, request: Request) -> str | None:
        """The session id of a valid, unexpired session cookie; else None."""
        value = request.cookies.get(COOKIE_NAME)
        if not value or len(value) > MAX_CREDENTIAL_BYTES:
            return None
        try:
            data = self._sessions.loads(value, max_age=SESSION_MAX_AGE_S)
        except Exception:  # noqa: BLE001 - BadSignature, SignatureExpired, bad payloads
            return None
        if not isinstance(data, dict):
            return None
        sid, tag = data.get("sid"), data.get("cred")
        if not isinstance(sid, str) or not sid or not isinstance(tag, str):
            return None
        if not hmac.compare_digest(_utf8(tag), self._credentials_tag.encode()):
            return None  # issued for credentials that have changed since
        return None if self.throttle.is_revoked(sid) else sid

    # -- CSRF ----------------------------------------------------------------------------------

    def csrf_token(self, request: Request) -> str:
        """A token for forms: the HMAC of the session id; before login, a signed short-lived token."""
        sid = self.session_id(request)
        if sid is not None:
            return self._csrf_for(sid)
        return self._anon_csrf.dumps("login")

    def _csrf_for(self, sid: str) -> str:
        return hmac.new(self._secret, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def verify_csrf(self, request: Request) -> bool:
        """The form field ``csrf_token`` or header ``X-CSRF-Token`` matches, and Origin/Referer is ours."""
        given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
        if not given or len(given) > MAX_CREDENTIAL_BYTES:
            return False
        if not self._same_origin(request):
            return False
        sid = self.session_id(request)
        if sid is not None and hmac.compare_digest(_utf8(given), self._csrf_for(sid).encode()):
            return True
        try:
            loaded: object = self._anon_csrf.loads(given, max_age=SESSION_MAX_AGE_S)
            return loaded == "login"
        except Exception:  # noqa: BLE001 - any bad token is simply not a valid one
            return False

    @staticmethod
    def _same_origin(request: Request) -> bool:
        """Origin (else Referer), when present, names this host. The scheme is not compared: a TLS
        proxy in front makes the app see http while the browser says https."""
        source = request.headers.get("Origin") or request.headers.get("Referer")
        if not source:
            return True
        if source == "null":
            return False
        try:
            netloc = urlsplit(source).netloc.lower()
        except ValueError:
            return False
        return bool(netloc) and netloc == (request.host or "").lower()
