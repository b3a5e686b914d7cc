"""Who made the request: ``enduser.id`` and the client's address behind trusted proxies.

Flask apps pay nothing per request for this unless it is used: :func:`set_enduser` writes on the
current span when that is the request's SERVER span, else (called inside a child span) once the
view has returned (``after_this_request``, when the SERVER span is current again); with
``Monitor(app, enduser_id=callable)`` the callable is asked once per request in
``teardown_request`` (while ``flask_login.current_user`` still works), unless the view called
:func:`set_enduser`. Other WSGI apps (``wrap()``) have no such hooks: :class:`IdentityLayer`
wraps them *inside* the request middleware (the SERVER span is then current) and keeps that span
in a context variable for the request. Nothing here raises into a request: a failing callable is
logged (rate-limited) and the request has no user.

With ``enduser_id_hash`` the span and the analytics carry ``HMAC-SHA256(key, id)``, 16 hex digits
(64 bits): without the key nobody can tell which id a hash stands for by hashing candidate ids.

With ``trusted_proxies``, a request whose peer (``REMOTE_ADDR``) is a trusted proxy has its
``client.address`` taken from ``X-Forwarded-For``: the right-most address that is not itself a
trusted proxy (an address a client wrote in the header itself, left of it, is never believed);
``network.peer.address`` keeps the proxy's.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import sys
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from .._safe_log import log_internal_error
from ..settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

__all__ = [
    "ENDUSER_ID",
    "Identity",
    "IdentityLayer",
    "set_enduser",
    "client_address",
    "install_flask_hooks",
]

ENDUSER_ID = "enduser.id"
#: the longest id recorded (longer ones are cut)
MAX_ID_LENGTH = 128
_MAX_FORWARDED = 1024
_HASH_HEX = 16
#: set in the WSGI environ once the request's user is known (``enduser_id`` is then not asked)
_TOLD_KEY = "otel_monitor.enduser_told"
_SERVER = SpanKind.SERVER
#: ``trusted_proxies``, parsed
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Slot:
    """The current request's SERVER span, its identity rules, and whether the user is known."""

    __slots__ = ("span", "identity", "done")

    def __init__(self, span: Span, identity: Identity) -> None:
        self.span = span
        self.identity = identity
        self.done = False


_CURRENT: ContextVar[_Slot | None] = ContextVar("otel_monitor_request_identity", default=None)


class Identity:
    """How one monitored app records identities (from its settings and ``enduser_id``)."""

    def __init__(
        self,
        settings: Settings,
        enduser_id: Callable[[], object] | None = None,
        hash_key: bytes | None = None,
    ) -> None:
        self.enduser_id = enduser_id
        self.hashed = bool(settings.enduser_id_hash)
        self._key = hash_key
        self._key_pid = os.getpid() if hash_key is not None else None
        self._fixed_key = hash_key is not None
        self.proxies: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in settings.trusted_proxies)

    def _hash_key(self) -> bytes:
        # No configured key: one shared by the workers of a pre-fork group, else random per process.
        if self._key is None or (not self._fixed_key and self._key_pid != os.getpid()):
            from ..prefork import group_secret

            self._key = group_secret("enduser-id") or os.urandom(32)
            self._key_pid = os.getpid()
        return self._key

    def value(self, user: object) -> str | None:
        """What is recorded for ``user`` (None for no user)."""
        if user is None:
            return None
        text = str(user)
        if not text:
            return None
        if self.hashed:
            digest = hmac.new(self._hash_key(), text.encode("utf-8", "surrogatepass"), hashlib.sha256)
            return digest.hexdigest()[:_HASH_HEX]
        return text[:MAX_ID_LENGTH]

    def apply(self, span: Span, user: object) -> None:
        """``enduser.id`` on ``span`` (when it records and there is a user)."""
        value = self.value(user)
        if value is not None and span.is_recording():
            span.set_attribute(ENDUSER_ID, value)

    def ask(self, span: Span) -> None:
        """Ask ``enduser_id`` for the request's user and record it on ``span``."""
        if self.enduser_id is None:
            return
        try:
            user = self.enduser_id()
        except Exception:  # noqa: BLE001 - the user's callable must never fail the request
            log_internal_error("calling enduser_id")
            return
        try:
            self.apply(span, user)
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            log_internal_error("recording enduser.id")


