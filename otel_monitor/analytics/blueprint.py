"""The analytics blueprint: JSON endpoints under ``analytics_prefix`` (see ``docs/analytics-api.md``).

Each endpoint is a small module-level view taking the :class:`AnalyticsContext` of its app (the
monitor, settings, auth, the fleet source when ``analytics_source=prometheus``, derived constants)
and computing its answer with :mod:`.reports`; :data:`VIEWS` registers them all. Views read the
current process's :class:`~otel_monitor.analytics.AnalyticsState` (rebuilt with the pipeline after
a fork) or the fleet's figures. A ``before_request`` guard authenticates every endpoint but the
public ``/health`` (and views marked :func:`~otel_monitor.analytics.auth.public`), an
``after_request`` adds ``Cache-Control: no-store``, ``nosniff`` and ``Vary``.

Cost: every view but those in :data:`UNCAPPED` passes the per-process :class:`~.gate.Gate`
(``analytics_max_concurrent`` at once, then 503 with ``Retry-After``); the figures come from the
state's per-tick summaries (``st.summaries``), so a view mostly formats what the first caller
of the tick computed; the export streams its file.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, has_request_context, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from .._safe_log import log_internal_error
from . import insights
from ._json import json_text
from ._params import BadRequest, limit_param, window_param
from .access import analytics_of
from .auth import Auth
from .dashboard import register_dashboard
from .gate import RETRY_AFTER_S, Gate
from .profile_view import profiles
from .prometheus_source import Cache, FleetState, FleetUnavailable, build_fleet
from .reports import (
    StateSource,
    TimeseriesBody,
    degraded_modes,
    health_report,
    metrics_json,
    performance,
    system_block,
    timeseries,
)
from .summaries import Tick, WindowSummary
from .summary import READINESS_CHECKS, WINDOWS

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from ..monitor import Monitor
    from ..settings import Settings
    from . import AnalyticsState

__all__ = ["create_blueprint", "AnalyticsContext", "VIEWS", "FLEET_VIEWS", "UNCAPPED"]

_SORTABLE = (
    "route",
    "method",
    "count",
    "errors",
    "error_rate_pct",
    "rps",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "avg_ms",
    "last_seen",
)
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_NAME = "otel_monitor_analytics"
#: public with ``analytics_public_health``
_HEALTH_ENDPOINTS = frozenset(f"{_NAME}.{view}" for view in ("health", "health_live", "health_ready"))


# -- JSON answers ----------------------------------------------------------------------------------


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_text(body), status=status, mimetype="application/json", headers=headers)


# -- the context every view reads ------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyticsContext:
    """What the views of one monitored app need: built once per blueprint."""

    monitor: Monitor
    settings: Settings
    auth: Auth
    #: the fleet source (``analytics_source=prometheus``), else None
    fleet: FleetState | None
    #: ``analytics_prefix`` without its trailing slash
    prefix: str
    #: Apdex T in seconds
    apdex_t: float
    #: the cap on concurrent heavy requests of this process (``analytics_max_concurrent``)
    gate: Gate

    @classmethod
    def build(cls, monitor: Monitor, settings: Settings, auth: Auth) -> AnalyticsContext:
        fleet = build_fleet(settings, lambda: analytics_of(monitor), context=_request_cache)
        return cls(
            monitor,
            settings,
            auth,
            fleet,
            settings.analytics_prefix.rstrip("/"),
            settings.apdex_t_ms / 1000.0,
            Gate(settings.analytics_max_concurrent),
        )

    def state(self) -> StateSource:
        """Where the request figures come from: the fleet when configured, else this process."""
        return self.fleet if self.fleet is not None else self.local()

    def local(self) -> AnalyticsState:
        """This process's analytics: what Prometheus cannot give (spans, custom metrics, own health)."""
        current = analytics_of(self.monitor)
        if current is None:
            raise RuntimeError("otel_monitor analytics: no pipeline (monitoring disabled?)")
        return current


