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
* a response the server never closes is still recorded, once, by the next reading of the metrics
  when it was handed out to its last byte (timed to it), else when it is garbage-collected;
* the app gets a ``wsgi.file_wrapper`` of ours (``_FileWrapping``) that hands the server's own
  wrapper a proxy of the app's file (``_FileProxy``): the server gets its own object back and keeps
  its sendfile path, and the request is timed at the proxy's ``close()``;
* ``Host``/``SERVER_PORT`` garbage never raises; unknown methods become ``_OTHER``;
* query values of sensitive parameters, and secrets in an exception's message and stack trace, are
  redacted before they reach the span (``_redaction``, the one redaction every view shares);
* the request histograms are aggregated in one step per request (see ``_request_metrics``).

Nothing in here may raise into the user's request: our own failures are logged (rate-limited)
and the request goes on untouched.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._redaction import Redactor, redactor_for
from .._safe_log import log_internal_error
from ._header_capture import HeaderCapture
from ._server_span import ServerSpan
from ._tracecontext import MAX_TRACEPARENT, MAX_TRACESTATE_IN

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import Tracer
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import SpanContext

    from ..settings import Settings
    from ._request_metrics import RequestMetrics
    from ._server_span import ServerSpans


class RequestPipeline(Protocol):
    """What the request path reads and writes of a pipeline: the part of
    :class:`otel_monitor.telemetry.pipeline.Pipeline` it needs (mypy checks that it implements this
    where the monitor hands the runtime over as a :class:`PipelineSource`)."""

    tracer: Tracer
    settings_sampler: Sampler
    propagator: TextMapPropagator
    extract_keys: tuple[str, ...]
    request_metrics: RequestMetrics
    #: starts request spans in a light structure when every span processor allows it (None: never)
    server_spans: ServerSpans | None
    #: requests recorded (a cheap "anything new?" signal for background jobs)
    requests_seen: int
    #: in-flight requests, and the (method, scheme) pairs seen
    active: set[Any]
    active_keys: set[Any]
    #: thread ident -> the request that thread is serving (read by the sampling profiler)
    serving: dict[int, Any]
    serving_started: ServingSignal


class PipelineSource(Protocol):
    """Where the request path finds this process's pipeline (``telemetry._runtime.Runtime``)."""

    @property
    def current(self) -> RequestPipeline | None:
        """The pipeline built in this process; None before the first request and after a fork
        (read by every request as a plain field: no call once it exists)."""

    def pipeline(self) -> RequestPipeline | None:
        """Build the pipeline (None: monitoring is off)."""


