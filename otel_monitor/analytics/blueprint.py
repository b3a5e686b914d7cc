"""The analytics blueprint: JSON endpoints under ``analytics_prefix`` (see ``docs/analytics-api.md``).

Each endpoint is a small module-level view taking the :class:`AnalyticsContext` of its app (the
monitor, settings, auth, the fleet source when ``analytics_source=prometheus``, derived constants)
and computing its answer with :mod:`.reports`; :data:`VIEWS` registers them all. Views read the
current process's :class:`~otel_monitor.analytics.AnalyticsState` (rebuilt with the pipeline after
a fork) or the fleet's figures. A ``before_request`` guard authenticates every endpoint but the
public ``/health`` (and views marked :func:`~otel_monitor.analytics.auth.public`), an
``after_request`` adds ``Cache-Control: no-store``, ``nosniff`` and ``Vary``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, request

from . import analytics_of, insights
from .auth import Auth
from .dashboard import register_dashboard
from .profile_view import profiles
from .prometheus_source import FleetState, attach, build_fleet
from .reports import (
    StateSource,
    degraded_modes,
    endpoint_window,
    health_report,
    metrics_json,
    performance,
    system_block,
    timeseries,
)
from .summary import READINESS_CHECKS, WINDOWS

if TYPE_CHECKING:
    from . import AnalyticsState

__all__ = ["create_blueprint", "AnalyticsContext", "VIEWS"]

MAX_LIMIT = 1000
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


class BadRequest(ValueError):
    """A query parameter we cannot use: 400 with the message."""


# -- JSON and request parsing ----------------------------------------------------------------------


def _json(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    text = json.dumps(_clean(body), separators=(",", ":"), allow_nan=False)
    return Response(text, status=status, mimetype="application/json", headers=headers)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _window_param(default: str) -> str:
    name = request.args.get("window", default)
    if name not in WINDOWS:
        raise BadRequest(f"window must be one of {', '.join(WINDOWS)}")
    return name


def _limit_param(default: int) -> int:
    text = request.args.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a number from 1 to {MAX_LIMIT}")
    return int(text)


# -- the context every view reads ------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyticsContext:
    """What the views of one monitored app need: built once per blueprint."""

    monitor: Any
    settings: Any
    auth: Auth
    #: the fleet source (``analytics_source=prometheus``), else None
    fleet: FleetState | None
    #: ``analytics_prefix`` without its trailing slash
    prefix: str
    #: Apdex T in seconds
    apdex_t: float

    @classmethod
    def build(cls, monitor: Any, settings: Any, auth: Auth) -> AnalyticsContext:
        fleet = build_fleet(settings, lambda: analytics_of(monitor))
        return cls(monitor, settings, auth, fleet, settings.analytics_prefix.rstrip("/"), settings.apdex_t_ms / 1000.0)

    def state(self) -> StateSource:
        """Where the request figures come from: the fleet when configured, else this process."""
        return self.fleet if self.fleet is not None else self.local()

    def local(self) -> AnalyticsState:
        """This process's analytics: what Prometheus cannot give (spans, custom metrics, own health)."""
        current = analytics_of(self.monitor)
        if current is None:
            raise RuntimeError("otel_monitor analytics: no pipeline (monitoring disabled?)")
        return current


# -- access control and headers --------------------------------------------------------------------


def guard(ctx: AnalyticsContext) -> Any:
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


def performance_view(ctx: AnalyticsContext) -> Response:
    ranked = _window_param("15m")
    return _json(performance(ctx.state(), ctx.settings, ctx.apdex_t, ranked))