def client_address(environ: WSGIEnvironment, proxies: Iterable[Network]) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or behind trusted proxies the right-most untrusted hop."""
    peer: str | None = environ.get("REMOTE_ADDR")
    networks = tuple(proxies)
    if not networks or not peer or not _trusted(peer, networks):
        return peer
    header: str | None = environ.get("HTTP_X_FORWARDED_FOR")
    if not header or len(header) > _MAX_FORWARDED:
        return peer
    hops = [h.strip() for h in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return peer  # garbage in the chain: believe nothing left of it
        if not _trusted(address, networks):
            return address
    return _address(hops[0]) or peer


def _address(text: str) -> str | None:
    # "[v6]:port", "v4:port" and plain addresses; anything else is not an address.
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


class IdentityLayer:
    """WSGI: makes the SERVER span reachable by :func:`set_enduser`; resolves the client address.

    ``ask_at_return``: call ``enduser_id`` when the app returns (apps without Flask's hooks).
    """

    def __init__(self, app: WSGIApplication, identity: Identity, ask_at_return: bool) -> None:
        self.app = app
        self.identity = identity
        self.ask_at_return = ask_at_return

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        span = trace.get_current_span()
        if not span.is_recording():
            return self.app(environ, start_response)
        identity = self.identity
        slot = _Slot(span, identity)
        if identity.proxies:
            try:
                _record_client(span, environ, identity.proxies)
            except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
                log_internal_error("resolving the client address")
        token = _CURRENT.set(slot)
        try:
            return self.app(environ, start_response)
        finally:
            if self.ask_at_return and not slot.done:
                slot.done = True
                identity.ask(span)
            _CURRENT.reset(token)


def _record_client(span: Span, environ: WSGIEnvironment, proxies: tuple[Network, ...]) -> None:
    peer = environ.get("REMOTE_ADDR")
    address = client_address(environ, proxies)
    if address and address != peer:
        span.set_attribute("client.address", address)
        if peer:
            span.set_attribute("network.peer.address", peer)


# -- Flask: hooks instead of a layer ------------------------------------------------------------------

#: the identity rules of each monitored Flask app (weakly: an app that goes away takes its entry)
_FLASK_APPS: weakref.WeakKeyDictionary[Flask, Identity] = weakref.WeakKeyDictionary()


def _server_span() -> Span | None:
    """The current span when it is a recording SERVER span (the request's), else None."""
    span = trace.get_current_span()
    return span if getattr(span, "kind", None) is _SERVER and span.is_recording() else None


def install_flask_hooks(app: Flask, identity: Identity) -> None:
    """What a Flask app needs: its identity rules for :func:`set_enduser`; ``enduser_id`` asked at
    teardown; with ``trusted_proxies`` the client address resolved first thing in the request."""
    from flask import request

    _FLASK_APPS[app] = identity
    if identity.proxies:
        proxies = identity.proxies

        def resolve_client() -> None:
            try:
                span = _server_span()
                if span is not None:
                    _record_client(span, request.environ, proxies)
            except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
                log_internal_error("resolving the client address")

        app.before_request_funcs.setdefault(None, []).insert(0, resolve_client)
    if identity.enduser_id is not None:

        def ask(exc: BaseException | None = None) -> None:
            try:
                if request.environ.get(_TOLD_KEY):
                    return
                span = _server_span()
            except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
                log_internal_error("recording enduser.id")
                return
            if span is not None:
                identity.ask(span)

        app.teardown_request(ask)


def _set_in_flask(user_id: object) -> None:
    from flask import Response, after_this_request, current_app, has_request_context, request

    if not has_request_context():
        return
    identity = _FLASK_APPS.get(current_app._get_current_object())  # type: ignore[attr-defined]
    if identity is None:
        return
    request.environ[_TOLD_KEY] = True
    span = _server_span()
    if span is not None:
        identity.apply(span, user_id)
        return

    # Inside a child span: once the view has returned, the SERVER span is current again.
    def apply_later(response: Response) -> Response:
        try:
            later = _server_span()
            if later is not None:
                identity.apply(later, user_id)
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            log_internal_error("recording enduser.id")
        return response

    after_this_request(apply_later)


def set_enduser(user_id: object) -> None:
    """Record who made the current request: ``enduser.id`` on its SERVER span, and ``/users``.

    Call it from a view (or anything running in the request). ``None`` or ``""`` records no
    user. Outside a monitored request it does nothing; it never raises.
    """
    try:
        slot = _CURRENT.get()
        if slot is not None:
            slot.done = True
            slot.identity.apply(slot.span, user_id)
        elif "flask" in sys.modules:
            _set_in_flask(user_id)
    except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
        log_internal_error("recording enduser.id")