class ServingSignal(threading.Event):
    """The pipeline's "a request started" Event, which the sampling profiler clears when it goes
    idle and waits on (``analytics.profiler``); its flag is also the plain field ``on``, which
    every request reads without a call (``Event.is_set`` is a Python method).

    ``set`` raises ``on`` before the Event's flag and ``clear`` lowers it after: however the two
    interleave, they never end with ``on`` raised over a cleared Event (which would leave the
    profiler asleep while requests run); the other mismatch only makes a request set it again.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on = False

    def set(self) -> None:
        self.on = True
        super().set()

    def clear(self) -> None:
        super().clear()
        self.on = False


#: a WSGI environ, and a WSGI application
Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], Any]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: environ keys a framework adapter (the Flask hooks) fills in for us.
ROUTE_KEY = "otel_monitor.route"
EXCEPTION_KEY = "otel_monitor.exception"
#: set by the outermost monitored layer: inner ones (an app wrapped twice) pass the request through
RECORDING_KEY = "otel_monitor.recording"

# Hostile-header guards, checked before any parsing (baggage <= 8192 bytes: the W3C baggage limit;
# the trace-context bounds leave room for future traceparent versions and 32 tracestate members).
_MAX_TRACEPARENT = MAX_TRACEPARENT
_MAX_TRACESTATE = MAX_TRACESTATE_IN
_MAX_BAGGAGE = 8192
_SERVER = SpanKind.SERVER
_INTERNAL = SpanKind.INTERNAL
#: distinct (method, scheme, Host, server name and port, protocol) keys whose shared part is kept
_MAX_SHARED = 256
#: span names kept per key (one per route), and status lines whose code is kept
_MAX_NAMES = 1024
_MAX_STATUS_TEXTS = 256
_get_ident = threading.get_ident


class _EnvironGetter(Getter[Environ]):
    """Reads W3C headers from the WSGI environ, refusing oversized or line-broken values."""

    __slots__ = ()

    def get(self, carrier: Environ, key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        if value is None:
            return None
        limit = _MAX_TRACEPARENT if key == "traceparent" else _MAX_TRACESTATE if key == "tracestate" else _MAX_BAGGAGE
        if len(value) > limit or "\n" in value or "\r" in value:
            return None
        return [value]

    def keys(self, carrier: Environ) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()


def _server_address(environ: Environ) -> tuple[str | None, int | None]:
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


def _set_clean_attributes(span: trace.Span, attributes: dict[str, Any]) -> None:
    """``span.set_attributes`` for values we built ourselves (str and int, already bounded).

    The SDK re-validates every value on every call (about a fifth of a sampled request's cost
    here); for a plain SDK span with no length limit we store them directly, under the same lock
    the SDK uses. Any other span, or an SDK whose internals differ, takes the public call.
    """
    if type(span) is ServerSpan:
        span.set_own(attributes)
        return
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

    ``pipelines`` has the current process's pipeline (rebuilt after a fork; None from
    ``pipeline()``: monitoring is disabled). ``metrics_app`` serves the Prometheus endpoint.
    """

    def __init__(
        self,
        wsgi_app: WSGIApp,
        pipelines: PipelineSource,
        settings: Settings,
        metrics_app: WSGIApp | None = None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self._pipelines = pipelines
        self._metrics_path = settings.metrics_path
        self._metrics_app = metrics_app
        self._excluded = (
            re.compile("|".join(f"(?:{p})" for p in settings.excluded_urls)) if settings.excluded_urls else None
        )
        self._redactor: Redactor = redactor_for(tuple(settings.sensitive_query_params))
        self._capture_user_agent = settings.capture_user_agent
        #: OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS (case-sensitive; any other method is _OTHER)
        self._known_methods = frozenset(settings.http_known_methods)
        sanitize = settings.capture_headers_sanitize_fields
        self._request_headers = (
            HeaderCapture(settings.capture_headers_server_request, sanitize, "http.request.header.")
            if settings.capture_headers_server_request
            else None
        )
        self._response_headers = (
            HeaderCapture(settings.capture_headers_server_response, sanitize, "http.response.header.")
            if settings.capture_headers_server_response
            else None
        )
        #: what requests of one (method, scheme, Host, server name and port, protocol) share,
        #: made once per distinct key (bounded, for hostile clients): see :class:`_Shared`
        self._shared: dict[tuple[object, ...], _Shared] = {}
        #: a request this old when the app returns keeps its environ's text for the outlier context
        #: (half the slow threshold: it may become slow while its body is sent)
        self._context_after_s = settings.analytics_slow_ms / 2000.0
        #: the ``wsgi.file_wrapper`` the app gets for the server's last seen (a placeholder before
        #: the first), and one per server wrapper seen (``_files_for``)
        self._files = _FileWrapping(None, pipelines)
        self._files_by_server: dict[object, _FileWrapping] = {}

    def _files_for(self, server_files: object) -> _FileWrapping:
        """Our ``wsgi.file_wrapper`` for a server's, made once per server wrapper (bounded)."""
        try:
            files = self._files_by_server.get(server_files)
            if files is None:
                files = _FileWrapping(server_files, self._pipelines)
                if len(self._files_by_server) < _MAX_FILE_WRAPPERS:
                    self._files_by_server[server_files] = files
        except TypeError:  # an unhashable wrapper: one of ours for this request only
            return _FileWrapping(server_files, self._pipelines)
        self._files = files
        return files

    def _shared_for(self, key: tuple[object, ...], environ: Environ) -> _Shared:
        shared = _Shared(self, environ)
        if len(self._shared) < _MAX_SHARED:
            self._shared[key] = shared
        return shared

    # -- the request -------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if _ABANDONED:
            finish_abandoned()
        path = environ.get("PATH_INFO", "")
        if path == self._metrics_path and self._metrics_app is not None:
            return self._metrics_app(environ, start_response)
        if (self._excluded is not None and self._excluded.search(path)) or RECORDING_KEY in environ:
            return self.wsgi_app(environ, start_response)
        environ[RECORDING_KEY] = True
        try:
            pipeline = self._pipelines.current
            if pipeline is None:
                pipeline = self._pipelines.pipeline()
            if pipeline is None:
                return self.wsgi_app(environ, start_response)
            record = _Request(self, pipeline, environ, path)
        except Exception:  # noqa: BLE001 - monitoring must never break the request
            log_internal_error("starting request telemetry")
            return self.wsgi_app(environ, start_response)

        def _start_response(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], Any]:
            record.status = status
            record.headers = headers
            # A Flask app's request (Werkzeug's Request puts itself in the environ; Flask takes it
            # out only after the response started): its matched URL rule, the route template.
            request = environ.get("werkzeug.request")
            if request is not None:
                rule = getattr(request, "url_rule", None)
                if rule is not None:
                    record.rule = rule
            return (
                start_response(status, headers, exc_info) if exc_info is not None else start_response(status, headers)
            )

        # The server's file wrapper, if it offers one: the app gets ours (see _FileWrapping).
        server_files = environ.get("wsgi.file_wrapper")
        if server_files is not None:
            files = self._files
            if files.server is not server_files:
                files = self._files_for(server_files)
            environ["wsgi.file_wrapper"] = files
        try:
            result = self.wsgi_app(environ, _start_response)
        except BaseException as exc:
            if server_files is not None:
                environ["wsgi.file_wrapper"] = server_files
                files.made.pop(record, None)
            record.fail(exc)
            record.detach()
            record.finish()
            raise
        try:  # record.detach(), in line
            _detach(record.token)
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            log_internal_error("detaching the request context")
        record.token = None
        try:  # what ``finish`` needs from the environ, read now that the app returned
            route = environ.get(ROUTE_KEY)  # a framework adapter's (or the app's own) first
            if route is None and record.rule is not None:
                rule = getattr(record.rule, "rule", None)
                route = rule if type(rule) is str else None
            record.route = route
            exception = environ.pop(EXCEPTION_KEY, None)
            if exception is not None and isinstance(exception, BaseException):
                record.handled = _Failure(exception, self._redactor, record.span.is_recording())
            status = record.status
            if (
                record.handled is not None
                or (status is not None and status[:1] == "5")
                or time.perf_counter() - record.start >= self._context_after_s
            ):
                # Text only: nothing the app put in the environ (an exception, a body) is kept.
                record.request_environ = {k: v for k, v in environ.items() if type(v) is str}
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            log_internal_error("reading the request's route")
        if server_files is not None:
            # Servers read it again (gunicorn: ``isinstance(result, environ["wsgi.file_wrapper"])``).
            environ["wsgi.file_wrapper"] = server_files
            if files.made and _time_file_wrapper(files.made.pop(record, None), result, record):
                return result  # the server's own object: it keeps its sendfile path
        return _ResponseBody(result, record)


