"""The analytics blueprint: JSON endpoints under ``analytics_prefix`` (see ``docs/analytics-api.md``).

Every view reads the current process's :class:`~otel_monitor.analytics.AnalyticsState` (rebuilt
with the pipeline after a fork). A ``before_request`` guard authenticates every endpoint but the
public ``/health`` (and views marked :func:`~otel_monitor.analytics.auth.public`), an
``after_request`` adds ``Cache-Control: no-store``, ``nosniff`` and ``Vary``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from typing import Any, Optional
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, request

from .auth import Auth
from .dashboard import register_dashboard
from .summary import (
    READINESS_CHECKS,
    WINDOWS,
    Sample,
    apdex,
    diff,
    endpoint_rows,
    health_checks,
    is_error,
    merge,
    overall_status,
    series_quantile,
    stats,
)

__all__ = ["create_blueprint"]

#: the windows /performance always shows
PERFORMANCE_WINDOWS = ("1m", "5m", "15m", "all")
HEALTH_WINDOW = "5m"
MAX_LIMIT = 1000
#: per-route series in /timeseries (the busiest)
MAX_SPARKLINES = 20
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


class BadRequest(ValueError):
    """A query parameter we cannot use: 400 with the message."""


def _json(body: Any, status: int = 200, headers: Optional[dict] = None) -> Response:
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


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else round(seconds * 1000.0, 3)


def create_blueprint(monitor: Any, settings: Any, auth: Auth) -> Blueprint:
    """The blueprint for one monitored app (register it with ``app.register_blueprint``)."""
    from . import analytics_of

    prefix = settings.analytics_prefix.rstrip("/")
    bp = Blueprint("otel_monitor_analytics", __name__, url_prefix=prefix or None)
    public_health = settings.analytics_public_health
    apdex_t = settings.apdex_t_ms / 1000.0

    # analytics_source=prometheus: the fleet's figures stand in for this process's (prometheus_source.py).
    from .prometheus_source import attach, build_fleet

    fleet = build_fleet(settings, lambda: analytics_of(monitor))

    def state(local: bool = False) -> Any:
        if fleet is not None and not local:
            return fleet
        current = analytics_of(monitor)
        if current is None:
            raise RuntimeError("otel_monitor analytics: no pipeline (monitoring disabled?)")
        return current

    # -- access control and headers ---------------------------------------------------------

    @bp.before_request
    def guard() -> Any:
        view = current_app.view_functions.get(request.endpoint or "")
        if getattr(view, "_otel_monitor_public", False) or (request.endpoint or "").endswith(".static"):
            return None
        if request.endpoint in _health_endpoints and public_health:
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
            if (
                is_page
                and request.method == "GET"
                and "token" in request.args
                and not request.headers.get("Authorization")
            ):
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
            return redirect(f"{prefix}/login?" + urlencode({"next": request.full_path.rstrip("?")}), 303)
        return _json(
            {"error": "authentication required"},
            401,
            {"WWW-Authenticate": 'Basic realm="otel_monitor", charset="UTF-8"'},
        )

    @bp.after_request
    def headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if not getattr(response, "otel_monitor_cacheable", False):  # the dashboard's static files
            response.headers["Cache-Control"] = "no-store"
            response.vary.update(("Cookie", "Authorization"))
        return response

    @bp.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> Response:
        return _json({"error": str(exc)}, 400)

    # -- endpoints ------------------------------------------------------------------------------

    _health_endpoints = {f"{bp.name}.{name}" for name in ("health", "health_live", "health_ready")}

    @bp.get("/health/live")
    def health_live() -> Response:
        """Liveness: this process answers requests (a balancer or orchestrator restarts it otherwise)."""
        return _json({"status": "live"})

    @bp.get("/health/ready")
    def health_ready() -> Response:
        """Readiness for load balancers: 503 only when this instance cannot serve.

        With ``health_ready_thresholds`` also when one of this instance's own request or memory
        checks fails (after ``health_min_requests``); host CPU, memory and disk never count.
        """
        if analytics_of(monitor) is None:
            return _json({"status": "not ready", "reason": "monitoring is shut down"}, 503)
        body: dict[str, Any] = {"status": "ready"}
        if settings.health_ready_thresholds:
            failing = [c["name"] for c in _health_body()[0]["checks"] if c["status"] == "fail"]
            failing = [name for name in failing if name in READINESS_CHECKS]
            if failing:
                return _json({"status": "not ready", "failing": failing}, 503)
            body["thresholds"] = True
        return _json(body)

    @bp.get("/health")
    def health() -> Response:
        body, system = _health_body(local=request.args.get("scope") != "fleet")
        if not public_health or not auth.enabled or auth.authenticate(request):
            body["system"] = _system_block(system)
        return _json(body, 503 if body["status"] == "unhealthy" else 200)

    def _health_body(local: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        # Load balancers ask about this instance; the fleet's health is asked for by name.
        st = state(local=local)
        now = st.read()
        window = st.window(HEALTH_WINDOW, now)
        totals = stats(window["requests"], st.bounds, window["seconds"], apdex_t)
        system = now.system
        readings = {
            "latency_avg_ms": totals["latency"]["avg_ms"],
            "latency_p95_ms": totals["latency"]["p95_ms"],
            "error_rate_pct": totals["error_rate_pct"],
            "memory_pct": system.get("memory_pct"),
            "cpu_pct": system.get("cpu_pct"),
            "disk_pct": system.get("disk_pct"),
            "process_rss_max_bytes": system.get("process_rss_max_bytes"),
        }
        checks = health_checks(readings, settings, _over_fraction(st, now), totals["requests"])
        body: dict[str, Any] = {
            "status": overall_status(checks),
            "time": now.t,
            "uptime_s": round(now.t - st.started, 3),
            "window": HEALTH_WINDOW,
            "window_available": window["available"],
            "requests": totals["requests"],
            "checks": checks,
            # Spans dropped or not exported since start, by reason (all workers): the SDK-style
            # otel.sdk.processor.span.processed / otel.sdk.exporter.span.exported error counts.
            "telemetry": {"spans_lost": dict(system.get("spans_lost") or {})},
        }
        return body, system

    def _over_fraction(st: Any, now: Sample) -> dict[str, float]:
        """Per request check: the share of the window's 10 s steps (with requests) over the threshold."""
        over = {"latency_avg_ms": 0, "latency_p95_ms": 0, "error_rate_pct": 0}
        steps = 0
        for earlier, later in st.steps(WINDOWS[HEALTH_WINDOW], now):
            d = diff(later.requests, earlier.requests, st.bounds)
            total = merge(d.values())
            if total is None or total.count == 0:
                continue
            steps += 1
            errors = sum(s.count for k, s in d.items() if is_error(k))
            p95 = series_quantile(0.95, total, st.bounds)
            over["latency_avg_ms"] += total.sum / total.count * 1000 > settings.health_latency_avg_ms
            over["latency_p95_ms"] += p95 is not None and p95 * 1000 > settings.health_latency_p95_ms
            over["error_rate_pct"] += 100.0 * errors / total.count > settings.health_error_rate_pct
        if steps < 2:
            return {}
        return {name: count / steps for name, count in over.items()}

    @bp.get("/performance")
    def performance() -> Response:
        st = state()
        now = st.read()
        ranked = _window_param("15m")
        windows = {}
        # The asked-for window too (1 h and more from the history): its percentiles come from the
        # buckets merged over the whole window, never from averaging per-minute percentiles.
        ranked_window: dict[str, Any] = {}
        for name in dict.fromkeys((*PERFORMANCE_WINDOWS, ranked)):
            window = st.window(name, now)
            entry = stats(window["requests"], st.bounds, window["seconds"], apdex_t)
            entry["window_available"] = window["available"]
            entry["covered_s"] = round(window["seconds"], 3)
            entry["source"] = window["source"]
            windows[name] = entry
            if name == ranked:
                ranked_window = window
        window = ranked_window
        rows = endpoint_rows(window["requests"], st.bounds, window["seconds"])
        slowest = sorted((r for r in rows if r["p95_ms"] is not None), key=lambda r: -r["p95_ms"])[:10]
        failing = sorted((r for r in rows if r["errors"]), key=lambda r: (-r["errors"], -r["error_rate_pct"]))[:10]
        return _json(
            {
                "time": now.t,
                "apdex_t_ms": int(settings.apdex_t_ms)
                if float(settings.apdex_t_ms).is_integer()
                else settings.apdex_t_ms,
                "windows": windows,
                "ranked_window": ranked,
                "slowest_endpoints": [
                    {"route": r["route"], "method": r["method"], "p95_ms": r["p95_ms"], "count": r["count"]}
                    for r in slowest
                ],
                "most_failing_endpoints": [
                    {
                        "route": r["route"],
                        "method": r["method"],
                        "errors": r["errors"],
                        "error_rate_pct": r["error_rate_pct"],
                    }
                    for r in failing
                ],
            }
        )

    def _endpoints(window_name: str, now: Optional[Sample] = None) -> tuple[dict, list[dict]]:
        st = state()
        now = now or st.read()
        window = st.window(window_name, now)
        last_seen = dict(st.last_seen)
        newest = st.ring.newest()
        for key in window["requests"] if getattr(st, "tracks_last_seen", True) else ():
            # Seen since the last sample: now.
            previous = newest.requests.get(key) if newest is not None else None
            if previous is None or now.requests.get(key, previous).count > previous.count:
                last_seen[(key[0], key[1])] = now.t
        return window, endpoint_rows(window["requests"], st.bounds, window["seconds"], last_seen)

    @bp.get("/endpoints")
    def endpoints() -> Response:
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
        window, rows = _endpoints(window_name)
        rows = [r for r in rows if (not query or query in r["route"].lower()) and (not method or r["method"] == method)]
        present = [r for r in rows if r[sort] is not None]
        missing = [r for r in rows if r[sort] is None]
        present.sort(key=lambda r: (r[sort], r["route"], r["method"]), reverse=(order == "desc"))
        rows = present + sorted(missing, key=lambda r: (r["route"], r["method"]))
        return _json(
            {
                "window": window_name,
                "window_available": window["available"],
                "covered_s": round(window["seconds"], 3),
                "total": len(rows),
                "endpoints": rows[:limit],
            }
        )

    def _timeseries(window_name: str, route: Optional[str], method: Optional[str]) -> dict:
        st = state()
        now = st.read()
        length = WINDOWS[window_name]
        if length is None:
            length = now.t - st.started
        use_history = length > 900 and st.history is not None and st.history.usable
        points: list[dict] = []
        per_route: dict[str, list[int]] = {}

        def selected(requests: dict) -> dict:
            return {
                k: s
                for k, s in requests.items()
                if (route is None or k[0] == route) and (method is None or k[1] == method)
            }

        def point(t: float, seconds: float, requests: dict, system: dict) -> dict:
            total = merge(requests.values())
            count = total.count if total else 0
            errors = sum(s.count for k, s in requests.items() if is_error(k))
            return {
                "t": t,
                "requests": count,
                "rps": round(count / seconds, 3) if seconds > 0 else None,
                "error_rate_pct": round(100.0 * errors / count, 3) if count else None,
                "p95_ms": _ms(series_quantile(0.95, total, st.bounds)),
                "avg_ms": _ms(total.sum / total.count) if count else None,
                "apdex": round(apdex(total.buckets, st.bounds, apdex_t), 4) if total and count else None,
                **system,
            }

        steps_keys: list[dict] = []
        if use_history:
            step = 60
            by_minute = st.history.requests_by_minute(now.t - length, now.t)
            system_rows = st.history.system_by_minute(now.t - length, now.t)
            for minute in sorted(set(by_minute) | set(system_rows)):
                requests = selected(by_minute.get(minute, {}))
                steps_keys.append(requests)
                system = system_rows.get(minute, {})
                shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in system.items()}
                points.append(point(float(minute), step, requests, shown))
        else:
            step = st.step_s(length) if hasattr(st, "step_s") else 10
            for earlier, later in st.steps(length, now):
                requests = selected(diff(later.requests, earlier.requests, st.bounds))
                steps_keys.append(requests)
                points.append(point(later.t, later.t - earlier.t, requests, _system_point(earlier, later)))
        totals: dict[str, int] = {}
        for requests in steps_keys:
            for k, s in requests.items():
                name = f"{k[1]} {k[0]}"
                totals[name] = totals.get(name, 0) + s.count
        busiest = sorted(totals, key=lambda n: (-totals[n], n))[:MAX_SPARKLINES]
        for name in busiest:
            per_route[name] = []
        for requests in steps_keys:
            counts = dict.fromkeys(busiest, 0)
            for k, s in requests.items():
                name = f"{k[1]} {k[0]}"
                if name in counts:
                    counts[name] += s.count
            for name in busiest:
                per_route[name].append(counts[name])
        return {
            "window": window_name,
            "step_s": step,
            "source": getattr(st, "source", None) or ("history" if use_history else "memory"),
            "points": points,
            "routes": per_route,
        }

    @bp.get("/timeseries")
    def timeseries() -> Response:
        window_name = _window_param("15m")
        route = request.args.get("route") or None
        method = (request.args.get("method") or "").upper() or None
        return _json(_timeseries(window_name, route, method))

    @bp.get("/metrics")
    def metrics() -> Response:
        return _json({"metrics": _metrics_json(state().pipeline.collect_all())})

    @bp.get("/metrics/series")
    def metrics_series() -> Response:
        window_name = _window_param("15m")
        length = WINDOWS[window_name]
        st = state()
        now = st.clock()
        seconds = now - st.started if length is None else length
        body = st.custom.window(now, seconds)
        return _json({"window": window_name, **body})

    @bp.get("/traces")
    def traces() -> Response:
        kind = request.args.get("kind", "all")
        if kind not in ("slow", "failed", "all"):
            raise BadRequest("kind must be slow, failed or all")
        limit = _limit_param(50)
        st = state()
        entries = [e for e in st.traces() if kind == "all" or e.get("kind") == kind]
        entries.sort(key=lambda e: e.get("time") or 0, reverse=True)
        template = settings.trace_link_template
        detailed = {t["trace_id"] for t in st.trace_details()}
        for entry in entries[:limit]:
            entry["link"] = _trace_link(template, entry)
            entry["detail"] = entry.get("trace_id") in detailed
        return _json({"link_template": template, "traces": entries[:limit]})

    @bp.get("/traces/<trace_id>")
    def trace_detail(trace_id: str) -> Response:
        if not _TRACE_ID.fullmatch(trace_id):
            raise BadRequest("trace id must be 32 hexadecimal digits")
        found = [t for t in state().trace_details() if t.get("trace_id") == trace_id.lower()]
        if not found:
            return _json({"error": "trace not kept (only recent failed, slow and sampled requests are)"}, 404)
        tree = max(found, key=lambda t: t.get("time") or 0)
        return _json({**tree, "link": _trace_link(settings.trace_link_template, tree)})

    @bp.get("/errors")
    def errors() -> Response:
        limit = _limit_param(100)
        st = state()
        groups = st.error_groups()
        detailed = {t["trace_id"] for t in st.trace_details()}
        for group in groups:
            for example in group["examples"]:
                example["detail"] = example.get("trace_id") in detailed
        return _json({"groups": groups[:limit], "total": sum(g["count"] for g in groups), "timeline_step_s": 60})

    @bp.get("/dashboard")
    def dashboards() -> Response:
        links = [
            {"name": "Built-in dashboard", "url": f"{prefix}/"},
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

    @bp.get("/export")
    def export() -> Response:
        fmt = request.args.get("format", "json")
        if fmt not in ("json", "csv"):
            raise BadRequest("format must be csv or json")
        window_name = _window_param("1h")
        window, rows = _endpoints(window_name)
        rows.sort(key=lambda r: (-r["count"], r["route"], r["method"]))
        series = _timeseries(window_name, None, None)
        filename = f"otel-monitor-{window_name}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if fmt == "json":
            return _json(
                {
                    "window": window_name,
                    "window_available": window["available"],
                    "covered_s": round(window["seconds"], 3),
                    "endpoints": rows,
                    "timeseries": series,
                },
                headers=disposition,
            )
        return _csv_export(window_name, rows, series["points"], request.args.get("table"))

    if fleet is not None:
        attach(bp, fleet, settings, _window_param)

    register_dashboard(bp, auth, settings, monitor)
    return bp


def _trace_link(template: Optional[str], entry: dict) -> Optional[str]:
    if not template:
        return None
    return template.replace("{trace_id}", str(entry.get("trace_id"))).replace("{span_id}", str(entry.get("span_id")))


def _system_point(earlier: Sample, later: Sample) -> dict[str, Any]:
    s = later.system
    seconds = later.t - earlier.t

    def rate(key: str) -> Optional[float]:
        a, b = earlier.system.get(key), s.get(key)
        if a is None or b is None or seconds <= 0 or b < a:
            return None
        return round((b - a) / seconds, 3)

    def val(key: str) -> Any:
        v = s.get(key)
        return round(v, 3) if isinstance(v, float) else v

    return {
        "cpu_pct": val("cpu_pct"),
        "memory_pct": val("memory_pct"),
        "disk_pct": val("disk_pct"),
        "process_rss_bytes": val("process_rss_bytes"),
        "process_threads": val("process_threads"),
        "net_sent_bps": rate("net_bytes_sent"),
        "net_recv_bps": rate("net_bytes_recv"),
    }


def _system_block(s: dict[str, Any]) -> dict[str, Any]:
    def r(v: Any) -> Any:
        return round(v, 3) if isinstance(v, float) else v

    return {
        "memory": {
            "total_bytes": r(s.get("memory_total_bytes")),
            "used_bytes": r(s.get("memory_used_bytes")),
            "available_bytes": r(s.get("memory_available_bytes")),
            "used_pct": r(s.get("memory_pct")),
        },
        "cpu": {"system_pct": r(s.get("cpu_pct")), "process_pct": r(s.get("process_cpu_pct"))},
        "disk": {
            "mountpoint": s.get("disk_mountpoint"),
            "total_bytes": r(s.get("disk_total_bytes")),
            "used_bytes": r(s.get("disk_used_bytes")),
            "free_bytes": r(s.get("disk_free_bytes")),
            "used_pct": r(s.get("disk_pct")),
        },
        "network": {
            "bytes_sent": r(s.get("net_bytes_sent")),
            "bytes_recv": r(s.get("net_bytes_recv")),
            "packets_sent": r(s.get("net_packets_sent")),
            "packets_recv": r(s.get("net_packets_recv")),
        },
        "process": {
            "pid": os.getpid(),
            "rss_bytes": r(s.get("process_rss_bytes")),
            "vms_bytes": r(s.get("process_vms_bytes")),
            "threads": r(s.get("process_threads")),
            "cpu_pct": r(s.get("process_cpu_pct")),
            "workers": s.get("workers", 1),
        },
    }


def _metrics_json(data: Any) -> list[dict[str, Any]]:
    from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

    by_name: dict[str, dict[str, Any]] = {}
    if data is None:
        return []
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                d = metric.data
                if isinstance(d, Histogram):
                    kind = "histogram"
                elif isinstance(d, Sum):
                    kind = "counter" if d.is_monotonic else "updowncounter"
                elif isinstance(d, Gauge):
                    kind = "gauge"
                else:
                    continue
                entry = by_name.setdefault(
                    metric.name,
                    {
                        "name": metric.name,
                        "description": metric.description,
                        "unit": metric.unit,
                        "type": kind,
                        "points": [],
                    },
                )
                for p in d.data_points:
                    point: dict[str, Any] = {"attributes": dict(p.attributes)}
                    if kind == "histogram":
                        point.update(
                            count=p.count,
                            sum=p.sum,
                            min=p.min if p.count else None,
                            max=p.max if p.count else None,
                            bounds=list(p.explicit_bounds),
                            bucket_counts=list(p.bucket_counts),
                        )
                    else:
                        point["value"] = p.value
                    entry["points"].append(point)
    return sorted(by_name.values(), key=lambda m: m["name"])


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
    "endpoints": (
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
        "status_codes",
    ),
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
