"""Log the generated analytics token as a URL that opens, once the app's address is known.

At ``init_app`` nobody knows where the app will listen (``flask run``, gunicorn ``-b``, a port
picked at random), so the login URL is logged at the app's first request, from the server's own
address: ``SERVER_NAME``/``SERVER_PORT`` of the WSGI environ, which servers take from the socket
they listen on. The client's ``Host`` header is never used: whoever sends the first request
could otherwise put their own host into the log line an operator clicks, token included.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from .._safe_log import log_internal_error

__all__ = ["base_url_of", "log_login_url_at_first_request"]

if TYPE_CHECKING:
    from flask import Flask

#: addresses a server binds to that a browser cannot open: shown as the loopback address
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def base_url_of(environ: Mapping[str, object]) -> str:
    """``scheme://host:port/script_root`` of the server that received ``environ`` (no trailing slash)."""
    scheme = str(environ.get("wsgi.url_scheme") or "http")
    host = str(environ.get("SERVER_NAME") or "")
    host = _ANY_ADDRESS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = str(environ.get("SERVER_PORT") or "")
    default_port = {"http": "80", "https": "443"}.get(scheme)
    netloc = host if not port or port == default_port else f"{host}:{port}"
    return f"{scheme}://{netloc}{environ.get('SCRIPT_NAME') or ''}".rstrip("/")


class LoginNotice(Protocol):
    """What the notice needs of :class:`~otel_monitor.analytics.auth.Auth`."""

    def log_login_url(self, base_url: str) -> None: ...


def log_login_url_at_first_request(app: Flask, auth: LoginNotice) -> None:
    """Have ``auth`` log its login URL at ``app``'s first request, then take the hook out again."""
    lock = threading.Lock()

    def announce() -> None:
        from flask import request

        with lock:
            hooks = app.before_request_funcs.get(None, [])
            if announce not in hooks:
                return  # a concurrent first request got here first
            # A new list, not remove(): Flask may be iterating over the old one right now.
            app.before_request_funcs[None] = [hook for hook in hooks if hook is not announce]
        try:
            auth.log_login_url(base_url_of(request.environ))
        except Exception:  # noqa: BLE001 - never into the user's request
            log_internal_error("logging the analytics login URL")

    app.before_request_funcs.setdefault(None, []).append(announce)