class _Shared:
    """What every request with the same method, scheme, ``Host``, server name and port and protocol
    shares: its method and scheme as recorded, its span's name without a route and with each route
    seen (bounded), and the span attributes these determine. Made once per distinct key
    (:meth:`RequestInstrumentation._shared_for`), so a request copies them instead of parsing and
    building them again."""

    __slots__ = ("method", "scheme", "name", "attributes", "active_key", "names")

    def __init__(self, mw: RequestInstrumentation, environ: Environ) -> None:
        raw_method = environ.get("REQUEST_METHOD", "GET")
        method = raw_method if raw_method in mw._known_methods else "_OTHER"
        self.method: str = method
        #: the semantic conventions' span name without a route
        self.name = method if method != "_OTHER" else "HTTP"
        scheme = environ.get("wsgi.url_scheme", "http")
        self.scheme: str = scheme if scheme in ("http", "https") else "http"
        #: the ``(method, scheme)`` pair the pipeline's ``active_keys`` collects
        self.active_key = (method, self.scheme)
        attributes: dict[str, Any] = {"http.request.method": method, "url.scheme": self.scheme}
        if method == "_OTHER":
            attributes["http.request.method_original"] = environ.get("REQUEST_METHOD", "")[:32]
        host, port = _server_address(environ)
        if host:
            attributes["server.address"] = host
        if port is not None:
            attributes["server.port"] = port
        protocol = environ.get("SERVER_PROTOCOL", "")
        if protocol.startswith("HTTP/"):
            attributes["network.protocol.version"] = protocol[5:]
        #: copied into each request's attributes (never handed to a span itself)
        self.attributes = attributes
        #: route -> span name (``span_name``)
        self.names: dict[str, str] = {}

    def span_name(self, route: str) -> str:
        """``"{method} {route}"`` (``HTTP`` for ``_OTHER``), made once per route (bounded)."""
        name = self.names.get(route)
        if name is None:
            name = f"{self.name} {route}"
            if len(self.names) < _MAX_NAMES:
                self.names[route] = name
        return name