def _request_cache() -> Cache:
    """The fleet source's cache and deadline of this analytics request (a fresh dict outside one)."""
    if not has_request_context():
        return {}
    cache: Cache | None = g.get("_otel_monitor_fleet")
    if cache is None:
        cache = {}
        g._otel_monitor_fleet = cache
    return cache


# -- access control and headers --------------------------------------------------------------------


def guard(ctx: AnalyticsContext) -> BaseResponse | None:
    """Authenticate the request (None lets it through), exchange a login link for a session."""
    auth = ctx.auth
    endpoint = request.endpoint or ""
    view = current_app.view_functions.get(endpoint)
    if getattr(view, "_otel_monitor_public", False) or endpoint.endswith(".static"):
        return None
    if endpoint in _HEALTH_ENDPOINTS and ctx.settings.analytics_public_health:
        return None
    if not auth.enabled:
        return None
    if not auth.presented_credentials(request) and auth.session_id(request) is not None:
        return None  # a signed-in session is no guess: it works while guessers are throttled
    client = auth.client_key(request)
    wait = auth.retry_after(client)
    if wait is not None:
        return _json(
            {"error": "too many failed attempts; try again later"}, 429, {"Retry-After": str(int(math.ceil(wait)))}
        )
    is_page = getattr(view, "_otel_monitor_page", False)
    if auth.authenticate(request):
        auth.record_success(client)
        if is_page and request.method == "GET" and "token" in request.args and not request.headers.get("Authorization"):
            # The login link: exchange the token for a session cookie, drop it from the URL.
            rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
            response = redirect(request.path + ("?" + urlencode(rest) if rest else ""), 303)
            auth.issue_session(response, request)
            return response
        return None
    if auth.presented_credentials(request):
        auth.record_failure(client)
    if (
        is_page
        and request.method == "GET"
        and not request.headers.get("Authorization")
        and "text/html" in request.headers.get("Accept", "")
    ):
        return redirect(f"{ctx.prefix}/login?" + urlencode({"next": request.full_path.rstrip("?")}), 303)
    return _json(
        {"error": "authentication required"},
        401,
        {"WWW-Authenticate": 'Basic realm="otel_monitor", charset="UTF-8"'},
    )


def add_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not getattr(response, "otel_monitor_cacheable", False):  # the dashboard's static files
        response.headers["Cache-Control"] = "no-store"
        response.vary.update(("Cookie", "Authorization"))
    return response


def bad_request(exc: BadRequest) -> Response:
    return _json({"error": str(exc)}, 400)


def fleet_unavailable(ctx: AnalyticsContext, exc: FleetUnavailable) -> Response:
    """Prometheus did not answer usefully in time: 503, the reason, and when to ask again."""
    selector = ctx.fleet.selector if ctx.fleet is not None else None
    body = {"error": str(exc), "source": "prometheus", "selector": selector}
    return Response(json.dumps(body), status=503, mimetype="application/json", headers={"Retry-After": "10"})


# -- the views -------------------------------------------------------------------------------------


def health_live(ctx: AnalyticsContext) -> Response:
    """Liveness: this process answers requests (a balancer or orchestrator restarts it otherwise)."""
    return _json({"status": "live"})


def health_ready(ctx: AnalyticsContext) -> Response:
    """Readiness for load balancers: 503 only when this instance cannot serve.

    With ``health_ready_thresholds`` also when one of this instance's own request or memory
    checks fails (after ``health_min_requests``); host CPU, memory and disk never count.
    """
    if analytics_of(ctx.monitor) is None:
        return _json({"status": "not ready", "reason": "monitoring is shut down"}, 503)
    body: dict[str, Any] = {"status": "ready"}
    if ctx.settings.health_ready_thresholds:
        report = health_report(ctx.local(), ctx.settings, ctx.apdex_t)
        failing = [name for name in report.failing() if name in READINESS_CHECKS]
        if failing:
            return _json({"status": "not ready", "failing": failing}, 503)
        body["thresholds"] = True
    return _json(body)


