"""HTTP headers recorded on the request span, as the standard variables ask.

``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` / ``_RESPONSE`` list regular
expressions matched (case-insensitively) against whole header names, as contrib's
``opentelemetry-util-http`` does; a captured header becomes ``http.request.header.<name>`` /
``http.response.header.<name>`` with its values as a list of strings, ``<name>`` lower-case as the
semantic conventions write it (``http.request.header.x-forwarded-for``).
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` lists regular expressions searched in
the names of headers whose values are recorded as ``[REDACTED]``; credentials (``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``) always are.

Nothing here runs unless a capture list is configured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["HeaderCapture", "SANITIZED"]

SANITIZED = "[REDACTED]"
#: header names whose values are credentials: never recorded in the clear
_ALWAYS_SANITIZED = ("authorization", "proxy-authorization", "cookie", "set-cookie")
#: longest value recorded per header (a hostile header is cut, not stored whole on every span)
MAX_VALUE = 2048
#: distinct header names whose decision is cached
_MAX_CACHED = 256


class HeaderCapture:
    """Which headers to record and under what attribute key; built once from the settings."""

    __slots__ = ("_captured", "_sanitized", "_prefix", "_keys")

    def __init__(self, captured: Iterable[str], sanitized: Iterable[str], prefix: str) -> None:
        self._captured = re.compile("|".join(f"(?:{p})" for p in captured), re.IGNORECASE).fullmatch
        patterns = [*(f"(?:{p})" for p in sanitized), *(f"(?:^{re.escape(n)}$)" for n in _ALWAYS_SANITIZED)]
        self._sanitized = re.compile("|".join(patterns), re.IGNORECASE).search
        self._prefix = prefix
        #: header name (lower case) -> (attribute key, sanitized?) or None when not captured
        self._keys: dict[str, tuple[str, bool] | None] = {}

    def _decide(self, name: str) -> tuple[str, bool] | None:
        decision = self._keys.get(name, False)
        if decision is False:
            decision = (self._prefix + name, bool(self._sanitized(name))) if self._captured(name) else None
            if len(self._keys) < _MAX_CACHED:
                self._keys[name] = decision
        return decision  # type: ignore[return-value]

    def from_environ(self, environ: WSGIEnvironment) -> dict[str, tuple[str, ...]]:
        """Request headers from a WSGI environ (``HTTP_X_FOO`` is ``x-foo``)."""
        found: dict[str, tuple[str, ...]] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].lower().replace("_", "-")
            elif key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                name = key.lower().replace("_", "-")
            else:
                continue
            decision = self._decide(name)
            if decision is not None and isinstance(value, str):
                found[decision[0]] = (SANITIZED if decision[1] else value[:MAX_VALUE],)
        return found

    def from_headers(self, headers: list[tuple[str, str]] | None) -> dict[str, tuple[str, ...]]:
        """Response headers as given to ``start_response`` (a repeated header keeps every value)."""
        found: dict[str, list[str]] = {}
        for name, value in headers or ():
            decision = self._decide(name.lower())
            if decision is not None:
                found.setdefault(decision[0], []).append(SANITIZED if decision[1] else str(value)[:MAX_VALUE])
        return {key: tuple(values) for key, values in found.items()}