def _status_code(status_text: str) -> int | None:
    """The code of a WSGI status line (``"200 OK"``), each distinct line parsed once (bounded)."""
    code = int(status_text[:3]) if status_text[:3].isdigit() else None
    if code is not None and len(_STATUS_CODES) < _MAX_STATUS_TEXTS:
        _STATUS_CODES[status_text] = code
    return code


#: status line -> its code (``_status_code``)
_STATUS_CODES: dict[str, int] = {}


class _Request:
    """Telemetry state of one request; ``finish`` runs once, whichever way the request ends.

    The fields most requests leave at their first value are class defaults, set on the request
    only when they change.
    """

    #: read from the environ when the app returns (``__call__``): the record keeps no reference
    #: to the environ, so nothing the app put there (an exception and its traceback, whose
    #: frames hold the response body) can keep a dropped body alive
    route: str | None = None
    request_size: int | None = None
    #: the exception the framework handled (its 500 page), already turned into an event
    handled: _Failure | None = None
    status: str | None = None
    headers: list[tuple[str, str]] | None = None
    sent = 0
    last = 0.0  # perf_counter when the latest chunk was handed out
    end: float | None = None  # perf_counter of the last byte, for a body never closed
    finished = False
    failure: _Failure | None = None  # raised out of the app or its body
    #: the environ's text values, copied when the app returns for a request already slow or failed
    #: (the trace store will likely keep it: its outlier context reads them); else None
    request_environ: dict[str, str] | None = None
    # Served through an instrumented outer layer (an ASGI server's OpenTelemetryMiddleware
    # around a WSGI adapter): its SERVER span stays the request's only one, ours is INTERNAL
    # under it, and what only the app knows (route template, status, error) goes on both.
    outer: trace.Span | None = None
    token: Any = None
    #: the URL rule of a Flask request, seen when its response started (its ``rule`` is the route)
    rule: Any = None

    def __init__(self, mw: RequestInstrumentation, pipeline: RequestPipeline, environ: Environ, path: str) -> None:
        self.mw = mw
        self.pipeline = pipeline
        length = environ.get("CONTENT_LENGTH")
        if length:
            self.request_size = int(length) if length.isdigit() else None
        host = environ.get("HTTP_HOST")
        key: tuple[object, ...] = (
            (environ.get("REQUEST_METHOD"), environ.get("wsgi.url_scheme"), host, environ.get("SERVER_PROTOCOL"))
            if host  # the server's name and port count only without a Host header (_server_address)
            else (
                environ.get("REQUEST_METHOD"),
                environ.get("wsgi.url_scheme"),
                host,
                environ.get("SERVER_PROTOCOL"),
                environ.get("SERVER_NAME"),
                environ.get("SERVER_PORT"),
            )
        )
        shared = mw._shared.get(key)
        if shared is None:
            shared = mw._shared_for(key, environ)
        self.shared = shared
        self.method = shared.method
        name = shared.name
        parent = None
        # the configured propagators' headers (OTEL_PROPAGATORS): any of them present
        if any(map(environ.__contains__, pipeline.extract_keys)):
            parent = pipeline.propagator.extract(environ, getter=_GETTER)
        self.start = time.perf_counter()
        tracer = pipeline.tracer
        kind = _SERVER
        # the extracted parent's span, or (none extracted) the current one
        if _SPAN_KEY is not None:  # the standard runtime context: read and build it directly
            base = parent if parent is not None else _CONTEXT_VAR_GET()
            found = base.get(_SPAN_KEY) if base else None
            # (an ABC's isinstance costs more than the rest of this: none current is the usual case)
            parent_span = found if found is not None and isinstance(found, trace.Span) else None
        else:
            parent_span = trace.get_current_span(parent)
        if parent_span is not None:
            if parent is None and getattr(parent_span, "kind", None) is _SERVER and parent_span.is_recording():
                self.outer, kind = parent_span, _INTERNAL
            found_context: SpanContext | None = parent_span.get_span_context()
        else:
            found_context = None
        # The request span's attributes at its start: the shared ones, then the request's own.
        attributes = shared.attributes.copy()
        attributes["url.path"] = path if len(path) <= 2048 else path[:2048]
        query = environ.get("QUERY_STRING")
        if query:
            attributes["url.query"] = mw._redactor.query(query[:4096])
        client = environ.get("REMOTE_ADDR")
        if client:
            attributes["client.address"] = client
        if mw._capture_user_agent:
            agent = environ.get("HTTP_USER_AGENT")
            if agent:
                attributes["user_agent.original"] = agent[:512]
        if mw._request_headers is not None:
            attributes.update(mw._request_headers.from_environ(environ))
        spans = pipeline.server_spans
        # The light span (_server_span): what processors read, without the SDK span's own cost.
        # (None: the light path does not apply now.) Its attributes are taken as they are.
        span = (
            spans.start(name, parent, kind, time.time_ns(), found_context, attributes)
            if spans is not None and tracer.sampler is pipeline.settings_sampler
            else None
        )
        if span is None:
            if tracer.sampler is pipeline.settings_sampler:
                # Our samplers never read attributes: store them only for a sampled span.
                span = tracer.start_span(name, parent, kind)
                if span.is_recording():
                    _set_clean_attributes(span, attributes)
            else:
                # Someone else's sampler: the semantic conventions ask for these at span creation.
                span = tracer.start_span(name, parent, kind, attributes)
        self.span = span
        if _SPAN_KEY is not None:  # what ``set_span_in_context(span, parent)`` returns, in one step
            self.context = otel_context.Context({**base, _SPAN_KEY: span} if base else {_SPAN_KEY: span})
        else:
            self.context = trace.set_span_in_context(span, parent)
        self.token = _attach(self.context)  # the runtime ContextVar, directly (see _attach)
        pipeline.active.add(self)
        pipeline.active_keys.add(shared.active_key)
        # Which thread serves this request since when, for the sampling profiler. It sleeps while
        # nothing is served, the Event cleared: a request registers first, then wakes it.
        self.ident = ident = _get_ident()
        pipeline.serving[ident] = self
        if not pipeline.serving_started.on:
            pipeline.serving_started.set()

    @property
    def scheme(self) -> str:
        """``url.scheme`` as recorded (the pipeline's active-requests gauge reads it)."""
        return self.shared.scheme

    def fail(self, exc: BaseException) -> None:
        """The app or its body raised ``exc``: described now, so no reference to it is kept."""
        try:
            self.failure = _Failure(exc, self.mw._redactor, self.span.is_recording())
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            log_internal_error("describing the request's exception")

    def detach(self) -> None:
        token, self.token = self.token, None
        if token is not None:
            try:
                _detach(token)
            except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
                log_internal_error("detaching the request context")

    def awaiting_close(self) -> bool:
        """The response is complete -- its body read to the end, or all its ``Content-Length``
        bytes handed to the server -- but the server has not closed it yet: its client may already
        have it, so a scrape about to publish this worker's counts waits for it (see
        :meth:`otel_monitor.metrics.multiprocess.WorkerView.settle`)."""
        if self.finished:
            return False
        if self.end is not None:
            return True
        length = _declared_length(self.headers) if self.sent else None
        return length is not None and self.sent >= length

    def finish(self) -> None:
        # Claimed atomically (one C call under the GIL): the server's close(), the garbage
        # collector's queue and a scrape (``finish_unclosed``) may race for an unclosed body.
        pipeline = self.pipeline
        try:
            pipeline.active.remove(self)
        except KeyError:
            return
        self.finished = True
        try:  # the request's metrics, then its span's last attributes and its end
            end = self.end
            duration = (end if end is not None else time.perf_counter()) - self.start
            status_text = self.status
            status = _STATUS_CODES.get(status_text) if status_text is not None else None
            if status is None:
                if status_text is not None:
                    status = _status_code(status_text)
                if status is None and self.failure is not None:
                    status = 500  # raised to the server before any response: what a PEP 3333 server sends
            route = self.route
            # Unhandled (raised to the server) beats handled-by-the-framework beats a 5xx status.
            failure = self.failure
            error = None
            if failure is not None:
                error = failure.type_name
            elif status is not None and status >= 500:
                failure = self.handled
                error = failure.type_name if failure is not None else str(status)
            span = self.span
            shared = self.shared
            light = type(span) is ServerSpan
            if type(span) is ServerSpan:
                context, sampled = span.context, span.sampled
            else:
                context, sampled = span.get_span_context(), None
            pipeline.request_metrics.record(
                (shared.method, shared.scheme, route, status, error),
                duration,
                self.request_size,
                self.sent if status is not None else None,
                context,
                sampled,
            )
            pipeline.requests_seen += 1
            end_time = None
            if end is not None:  # finished for a body the server dropped without close(): timed to its end
                start_time = getattr(span, "start_time", None)
                end_time = start_time + int(duration * 1e9) if start_time else None
            outer = self.outer
            if not light and not span.is_recording() and (outer is None or not outer.is_recording()):
                span.end(end_time)  # an unsampled request: nothing more to write
            else:
                # What only the app knew, for the request span (and an instrumented outer layer's).
                final: dict[str, Any] = {}
                name = None
                if route is not None:
                    name = shared.names.get(route) or shared.span_name(route)
                    final["http.route"] = route
                if status is not None:
                    final["http.response.status_code"] = status
                if error is not None:
                    final["error.type"] = error
                if self.mw._response_headers is not None:
                    final.update(self.mw._response_headers.from_headers(self.headers))
                if failure is not None:
                    error_status: Status | None = Status(StatusCode.ERROR, f"{error}: {failure.message}"[:256])
                elif error is not None:
                    error_status = Status(StatusCode.ERROR, error)
                else:
                    error_status = None
                if type(span) is ServerSpan and outer is None:
                    # The light span: name, attributes, status and end in one step.
                    if failure is not None and span.is_recording():
                        span.add_event("exception", failure.event, failure.timestamp)
                    span.end_request(name, final, error_status, end_time)
                else:
                    _end_spans(span, outer, name, final, failure, error_status, end_time)
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            log_internal_error("recording request telemetry")
        serving = pipeline.serving  # after span.end: its processors may read it
        if serving.get(self.ident) is self:  # not when finished late, after the thread moved on
            serving.pop(self.ident, None)


