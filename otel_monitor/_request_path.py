"""Everything otel_monitor does per request, behind one boundary: a lean WSGI middleware.

It produces what opentelemetry-instrumentation-wsgi/-flask produce with the *stable* HTTP
semantic conventions (one SERVER span per request, ``http.server.request.duration`` in seconds,
``http.server.active_requests``, request/response body sizes), with less work per request and
without the stock middleware's failure modes:

* the span and the duration cover the whole response body and end in ``close()``, which is
  forwarded to the inner iterable exactly once (PEP 3333), also when it is never iterated;
* propagation headers are size-checked before any parsing, and ``traceparent``/``tracestate``
  are parsed exactly per W3C Trace Context (``_tracecontext``);
* the request context is current while the body is iterated and closed, so spans started in a
  streaming generator are children of the request span;
* a response the server never closes is still recorded, once, when it is garbage-collected
  (timed to its last byte if it was read to the end); ``wsgi.file_wrapper`` responses are passed
  through untouched (the server keeps its sendfile path) and timed at their ``close()``;
* ``Host``/``SERVER_PORT`` garbage never raises; unknown methods become ``_OTHER``;
* query values of sensitive parameters are redacted before they reach a span (names compared
  percent-decoded and case-insensitively, also inside ``a[b]`` brackets);
* the request histograms are aggregated in one step per request (see ``_request_metrics``).

Nothing in here may raise into the user's request: our own failures are logged (rate-limited)
and the request goes on untouched.
"""

from __future__ import annotations

import collections
import os
import re
import time
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote_plus

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._safe_log import log_internal_error
from ._tracecontext import MAX_TRACEPARENT, MAX_TRACESTATE_IN

#: environ keys a framework adapter (the Flask hooks) fills in for us.
ROUTE_KEY = "otel_monitor.route"
EXCEPTION_KEY = "otel_monitor.exception"
#: set by the outermost monitored layer: inner ones (an app wrapped twice) pass the request through
RECORDING_KEY = "otel_monitor.recording"

_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"))
# Hostile-header guards, checked before any parsing (baggage <= 8192 bytes: the W3C baggage limit;
# the trace-context bounds leave room for future traceparent versions and 32 tracestate members).
_MAX_TRACEPARENT = MAX_TRACEPARENT
_MAX_TRACESTATE = MAX_TRACESTATE_IN
_MAX_BAGGAGE = 8192
_SERVER = SpanKind.SERVER
_INTERNAL = SpanKind.INTERNAL
_MAX_CACHED_ADDRESSES = 256