def health(ctx: AnalyticsContext) -> Response:
    # Load balancers ask about this instance; the fleet's health is asked for by name.
    fleet = request.args.get("scope") == "fleet"
    st = ctx.state() if fleet else ctx.local()
    report = health_report(st, ctx.settings, ctx.apdex_t, [] if fleet else degraded_modes(ctx.local()))
    body = report.body
    auth = ctx.auth
    if not ctx.settings.analytics_public_health or not auth.enabled or auth.authenticate(request):
        body["system"] = system_block(report.system)
    return _json(body, 503 if body["status"] == "unhealthy" else 200)


def _tick_json(st: StateSource, key: tuple[str | None, ...], body: Callable[[Tick], Any]) -> Response:
    """The JSON answer ``body(tick)``, formatted once per tick and ``key``: every caller of the tick gets that text."""
    text = st.summaries.memo(("body", *key), lambda tick: json_text(body(tick)))
    return Response(text, mimetype="application/json")


def performance_view(ctx: AnalyticsContext) -> Response:
    ranked = window_param("15m")
    st = ctx.state()
    return _tick_json(st, ("performance", ranked), lambda _: performance(st, ctx.settings, ctx.apdex_t, ranked))


def endpoints(ctx: AnalyticsContext) -> Response:
    window_name = window_param("5m")
    sort = request.args.get("sort", "count")
    if sort not in _SORTABLE:
        raise BadRequest(f"sort must be one of {', '.join(_SORTABLE)}")
    order = request.args.get("order", "desc" if sort not in ("route", "method") else "asc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    limit = limit_param(100)
    query = request.args.get("q", "")[:200].lower()
    method = request.args.get("method", "").upper()[:16]
    st = ctx.state()

    def body(tick: Tick) -> dict[str, Any]:
        summary = st.summaries.window(window_name, tick)
        rows: Iterable[dict[str, Any]] = summary.sorted_rows(sort, order == "desc")  # sorted once per tick
        if query or method:
            rows = (
                r for r in rows if (not query or query in r["route"].lower()) and (not method or r["method"] == method)
            )
        chosen = list(rows)
        return {
            "window": window_name,
            "window_available": summary.available,
            "covered_s": summary.covered_s,
            "total": len(chosen),
            "endpoints": chosen[:limit],
        }

    return _tick_json(st, ("endpoints", window_name, sort, order, query, method, str(limit)), body)


def timeseries_view(ctx: AnalyticsContext) -> Response:
    window_name = window_param("15m")
    route = request.args.get("route") or None
    method = (request.args.get("method") or "").upper() or None
    st = ctx.state()
    return _tick_json(
        st,
        ("timeseries", window_name, route, method),
        lambda _: timeseries(st, window_name, ctx.apdex_t, route, method),
    )


def metrics(ctx: AnalyticsContext) -> Response:
    # The custom metrics are this process's (and its workers'), whatever the request figures' source:
    # those of the tick, formatted once per tick (with 500 routes the body is most of a megabyte).
    summaries = ctx.local().summaries
    text = summaries.memo(("metrics_body",), lambda tick: json_text({"metrics": metrics_json(tick.data)}))
    return Response(text, mimetype="application/json")


def metrics_series(ctx: AnalyticsContext) -> Response:
    window_name = window_param("15m")
    length = WINDOWS[window_name]
    st = ctx.local()
    now = st.clock()
    seconds = now - st.started if length is None else length
    return _json({"window": window_name, **st.custom.window(now, seconds)})


def traces(ctx: AnalyticsContext) -> Response:
    kind = request.args.get("kind", "all")
    if kind not in ("slow", "failed", "all"):
        raise BadRequest("kind must be slow, failed or all")
    limit = limit_param(50)
    st = ctx.local()  # Prometheus holds no spans: the recent requests are this process's

    def body(_: Tick) -> dict[str, Any]:
        entries = [e for e in st.traces() if kind == "all" or e.get("kind") == kind]
        entries.sort(key=lambda e: e.get("time") or 0, reverse=True)
        template = ctx.settings.trace_link_template
        detailed = {t["trace_id"] for t in st.trace_details()}
        for entry in entries[:limit]:
            entry["link"] = _trace_link(template, entry)
            entry["detail"] = entry.get("trace_id") in detailed
        return {"link_template": template, "traces": entries[:limit]}

    # The list as of the tick, like every figure: gathering every worker's lists is the cost.
    return _tick_json(st, ("traces", kind, str(limit)), body)


def trace_detail(ctx: AnalyticsContext, trace_id: str) -> Response:
    if not _TRACE_ID.fullmatch(trace_id):
        raise BadRequest("trace id must be 32 hexadecimal digits")
    found = [t for t in ctx.local().trace_details() if t.get("trace_id") == trace_id.lower()]
    if not found:
        return _json({"error": "trace not kept (only recent failed, slow and sampled requests are)"}, 404)
    tree = max(found, key=lambda t: t.get("time") or 0)
    return _json({**tree, "link": _trace_link(ctx.settings.trace_link_template, tree)})


def errors(ctx: AnalyticsContext) -> Response:
    limit = limit_param(100)
    st = ctx.local()
    groups = st.error_groups()
    detailed = {t["trace_id"] for t in st.trace_details()}
    for group in groups:
        for example in group["examples"]:
            example["detail"] = example.get("trace_id") in detailed
    return _json({"groups": groups[:limit], "total": sum(g["count"] for g in groups), "timeline_step_s": 60})


def dashboards(ctx: AnalyticsContext) -> Response:
    settings = ctx.settings
    links = [
        {"name": "Built-in dashboard", "url": f"{ctx.prefix}/"},
        {"name": "Prometheus metrics", "url": settings.metrics_path},
    ]
    for name, url in (
        ("Grafana", settings.grafana_url),
        ("Prometheus", settings.prometheus_url),
        ("Jaeger", settings.jaeger_url),
    ):
        if url:
            links.append({"name": name, "url": url})
    return _json({"dashboards": links})


def export(ctx: AnalyticsContext) -> Response:
    """The window's endpoints and time series as a download, streamed.

    The figures are the tick's, found (or computed) here, under the cap. The file is formatted
    chunk by chunk as it is sent, once per tick: the other downloads of the same tick replay
    those chunks (:class:`_SharedStream`) rather than format the file again.
    """
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be csv or json")
    window_name = window_param("1h")
    table = request.args.get("table") if fmt == "csv" else None
    if table is not None and table not in CSV_TABLES:
        raise BadRequest("table must be endpoints or timeseries")
    st = ctx.state()
    summary = st.summaries.window(window_name)
    series = timeseries(st, window_name, ctx.apdex_t)
    if fmt == "json":
        filename, mimetype = f"otel-monitor-{window_name}.json", "application/json"
    elif table is not None:
        filename, mimetype = f"otel-monitor-{window_name}-{table}.csv", "text/csv"
    else:
        filename, mimetype = f"otel-monitor-{window_name}-csv.zip", "application/zip"
    shared = st.summaries.memo(
        ("export", window_name, fmt, table),
        lambda tick: _SharedStream(_export_chunks(window_name, fmt, table, summary, series)),
    )
    return _streamed(shared.reader(), mimetype, {"Content-Disposition": f'attachment; filename="{filename}"'})


def _export_chunks(
    window_name: str, fmt: str, table: str | None, summary: WindowSummary, series: TimeseriesBody
) -> Iterator[bytes]:
    rows = sorted(summary.rows, key=lambda r: (-r["count"], r["route"], r["method"]))
    if fmt == "json":
        body = {
            "window": window_name,
            "window_available": summary.available,
            "covered_s": summary.covered_s,
            "endpoints": rows,
            "timeseries": series,
        }
        return (chunk.encode() for chunk in _json_chunks(body))
    tables = {"endpoints": rows, "timeseries": series["points"]}
    if table is not None:
        return (chunk.encode() for chunk in _csv_chunks(CSV_TABLES[table], tables[table]))
    files = {
        f"otel-monitor-{window_name}-{name}.csv": _csv_chunks(CSV_TABLES[name], records)
        for name, records in tables.items()
    }
    return _zip_chunks(files)


class _SharedStream:
    """One file's chunks, made as the first reader needs them and kept for the tick's other readers."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = _guarded(source)
        self._chunks: list[bytes] = []
        self._done = False
        self._lock = threading.Lock()

    def reader(self) -> Iterator[bytes]:
        index = 0
        while True:
            with self._lock:  # one reader formats the next chunk, the others wait for it
                if index == len(self._chunks):
                    if self._done:
                        return
                    chunk = next(self._source, None)
                    if chunk is None:
                        self._done = True
                        return
                    self._chunks.append(chunk)
                chunk = self._chunks[index]
            index += 1
            if chunk:
                yield chunk


#: (URL rule, endpoint name, view): every JSON endpoint of the blueprint (all GET)
VIEWS: tuple[tuple[str, str, Callable[..., Response]], ...] = (
    ("/health/live", "health_live", health_live),
    ("/health/ready", "health_ready", health_ready),
    ("/health", "health", health),
    ("/performance", "performance", performance_view),
    ("/endpoints", "endpoints", endpoints),
    ("/timeseries", "timeseries", timeseries_view),
    ("/metrics", "metrics", metrics),
    ("/metrics/series", "metrics_series", metrics_series),
    ("/traces", "traces", traces),
    ("/traces/<trace_id>", "trace_detail", trace_detail),
    ("/profiles", "profiles", profiles),
    ("/errors", "errors", errors),
    ("/dashboard", "dashboards", dashboards),
    ("/export", "export", export),
    ("/versions", "versions", insights.versions_view),
    ("/users", "users", insights.users_view),
    ("/clients", "clients", insights.clients_view),
    ("/heatmap", "heatmap", insights.heatmap_view),
)


def instances(ctx: AnalyticsContext) -> Response:
    """One row per instance Prometheus scrapes (registered with the fleet source only)."""
    fleet = ctx.fleet
    if fleet is None:  # not routed without a fleet
        return _json({"error": "not found"}, 404)
    body = fleet.instances(window_param("5m"), ctx.apdex_t)
    body["traces"] = {
        "scope": "local",
        "note": "Recent traces are this instance's; the fleet's are in the trace backend.",
        "trace_viewer_url": ctx.settings.jaeger_url,
        "link_template": ctx.settings.trace_link_template,
    }
    body["prometheus_url"] = ctx.settings.prometheus_url
    return _json(body)


#: the endpoints only the fleet source has (``analytics_source=prometheus``), as :data:`VIEWS`
FLEET_VIEWS: tuple[tuple[str, str, Callable[..., Response]], ...] = (("/instances", "instances", instances),)


#: endpoints the cap never refuses: the probes of load balancers and orchestrators, the links list
UNCAPPED = frozenset({"health_live", "health_ready", "health", "dashboards"})


def _capped(gate: Gate, view: Callable[..., Response]) -> Callable[..., Response]:
    """``view`` behind ``gate``: 503 with ``Retry-After`` when no slot frees in time.

    A streamed answer keeps its slot until the stream ends or is closed (its formatting is the work).
    """

    def capped(**kwargs: object) -> Response:
        if not gate.enter():
            return _json(
                {"error": "the analytics are busy (too many requests at once); retry later"},
                503,
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        released = False

        def leave() -> None:
            nonlocal released
            if not released:
                released = True
                gate.leave()

        try:
            response = view(**kwargs)
        except BaseException:
            leave()
            raise
        if response.is_streamed:
            response.response = _finally(response.response, leave)
            response.call_on_close(leave)
        else:
            leave()
        return response

    return capped


def _finally(chunks: Iterable[Any], done: Callable[[], None]) -> Iterator[Any]:
    try:
        yield from chunks
    finally:
        done()  # exhausted, closed or collected


def create_blueprint(monitor: Monitor, settings: Settings, auth: Auth) -> Blueprint:
    """The blueprint for one monitored app (register it with ``app.register_blueprint``)."""
    ctx = AnalyticsContext.build(monitor, settings, auth)
    bp = Blueprint(_NAME, __name__, url_prefix=ctx.prefix or None)
    bp.before_request(functools.partial(guard, ctx))
    bp.after_request(add_headers)
    bp.register_error_handler(BadRequest, bad_request)
    if ctx.fleet is not None:
        bp.register_error_handler(FleetUnavailable, functools.partial(fleet_unavailable, ctx))
    for rule, endpoint, view in VIEWS + (FLEET_VIEWS if ctx.fleet is not None else ()):
        handler: Callable[..., Response] = functools.partial(view, ctx)
        if endpoint not in UNCAPPED:
            handler = _capped(ctx.gate, handler)
        bp.add_url_rule(rule, endpoint, handler, methods=["GET"])
    register_dashboard(bp, auth, settings, monitor)
    return bp


def _trace_link(template: str | None, entry: Mapping[str, Any]) -> str | None:
    if not template:
        return None
    return template.replace("{trace_id}", str(entry.get("trace_id"))).replace("{span_id}", str(entry.get("span_id")))


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """CSV cells that a spreadsheet would run as a formula get a leading quote (CWE-1236)."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else value


#: the CSV export's tables, each a file of its own: name -> columns
CSV_TABLES: dict[str, tuple[str, ...]] = {
    "endpoints": (*_SORTABLE, "status_codes"),
    "timeseries": (
        "t",
        "requests",
        "rps",
        "error_rate_pct",
        "p95_ms",
        "avg_ms",
        "apdex",
        "cpu_pct",
        "memory_pct",
        "disk_pct",
        "process_rss_bytes",
        "process_threads",
        "net_sent_bps",
        "net_recv_bps",
    ),
}


#: rows formatted per chunk of a streamed export
CHUNK_ROWS = 256


def _streamed(chunks: Iterator[bytes], mimetype: str, headers: dict[str, str]) -> Response:
    response = Response(chunks, mimetype=mimetype, headers=headers)
    response.implicit_sequence_conversion = False  # never joined into one body (e.g. by get_data)
    return response


def _guarded(chunks: Iterator[Any]) -> Iterator[Any]:
    """The chunks; a bug while formatting ends the stream (logged) instead of failing in the server."""
    try:
        yield from chunks
    except Exception:  # noqa: BLE001 - the headers are sent: a shorter file is all that is left to give
        log_internal_error("streaming an analytics export")


def _csv_chunks(fields: tuple[str, ...], records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """A header row, then one row per record: what a spreadsheet or ``pandas.read_csv`` opens as is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    yield _taken(out)  # the download starts at once
    for n, record in enumerate(records, 1):
        writer.writerow([_cell(record.get(f)) for f in fields])
        if n % CHUNK_ROWS == 0:
            yield _taken(out)
    yield _taken(out)


def _taken(out: io.StringIO) -> str:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


class _Pipe(io.RawIOBase):
    """A write-only, unseekable file whose bytes are taken out as they come (a streamed zip)."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _zip_chunks(files: dict[str, Iterator[str]]) -> Iterator[bytes]:
    """A zip of ``files`` (name -> text chunks), written as it is read: the sizes follow each file."""
    pipe = _Pipe()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, chunks in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as member:
                for chunk in chunks:
                    member.write(chunk.encode("utf-8"))
                    data = pipe.take()
                    if data:
                        yield data
            yield pipe.take()
    yield pipe.take()


def _json_chunks(body: object, depth: int = 3) -> Iterator[str]:
    """``json_text(body)`` in pieces: lists and dicts down to ``depth`` streamed item by item."""
    pending: list[str] = []
    size = 0
    for piece in _json_pieces(body, depth):
        pending.append(piece)
        size += len(piece)
        if size >= 65536:
            yield "".join(pending)
            pending, size = [], 0
    yield "".join(pending)


def _json_pieces(value: object, depth: int) -> Iterator[str]:
    if depth <= 0 or not isinstance(value, (dict, list, tuple)):
        yield json_text(value)
    elif isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ("," if i else "") + json.dumps(str(key)) + ":"
            yield from _json_pieces(item, depth - 1)
        yield "}"
    else:
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _json_pieces(item, depth - 1)
        yield "]"