def _end_spans(
    span: trace.Span,
    outer: trace.Span | None,
    name: str | None,
    final: dict[str, Any],
    failure: _Failure | None,
    error_status: Status | None,
    end_time: int | None,
) -> None:
    """The SDK's request span (and an instrumented outer layer's span): what only the app knew, then its end."""
    for target in (span,) if outer is None else (span, outer):
        if target.is_recording():
            if name is not None:
                target.update_name(name)
            _set_clean_attributes(target, final)
            if failure is not None:
                target.add_event("exception", failure.event, failure.timestamp)
            if error_status is not None:
                target.set_status(error_status)
    span.end(end_time)


class _Failure:
    """An exception as the span records it, described when it happens (its message and stack trace
    redacted): holding the exception itself would keep its traceback's frames alive, and with them
    the response body a server or test client still had in a local variable."""

    __slots__ = ("type_name", "message", "event", "timestamp")

    def __init__(self, exc: BaseException, redactor: Redactor, recording: bool) -> None:
        kind = type(exc)
        module = kind.__module__
        self.type_name = kind.__qualname__  # error.type, for the metrics too
        self.message = ""
        self.event: dict[str, str] = {}
        self.timestamp = 0
        if not recording:  # an unsampled span records no event: no stack trace to format
            return
        self.message = redactor.text(str(exc))
        # The event the SDK's record_exception makes (exception.type module-qualified).
        self.event = {
            "exception.type": f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__,
            "exception.message": self.message,
            "exception.stacktrace": redactor.text("".join(traceback.format_exception(exc))),
            "exception.escaped": "False",
        }
        self.timestamp = time.time_ns()