def endpoints(ctx: AnalyticsContext) -> Response:
    window_name = _window_param("5m")
    sort = request.args.get("sort", "count")
    if sort not in _SORTABLE:
        raise BadRequest(f"sort must be one of {', '.join(_SORTABLE)}")
    order = request.args.get("order", "desc" if sort not in ("route", "method") else "asc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    limit = _limit_param(100)
    query = request.args.get("q", "")[:200].lower()
    method = request.args.get("method", "").upper()[:16]
    found = endpoint_window(ctx.state(), window_name)
    rows = [
        r for r in found.rows if (not query or query in r["route"].lower()) and (not method or r["method"] == method)
    ]
    present = [r for r in rows if r[sort] is not None]
    missing = [r for r in rows if r[sort] is None]
    present.sort(key=lambda r: (r[sort], r["route"], r["method"]), reverse=(order == "desc"))
    rows = present + sorted(missing, key=lambda r: (r["route"], r["method"]))
    return _json(
        {
            "window": window_name,
            "window_available": found.available,
            "covered_s": found.covered_s,
            "total": len(rows),
            "endpoints": rows[:limit],
        }
    )


def timeseries_view(ctx: AnalyticsContext) -> Response:
    window_name = _window_param("15m")
    route = request.args.get("route") or None
    method = (request.args.get("method") or "").upper() or None
    return _json(timeseries(ctx.state(), window_name, ctx.apdex_t, route, method))


def metrics(ctx: AnalyticsContext) -> Response:
    # The custom metrics are this process's (and its workers'), whatever the request figures' source.
    return _json({"metrics": metrics_json(ctx.local().pipeline.collect_all())})


def metrics_series(ctx: AnalyticsContext) -> Response:
    window_name = _window_param("15m")
    length = WINDOWS[window_name]
    st = ctx.local()
    now = st.clock()
    seconds = now - st.started if length is None else length
    return _json({"window": window_name, **st.custom.window(now, seconds)})


def traces(ctx: AnalyticsContext) -> Response:
    kind = request.args.get("kind", "all")
    if kind not in ("slow", "failed", "all"):
        raise BadRequest("kind must be slow, failed or all")
    limit = _limit_param(50)
    st = ctx.local()  # Prometheus holds no spans: the recent requests are this process's
    entries = [e for e in st.traces() if kind == "all" or e.get("kind") == kind]
    entries.sort(key=lambda e: e.get("time") or 0, reverse=True)
    template = ctx.settings.trace_link_template
    detailed = {t["trace_id"] for t in st.trace_details()}
    for entry in entries[:limit]:
        entry["link"] = _trace_link(template, entry)
        entry["detail"] = entry.get("trace_id") in detailed
    return _json({"link_template": template, "traces": entries[:limit]})


def trace_detail(ctx: AnalyticsContext, trace_id: str) -> Response:
    if not _TRACE_ID.fullmatch(trace_id):
        raise BadRequest("trace id must be 32 hexadecimal digits")
    found = [t for t in ctx.local().trace_details() if t.get("trace_id") == trace_id.lower()]
    if not found:
        return _json({"error": "trace not kept (only recent failed, slow and sampled requests are)"}, 404)
    tree = max(found, key=lambda t: t.get("time") or 0)
    return _json({**tree, "link": _trace_link(ctx.settings.trace_link_template, tree)})


def errors(ctx: AnalyticsContext) -> Response:
    limit = _limit_param(100)
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
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be csv or json")
    window_name = _window_param("1h")
    st = ctx.state()
    found = endpoint_window(st, window_name)
    rows = sorted(found.rows, key=lambda r: (-r["count"], r["route"], r["method"]))
    series = timeseries(st, window_name, ctx.apdex_t)
    if fmt == "csv":
        return _csv_export(window_name, rows, series["points"], request.args.get("table"))
    filename = f"otel-monitor-{window_name}.{fmt}"
    return _json(
        {
            "window": window_name,
            "window_available": found.available,
            "covered_s": found.covered_s,
            "endpoints": rows,
            "timeseries": series,
        },
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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


def create_blueprint(monitor: Any, settings: Any, auth: Auth) -> Blueprint:
    """The blueprint for one monitored app (register it with ``app.register_blueprint``)."""
    ctx = AnalyticsContext.build(monitor, settings, auth)
    bp = Blueprint(_NAME, __name__, url_prefix=ctx.prefix or None)
    bp.before_request(functools.partial(guard, ctx))
    bp.after_request(add_headers)
    bp.register_error_handler(BadRequest, bad_request)
    for rule, endpoint, view in VIEWS:
        bp.add_url_rule(rule, endpoint, functools.partial(view, ctx), methods=["GET"])
    if ctx.fleet is not None:
        attach(bp, ctx.fleet, settings, _window_param)
    register_dashboard(bp, auth, settings, monitor)
    return bp


def _trace_link(template: str | None, entry: dict) -> str | None:
    if not template:
        return None
    return template.replace("{trace_id}", str(entry.get("trace_id"))).replace("{span_id}", str(entry.get("span_id")))


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
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


def _csv_export(window_name: str, rows: list[dict], points: list[dict], table: str | None) -> Response:
    """``table=endpoints|timeseries``: that table as one CSV file; no ``table``: both, in one zip."""
    tables = {"endpoints": rows, "timeseries": points}
    if table is not None:
        if table not in tables:
            raise BadRequest("table must be endpoints or timeseries")
        filename = f"otel-monitor-{window_name}-{table}.csv"
        body = _csv_table(CSV_TABLES[table], tables[table])
        return Response(
            body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, records in tables.items():
            archive.writestr(f"otel-monitor-{window_name}-{name}.csv", _csv_table(CSV_TABLES[name], records))
    filename = f"otel-monitor-{window_name}-csv.zip"
    return Response(
        out.getvalue(),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_table(fields: tuple[str, ...], records: list[dict]) -> str:
    """A header row, then one row per record: what a spreadsheet or ``pandas.read_csv`` opens as is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for record in records:
        writer.writerow([_cell(record.get(f)) for f in fields])
    return out.getvalue()
