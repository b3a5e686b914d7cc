"""Everything otel_monitor does per request, behind one boundary: a lean WSGI middleware.

It produces what opentelemetry-instrumentation-wsgi/-flask produce with the *stable* HTTP
semantic conventions (one SERVER span per request, ``http.server.request.duration`` in seconds,
``http.server.active_requests``, request/response body sizes), with less work per request and
without the stock middleware's failure modes:

* the span and the duration cover the whole response body and end in ``close()``, which is
  forwarded to the inner iterable exactly once (PEP 3333), also when it is never iterated;
* propagation headers are size-checked before any parsing (the W3C traceparent regex is
  quadratic on long inputs with line feeds);
* ``Host``/``SERVER_PORT`` garbage never raises; unknown methods become ``_OTHER``;
* query values of sensitive parameters are redacted before they reach a span;
* the request histograms are aggregated in one step per request (see ``_request_metrics``).

Nothing in here may raise into the user's request: our own failures are logged (rate-limited)
and the request goes on untouched.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._safe_log import log_internal_error


#: environ keys a framework adapter (the Flask hooks) fills in for us.
ROUTE_KEY = "otel_monitor.route"
EXCEPTION_KEY = "otel_monitor.exception"
#: set by the outermost monitored layer: inner ones (an app wrapped twice) pass the request through
RECORDING_KEY = "otel_monitor.recording"

_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"))
# W3C limits: a valid traceparent is 55 chars; tracestate <= 512 chars is what the spec asks
# implementations to propagate at least; baggage <= 8192 bytes (W3C baggage limits).
_MAX_TRACEPARENT = 64
_MAX_TRACESTATE = 512
_MAX_BAGGAGE = 8192
_SERVER = SpanKind.SERVER
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


def _redact_query(query: str, sensitive: frozenset[str]) -> str:
    parts = query.split("&")
    changed = False
    for i, part in enumerate(parts):
        name, sep, _ = part.partition("=")
        if sep and name.lower() in sensitive:
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
        import re

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
        "token",
        "context",
        "start",
        "status",
        "sent",
        "finished",
        "failure",
    )

    def __init__(self, mw: RequestInstrumentation, pipeline: Any, environ: dict, path: str) -> None:
        self.mw = mw
        self.pipeline = pipeline
        self.environ = environ
        self.status: str | None = None
        self.sent = 0
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
        if tracer.sampler is pipeline.settings_sampler:
            # Our samplers never read attributes: build and store them only for a sampled span.
            span = tracer.start_span(method, parent, _SERVER)
            if span.is_recording():
                _set_clean_attributes(span, self._span_attributes(environ, path))
        else:
            # Someone else's sampler: the semantic conventions ask for these at span creation.
            span = tracer.start_span(method, parent, _SERVER, self._span_attributes(environ, path))
        self.span = span
        self.context = trace.set_span_in_context(span, parent)
        self.token = otel_context.attach(self.context)
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
            except Exception:  # noqa: BLE001
                log_internal_error("detaching the request context")

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            self._finish()
        except Exception:  # noqa: BLE001
            log_internal_error("recording request telemetry")

    def _finish(self) -> None:
        duration = time.perf_counter() - self.start
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
            error = status_text[:3]
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
        if span.is_recording():
            final: dict[str, Any] = {}
            if route is not None:
                span.update_name(f"{self.method} {route}")
                final["http.route"] = route
            if status is not None:
                final["http.response.status_code"] = status
            if error is not None:
                final["error.type"] = error
            _set_clean_attributes(span, final)
            if app_exc is not None:
                span.record_exception(app_exc)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error if app_exc is None else f"{error}: {app_exc}"[:256]))
        span.end()


class _ResponseBody:
    """Wraps the app's iterable so the request ends when the server calls ``close()``."""

    __slots__ = ("_inner", "_record", "_closed")

    def __init__(self, inner: Iterable[bytes], record: _Request) -> None:
        self._inner = inner
        self._record = record
        self._closed = False

    def __iter__(self):
        record = self._record
        try:
            for chunk in self._inner:
                record.sent += len(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            # The status line may already be on the wire; the telemetry still says it failed.
            record.failure = exc
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._record.finish()