_now = time.perf_counter
#: what ``next`` returns at the end of a body (a WSGI body yields bytes only)
_END: Any = object()


def _runtime_context_var() -> ContextVar[Any] | None:
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


def _span_key() -> str | None:
    """The key the API keeps the current span under in a ``Context``, found through the public
    ``set_span_in_context`` (None if a new API version stores it otherwise)."""
    keys = list(trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context()))
    return keys[0] if len(keys) == 1 and isinstance(keys[0], str) else None


_CONTEXT_VAR = _runtime_context_var()
#: with the standard runtime context, the request reads the current span and makes its own
#: context directly (``get_current_span``/``set_span_in_context`` are four calls deep each)
_SPAN_KEY: str | None = None
if _CONTEXT_VAR is not None:
    _attach: Callable[[Any], Any] = _CONTEXT_VAR.set
    _detach: Callable[[Any], Any] = _CONTEXT_VAR.reset
    _CONTEXT_VAR_GET: Callable[[], otel_context.Context] = _CONTEXT_VAR.get
    _SPAN_KEY = _span_key()
else:  # another runtime context (OTEL_PYTHON_CONTEXT): the public calls
    _attach, _detach = otel_context.attach, otel_context.detach

#: requests whose body was garbage-collected unclosed. A finalizer only appends here: it can run
#: inside any lock of ours or of the SDK (whenever the collector runs), so the recording itself
#: happens later, outside them (next request, next collection).
_ABANDONED: collections.deque[_Request] = collections.deque()
if hasattr(os, "register_at_fork"):  # a forked worker must not record its parent's requests
    os.register_at_fork(after_in_child=_ABANDONED.clear)


