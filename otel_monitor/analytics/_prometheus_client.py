"""A small client of Prometheus's HTTP API: ``/api/v1/query`` and ``/api/v1/query_range`` on urllib.

It knows HTTP, credentials, deadlines and Prometheus's answer envelope, nothing of the analytics:
:class:`~otel_monitor.analytics.prometheus_source.FleetState` takes any :class:`PrometheusQueries`
(this client, or a fake in a unit test) as its constructor argument.

Usage::

    client = PromClient("http://prometheus:9090", timeout=3.0, token="...")
    rows = client.query('up{job="shop"}', at=time.time())   # [{"metric": {...}, "value": [t, "1"]}]

Every call is bounded: at most ``timeout`` seconds and never past the caller's ``deadline``
(monotonic seconds). After a failure the next calls fail at once for a cool-down with the same
message (:class:`PrometheusUnavailable`): a down Prometheus costs each caller nothing, not a
timeout. Credentials are sent as a Bearer token or Basic auth (also from a URL's user info) and
never shown: errors and ``repr`` name the URL without them. No proxy is taken from the
environment, answers larger than :data:`MAX_RESPONSE_BYTES` are refused.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol, TypedDict
from urllib.parse import urlsplit

__all__ = ["PromClient", "PrometheusQueries", "PrometheusUnavailable", "PromSeries", "MAX_RESPONSE_BYTES"]

#: a response larger than this is refused rather than parsed
MAX_RESPONSE_BYTES = 32 << 20


class PrometheusUnavailable(RuntimeError):
    """Prometheus did not answer usefully in time; the message says why (never a credential)."""


class PromSeries(TypedDict, total=False):
    """One series of an answer: ``value`` (``[time, "text"]``) in a vector, ``values`` in a matrix."""

    metric: dict[str, str]
    value: list[float | str]
    values: list[list[float | str]]


class PrometheusQueries(Protocol):
    """What a domain source needs of a Prometheus client: instant and range queries under a deadline."""

    @property
    def timeout(self) -> float:
        """The longest one call may wait, in seconds (a caller's whole deadline starts from it)."""
        ...

    def query(self, expr: str, at: float, deadline: float | None = None) -> list[PromSeries]: ...

    def query_range(
        self, expr: str, start: float, end: float, step: float, deadline: float | None = None
    ) -> list[PromSeries]: ...


class PromClient:
    """A client of one Prometheus (see the module doc): :meth:`query` and :meth:`query_range`."""

    def __init__(
        self,
        url: str,
        timeout: float,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        cooldown: float | None = None,
    ) -> None:
        parts = urlsplit(url.rstrip("/"))
        # Credentials inside the URL become Basic auth; shown in errors is the URL without them.
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        self.base = f"{parts.scheme}://{netloc}{parts.path}"
        self.shown_url = self.base
        if parts.username and not token and username is None:
            username = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
        self._timeout = timeout
        self.cooldown = min(10.0, max(2.0, 2 * timeout)) if cooldown is None else cooldown
        self._headers = {"Accept": "application/json", "User-Agent": "otel_monitor fleet analytics"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif username is not None and password is not None:
            pair = f"{username}:{password}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._lock = threading.Lock()
        self._failed_until = 0.0
        self._last_error = ""
        # No proxies from the environment: the analytics talk to the Prometheus they were given.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:  # never the credentials
        return f"PromClient({self.shown_url!r})"

    @property
    def timeout(self) -> float:
        return self._timeout

    def query(self, expr: str, at: float, deadline: float | None = None) -> list[PromSeries]:
        """The instant vector of ``expr`` at ``at`` (Unix seconds)."""
        return self._call("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, deadline)

    def query_range(
        self, expr: str, start: float, end: float, step: float, deadline: float | None = None
    ) -> list[PromSeries]:
        """The range matrix of ``expr`` from ``start`` to ``end`` every ``step`` seconds."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._call("/api/v1/query_range", params, deadline)

    def _call(self, path: str, params: dict[str, str], deadline: float | None) -> list[PromSeries]:
        now = time.monotonic()
        with self._lock:
            if now < self._failed_until:
                raise PrometheusUnavailable(self._last_error)
        wait = self._timeout if deadline is None else min(self._timeout, deadline - now)
        if wait <= 0.05:
            raise self._fail(f"Prometheus at {self.shown_url} did not answer within {self._timeout:g} s")
        params = {**params, "timeout": f"{max(1, int(wait * 1000))}ms"}
        body = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(
            self.base + path,
            data=body,
            method="POST",
            headers={**self._headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with self._opener.open(request, timeout=wait) as response:
                raw: bytes = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc)
            if exc.code in (401, 403):
                raise self._fail(f"Prometheus at {self.shown_url} refused the credentials (HTTP {exc.code})") from None
            if exc.code == 400:  # our query: not Prometheus's fault, no cool-down
                raise PrometheusUnavailable(f"Prometheus at {self.shown_url} rejected a query: {detail}") from None
            raise self._fail(f"Prometheus at {self.shown_url} answered HTTP {exc.code}: {detail}") from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise self._fail(f"Prometheus at {self.shown_url} did not answer within {wait:.1f} s") from None
            raise self._fail(f"Prometheus at {self.shown_url} is unreachable ({reason})") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise PrometheusUnavailable(f"Prometheus at {self.shown_url} sent more than {MAX_RESPONSE_BYTES >> 20} MiB")
        try:
            result = _result(raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._fail(f"Prometheus at {self.shown_url} sent an answer we cannot read ({exc})") from None
        with self._lock:
            self._failed_until = 0.0
        return result

    def _fail(self, message: str) -> PrometheusUnavailable:
        with self._lock:
            self._failed_until = time.monotonic() + self.cooldown
            self._last_error = message
        return PrometheusUnavailable(message)


def _result(raw: bytes) -> list[PromSeries]:
    """The ``data.result`` list of a successful answer; ValueError (or KeyError, TypeError) else."""
    payload = json.loads(raw)
    if payload.get("status") != "success":
        raise ValueError(payload.get("error") or "status is not success")
    result = payload["data"]["result"]
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise ValueError("expected a vector or a matrix")
    return result


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read(4096))
        return str(payload.get("error", ""))[:300]
    except Exception:  # noqa: BLE001 - the status code is enough then
        return str(exc.reason)[:300]