class _EnvironGetter:
    """Reads W3C headers from the WSGI environ, refusing oversized or line-broken values."""

    __slots__ = ()

    def get(self, carrier: dict, key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        if value is None:
            return None
        limit = _MAX_TRACEPARENT if key == "traceparent" else _MAX_TRACESTATE if key == "tracestate" else _MAX_BAGGAGE
        if len(value) > limit or "\n" in value or "\r" in value:
            return None
        return [value]

    def keys(self, carrier: dict) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()


_BRACKETED = re.compile(r"[^\[\]]+")


def _is_sensitive(name: str, sensitive: frozenset[str]) -> bool:
    # Compare what the app will see: ``%70assword`` and ``pass+word`` decode before lookup.
    if "%" in name or "+" in name:
        name = unquote_plus(name)
    name = name.lower()
    if name in sensitive:
        return True
    # ``user[password]`` / ``password[]``: the form a framework reads as a nested ``password``.
    return "[" in name and any(part in sensitive for part in _BRACKETED.findall(name))


def _redact_query(query: str, sensitive: frozenset[str]) -> str:
    parts = query.split("&")
    changed = False
    for i, part in enumerate(parts):
        name, sep, _ = part.partition("=")
        if sep and _is_sensitive(name, sensitive):
            parts[i] = name + "=REDACTED"
            changed = True
    return "&".join(parts) if changed else query


def _server_address(environ: dict) -> tuple[str | None, int | None]:
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
    port_text = None
    if host:
        if host.startswith("["):  # [v6]:port
            addr, _, rest = host[1:].partition("]")
            host, port_text = addr, rest[1:] if rest.startswith(":") else None
        elif host.count(":") == 1:
            host, port_text = host.split(":")
    else:
        port_text = environ.get("SERVER_PORT")
    port = int(port_text) if port_text and port_text.isdigit() and len(port_text) <= 5 else None
    return (host[:255] if host else None), port


def _set_clean_attributes(span: Any, attributes: dict) -> None:
    """``span.set_attributes`` for values we built ourselves (str and int, already bounded).

    The SDK re-validates every value on every call (about a fifth of a sampled request's cost
    here); for a plain SDK span with no length limit we store them directly, under the same lock
    the SDK uses. Any other span, or an SDK whose internals differ, takes the public call.
    """
    bounded = getattr(span, "_attributes", None)
    if (
        type(bounded) is BoundedAttributes
        and bounded.max_value_len is None
        and (bounded.maxlen is None or len(bounded) + len(attributes) <= bounded.maxlen)
        and type(getattr(bounded, "_dict", None)) is dict
        and getattr(span, "_end_time", 0) is None
    ):
        with bounded._lock:
            bounded._dict.update(attributes)
    else:
        span.set_attributes(attributes)


class RequestInstrumentation:
    """WSGI middleware: one span and the request metrics per request.

    ``pipeline_for_request`` returns the current process's pipeline (rebuilt after a fork) or
    None when monitoring is disabled. ``metrics_app`` serves the Prometheus endpoint.
    """

    def __init__(
        self,
        wsgi_app: Callable,
        pipeline_for_request: Callable[[], Any],
        settings: Any,
        metrics_app: Callable | None = None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self._pipeline = pipeline_for_request
        self._metrics_path = settings.metrics_path
        self._metrics_app = metrics_app
        self._excluded = (
            re.compile("|".join(f"(?:{p})" for p in settings.excluded_urls)) if settings.excluded_urls else None
        )
        self._sensitive = frozenset(settings.sensitive_query_params)
        self._capture_user_agent = settings.capture_user_agent
        self._addresses: dict[tuple, tuple[str | None, int | None]] = {}

    def _server_address(self, environ: dict) -> tuple[str | None, int | None]:
        # Few distinct Host headers reach one app: parse each once (bounded, for hostile clients).
        key = (environ.get("HTTP_HOST"), environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))
        address = self._addresses.get(key)
        if address is None:
            address = _server_address(environ)
            if len(self._addresses) < _MAX_CACHED_ADDRESSES:
                self._addresses[key] = address
        return address

    # -- the request -------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if _ABANDONED:
            finish_abandoned()
        path = environ.get("PATH_INFO", "")
        if path == self._metrics_path and self._metrics_app is not None:
            return self._metrics_app(environ, start_response)
        if (self._excluded is not None and self._excluded.search(path)) or RECORDING_KEY in environ:
            return self.wsgi_app(environ, start_response)
        environ[RECORDING_KEY] = True
        try:
            pipeline = self._pipeline()
            if pipeline is None:
                return self.wsgi_app(environ, start_response)
            record = _Request(self, pipeline, environ, path)
        except Exception:  # noqa: BLE001 - monitoring must never break the request
            log_internal_error("starting request telemetry")
            return self.wsgi_app(environ, start_response)

        def _start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            record.status = status
            record.headers = headers
            return (
                start_response(status, headers, exc_info) if exc_info is not None else start_response(status, headers)
            )

        try:
            result = self.wsgi_app(environ, _start_response)
        except BaseException as exc:
            record.failure = exc
            record.detach()
            record.finish()
            raise
        record.detach()
        file_wrapper = environ.get("wsgi.file_wrapper")
        if file_wrapper is not None and type(result) is file_wrapper and _time_file_wrapper(result, record):
            return result  # the server's own object: it keeps its sendfile path
        return _ResponseBody(result, record)


class _Request:
    """Telemetry state of one request; ``finish`` runs once, whichever way the request ends."""

    __slots__ = (
        "mw",
        "pipeline",
        "environ",
        "method",
        "scheme",
        "span",
        "outer",
        "token",
        "context",
        "start",
        "status",
        "headers",
        "sent",
        "end",
        "finished",
        "failure",
    )

    def __init__(self, mw: RequestInstrumentation, pipeline: Any, environ: dict, path: str) -> None:
        self.mw = mw
        self.pipeline = pipeline
        self.environ = environ
        self.status: str | None = None
        self.headers: list | None = None
        self.sent = 0
        self.end: float | None = None  # perf_counter of the last byte, for a body never closed
        self.finished = False
        self.failure: BaseException | None = None  # raised out of the app or its body
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in _KNOWN_METHODS:
            method = "_OTHER"
        self.method = method
        scheme = environ.get("wsgi.url_scheme", "http")
        self.scheme = scheme if scheme in ("http", "https") else "http"
        parent = None
        for key in pipeline.extract_keys:  # the configured propagators' headers (OTEL_PROPAGATORS)
            if key in environ:
                parent = pipeline.propagator.extract(environ, getter=_GETTER)
                break
        self.start = time.perf_counter()
        tracer = pipeline.tracer
        # Served through an instrumented outer layer (an ASGI server's OpenTelemetryMiddleware
        # around a WSGI adapter): its SERVER span stays the request's only one, ours is INTERNAL
        # under it, and what only the app knows (route template, status, error) goes on both.
        kind = _SERVER
        self.outer: Any = None
        if parent is None:
            current = trace.get_current_span()
            if getattr(current, "kind", None) is _SERVER and current.is_recording():
                self.outer, kind = current, _INTERNAL
        if tracer.sampler is pipeline.settings_sampler:
            # Our samplers never read attributes: build and store them only for a sampled span.
            span = tracer.start_span(method, parent, kind)
            if span.is_recording():
                _set_clean_attributes(span, self._span_attributes(environ, path))
        else:
            # Someone else's sampler: the semantic conventions ask for these at span creation.
            span = tracer.start_span(method, parent, kind, self._span_attributes(environ, path))
        self.span = span
        self.context = trace.set_span_in_context(span, parent)
        self.token: Any = otel_context.attach(self.context)
        pipeline.active.add(self)
        pipeline.active_keys.add((method, self.scheme))

    def _span_attributes(self, environ: dict, path: str) -> dict:
        attrs: dict[str, Any] = {
            "http.request.method": self.method,
            "url.scheme": self.scheme,
            "url.path": path[:2048],
        }
        if self.method == "_OTHER":
            attrs["http.request.method_original"] = environ.get("REQUEST_METHOD", "")[:32]
        query = environ.get("QUERY_STRING")
        if query:
            attrs["url.query"] = _redact_query(query[:4096], self.mw._sensitive)
        host, port = self.mw._server_address(environ)
        if host:
            attrs["server.address"] = host
        if port is not None:
            attrs["server.port"] = port
        client = environ.get("REMOTE_ADDR")
        if client:
            attrs["client.address"] = client
        protocol = environ.get("SERVER_PROTOCOL", "")
        if protocol.startswith("HTTP/"):
            attrs["network.protocol.version"] = protocol[5:]
        if self.mw._capture_user_agent:
            agent = environ.get("HTTP_USER_AGENT")
            if agent:
                attrs["user_agent.original"] = agent[:512]
        return attrs

    def detach(self) -> None:
        token, self.token = self.token, None
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
                log_internal_error("detaching the request context")

    def awaiting_close(self) -> bool:
        """The response is complete -- its body read to the end, or all its ``Content-Length``
        bytes handed to the server -- but the server has not closed it yet: its client may already
        have it, so a scrape about to publish this worker's counts waits for it (see
        :meth:`otel_monitor.multiprocess.WorkerView.settle`)."""
        if self.finished:
            return False
        if self.end is not None:
            return True
        length = _content_length(self.headers) if self.sent else None
        return length is not None and self.sent >= length

    def exhausted(self) -> None:
        """The body's last chunk was read. Under an instrumented outer layer the request ends now:
        the outer SERVER span ends as soon as the adapter returns, and some adapters (Starlette's
        ``WSGIMiddleware``) never call ``close()``."""
        self.end = time.perf_counter()
        if self.outer is not None:
            self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            self._finish()
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            log_internal_error("recording request telemetry")

    def _finish(self) -> None:
        end = self.end
        closed_late = end is not None  # finished for a body the server dropped without close()
        duration = (end if end is not None else time.perf_counter()) - self.start
        environ = self.environ
        pipeline = self.pipeline
        status_text = self.status
        status = int(status_text[:3]) if status_text and status_text[:3].isdigit() else None
        route = environ.get(ROUTE_KEY)
        # Unhandled (raised to the server) beats handled-by-the-framework beats a 5xx status.
        app_exc = self.failure
        if app_exc is None and status is not None and status >= 500:
            app_exc = environ.get(EXCEPTION_KEY)
        if app_exc is not None:
            error = type(app_exc).__qualname__
        elif status is not None and status >= 500:
            error = str(status)
        else:
            error = None
        length = environ.get("CONTENT_LENGTH")
        span = self.span
        pipeline.request_metrics.record(
            (self.method, self.scheme, route, status, error),
            duration,
            int(length) if length and length.isdigit() else None,
            self.sent if status is not None else None,
            span.get_span_context(),
        )
        pipeline.active.discard(self)
        pipeline.requests_seen += 1
        for target in (span,) if self.outer is None else (span, self.outer):
            if target.is_recording():
                final: dict[str, Any] = {}
                if route is not None:
                    target.update_name(f"{self.method} {route}")
                    final["http.route"] = route
                if status is not None:
                    final["http.response.status_code"] = status
                if error is not None:
                    final["error.type"] = error
                _set_clean_attributes(target, final)
                if app_exc is not None:
                    target.record_exception(app_exc)
                if error is not None:
                    description = error if app_exc is None else f"{error}: {app_exc}"[:256]
                    target.set_status(Status(StatusCode.ERROR, description))
        start_time = getattr(span, "start_time", None) if closed_late else None
        span.end(start_time + int(duration * 1e9) if start_time else None)


def _runtime_context_var() -> ContextVar | None:
    """The ContextVar behind the OpenTelemetry context, when it is the standard one.

    ``var.set``/``var.reset`` are what ``context.attach``/``detach`` do for it, without the two
    wrapper frames: the body is attached around every chunk, so this is per-chunk cost.
    """
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    if type(runtime) is ContextVarsRuntimeContext:
        var = getattr(runtime, "_current_context", None)
        if isinstance(var, ContextVar):
            return var
    return None


_CONTEXT_VAR = _runtime_context_var()
if _CONTEXT_VAR is not None:
    _attach: Callable[[Any], Any] = _CONTEXT_VAR.set
    _detach: Callable[[Any], Any] = _CONTEXT_VAR.reset
else:  # another runtime context (OTEL_PYTHON_CONTEXT): the public calls
    _attach, _detach = otel_context.attach, otel_context.detach

#: requests whose body was garbage-collected unclosed. A finalizer only appends here: it can run
#: inside any lock of ours or of the SDK (whenever the collector runs), so the recording itself
#: happens later, outside them (next request, next collection).
_ABANDONED: collections.deque = collections.deque()
if hasattr(os, "register_at_fork"):  # a forked worker must not record its parent's requests
    os.register_at_fork(after_in_child=_ABANDONED.clear)


def finish_abandoned() -> None:
    """Record the requests whose response was dropped without ``close()`` (called outside locks)."""
    while _ABANDONED:
        try:
            record = _ABANDONED.popleft()
        except IndexError:
            return
        record.finish()


def _abandon(record: _Request) -> None:
    if not record.finished:
        if record.end is None:
            record.end = time.perf_counter()
        _ABANDONED.append(record)


class _ResponseBody:
    """Wraps the app's iterable so the request ends when the server calls ``close()``.

    The request context is attached around each step of the inner iterator and around its
    ``close()`` (not across a ``yield``: the server's code between chunks is not the request's).
    """

    __slots__ = ("_inner", "_record", "_closed")

    def __init__(self, inner: Iterable[bytes], record: _Request) -> None:
        self._inner = inner
        self._record = record
        self._closed = False

    def __iter__(self):
        record = self._record
        inner = self._inner
        if type(inner) is list or type(inner) is tuple:  # no app code runs while these are read
            for chunk in inner:
                record.sent += len(chunk)
                yield chunk
            record.exhausted()
            return
        context = record.context
        try:
            token = _attach(context)
            try:
                iterator = iter(inner)
            finally:
                _detach(token)
            while True:
                token = _attach(context)
                try:
                    chunk = next(iterator)
                except StopIteration:
                    break
                finally:
                    _detach(token)
                record.sent += len(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            # The status line may already be on the wire; the telemetry still says it failed.
            record.failure = exc
            raise
        record.exhausted()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        record = self._record
        record.end = None  # closed: timed to now
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                token = _attach(record.context)
                try:
                    close()
                finally:
                    _detach(token)
        finally:
            record.finish()

    def __del__(self) -> None:
        if not self._closed:
            try:
                _abandon(self._record)
            except Exception:  # noqa: BLE001 - e.g. at interpreter exit; a finalizer never raises
                pass


def _time_file_wrapper(result: Any, record: _Request) -> bool:
    """Time a server's ``wsgi.file_wrapper`` object at its ``close()`` without replacing it."""
    inner_close = getattr(result, "close", None)

    def close() -> None:
        token = _attach(record.context)
        try:
            if inner_close is not None:
                inner_close()
        finally:
            _detach(token)
            record.finish()

    try:
        result.close = close
        weakref.finalize(result, _abandon, record)
    except (AttributeError, TypeError):
        return False
    length = _content_length(record.headers)
    if length is not None:
        record.sent = length  # the server sends the file itself: the declared length is the size
    return True


def _content_length(headers: list | None) -> int | None:
    for name, value in headers or ():
        if name.lower() == "content-length":
            return int(value) if value.isdigit() else None
    return None