def finish_unclosed(active: set[Any]) -> None:
    """Record, before metrics are read, the requests whose response ended without ``close()``.

    Those garbage-collected (``finish_abandoned``), and those whose body has been handed out to
    its last byte (exhausted, or its declared ``Content-Length`` reached) but not closed: a test
    client that never closes its responses, whose bodies Flask's exception and routing tracebacks
    keep alive until the cyclic garbage collector runs. They are timed to their last byte. (A
    server closes right after the last byte; a scrape in between ends the span there, once.)
    """
    finish_abandoned()
    for request in list(active):
        if request.end is None and request.last and request.sent == _declared_length(request.headers):
            request.end = request.last
        if request.end is not None:
            request.finish()


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

    def __iter__(self) -> Iterator[bytes]:
        record = self._record
        inner = self._inner
        # ``last``: when the latest chunk was handed out. A consumer that stops at the declared
        # length and never closes (Werkzeug's test client reads the first chunk only) is timed
        # to it (``finish_unclosed``).
        now = _now
        if type(inner) is list or type(inner) is tuple:  # no app code runs while these are read
            for chunk in inner:
                record.sent += len(chunk)
                record.last = now()
                yield chunk
        else:
            context = record.context
            end = _END
            try:
                # iter() and the first step run back to back: under one attachment
                token = _attach(context)
                try:
                    iterator = iter(inner)
                    chunk = next(iterator, end)  # the end marker, not StopIteration through here
                finally:
                    _detach(token)
                while chunk is not end:
                    record.sent += len(chunk)
                    record.last = now()
                    yield chunk
                    token = _attach(context)
                    try:
                        chunk = next(iterator, end)
                    finally:
                        _detach(token)
            except GeneratorExit:
                raise
            except BaseException as exc:
                # The status line may already be on the wire; the telemetry still says it failed.
                record.fail(exc)
                raise
        # Read to its last chunk. Under an instrumented outer layer the request ends now: the outer
        # SERVER span ends as soon as the adapter returns, and some adapters (Starlette's
        # ``WSGIMiddleware``) never call ``close()``.
        record.end = now()
        if record.outer is not None:
            record.finish()

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


#: distinct server file wrappers whose ``_FileWrapping`` is kept (one per server, in practice)
_MAX_FILE_WRAPPERS = 8


class _FileWrapping:
    """The ``wsgi.file_wrapper`` the app gets when the server offers one (made once per server
    wrapper, see :meth:`RequestInstrumentation._files_for`).

    It calls the server's wrapper with a :class:`_FileProxy` of the app's file, so the server gets
    back an object it made itself (gunicorn: its ``FileWrapper``; uWSGI: the file it was given)
    and keeps its sendfile path, which reads the proxy's ``fileno()``. The proxy's request is the
    one this thread serves (the pipeline's ``serving``, which every request keeps anyway), still
    inside its app call and in the current trace; what it made waits in ``made`` under that request
    until the app returns (the request path takes it back then). So a request that serves no file
    makes no object. Without such a request (an app calling it from another thread; greenlets
    sharing a thread ident, when gevent patched after this module was imported), or on any failure
    of ours, the server's wrapper gets the app's file itself: the response is then a plain body
    (served, timed).
    """

    __slots__ = ("server", "made", "_pipelines")

    def __init__(self, server: object, pipelines: PipelineSource) -> None:
        #: the server's ``wsgi.file_wrapper``
        self.server = server
        #: request -> the server's wrapper object made for it, and the proxy in it
        self.made: dict[_Request, tuple[object, _FileProxy]] = {}
        self._pipelines = pipelines

    def __call__(self, filelike: object, *args: object, **kwargs: object) -> object:
        """``(filelike, block_size)`` as PEP 3333 says, or whatever else the server's accepts."""
        server = cast("Callable[..., object]", self.server)
        try:
            record = self._serving()
            if record is not None:
                proxy = _FileProxy(filelike, record)
                made = server(proxy, *args, **kwargs)
                self.made[record] = (made, proxy)
                return made
        except Exception:  # noqa: BLE001 - monitoring must never break the response: the plain file
            log_internal_error("wrapping the app's file for the server")
        return server(filelike, *args, **kwargs)

    def _serving(self) -> _Request | None:
        """The request this thread serves, if its app is running (its context attached) and its
        trace is the current one."""
        pipeline = self._pipelines.current
        if pipeline is None:
            return None
        request = pipeline.serving.get(_get_ident())
        if type(request) is not _Request or request.token is None:
            return None
        current = trace.get_current_span().get_span_context()
        return request if current.trace_id == request.span.get_span_context().trace_id else None


class _FileProxy:
    """The app's file as the server's ``wsgi.file_wrapper`` receives it.

    ``close()`` closes the file (the request's context current) and, once the app returned this
    file's wrapper as its response (:meth:`returned`), ends the request; so does the proxy's
    collection when a server drops the wrapper unclosed. A wrapper the app made but did not return
    (a ``HEAD`` request, a 304) never ends the request: its body does.

    Every other attribute is the file's own (``__getattr__``): ``read``, ``fileno``, ``seek``,
    ``tell``, ``mode``, ``seekable``... Servers choose their path by what a file has (gunicorn's
    ``has_fileno``, waitress's seekable check, ``socket.sendfile``'s binary-mode check), so the
    proxy has exactly what the file has, plus ``close``.
    """

    __slots__ = ("_file", "_record", "_closed", "_ends_request")

    def __init__(self, file: object, record: _Request) -> None:
        self._file = file
        self._record = record
        self._closed = False
        self._ends_request = False

    def __getattr__(self, name: str) -> object:
        if name[:2] == "__" or name in _FileProxy.__slots__:  # never set (copy, pickle): not the file's
            raise AttributeError(name)
        return getattr(self._file, name)

    def __iter__(self) -> Iterator[bytes]:
        return iter(cast("Iterable[bytes]", self._file))

    def returned(self) -> None:
        """The app returned this file's wrapper: from now on its close (or collection) ends the request."""
        self._ends_request = True

    def close(self) -> None:
        record = self._record
        try:
            if not self._closed:
                self._closed = True
                close = getattr(self._file, "close", None)
                if close is not None:
                    token = _attach(record.context)
                    try:
                        close()
                    finally:
                        _detach(token)
        finally:
            if self._ends_request:
                record.finish()  # once: finish claims the request

    def __del__(self) -> None:
        try:
            if self._ends_request:
                _abandon(self._record)  # nothing when already finished
        except Exception:  # noqa: BLE001 - e.g. at interpreter exit; a finalizer never raises
            pass


def _time_file_wrapper(made: tuple[object, _FileProxy] | None, result: object, record: _Request) -> bool:
    """Whether ``result`` is ``made``, the server's wrapper of the app's file that our
    ``wsgi.file_wrapper`` made in this request (then the proxy in it ends the request)."""
    try:
        if made is None or result is not made[0]:
            return False
        made[1].returned()
        length = _declared_length(record.headers)
        if length is not None:
            record.sent = length  # the server sends the file itself: the declared length is the size
    except Exception:  # noqa: BLE001 - monitoring must never raise into the request: a plain body
        log_internal_error("timing the server's file wrapper")
        return False
    return True


def _declared_length(headers: list[tuple[str, str]] | None) -> int | None:
    """``Content-Length`` from the app's headers (few, short: names of another length are skipped)."""
    if headers:
        for name, value in headers:
            if len(name) == 14 and name.lower() == "content-length":
                return int(value) if value.isdigit() else None
    return None
