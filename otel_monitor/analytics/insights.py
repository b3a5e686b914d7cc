"""The views of ``/versions``, ``/users``, ``/clients`` and ``/heatmap`` (see docs/analytics-api.md).

Registered in the blueprint's ``VIEWS`` table; each takes the blueprint's context (only the part
described by :class:`ViewContext`). The figures: :mod:`.versions`, :mod:`.users`, :mod:`.heatmap`.
:func:`setup` (per pipeline, also in each forked worker) shares what a worker counted since its
last history write, so that windows include the running processes' unwritten minutes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from flask import Response, request
from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .._safe_log import log_internal_error
from ..metrics.metrics_view import Channel
from ..settings import Settings
from ._json import json_response
from ._params import BadRequest, limit_param, window_param
from .heatmap import METRICS, heatmap
from .summary import WINDOWS, Key, Series, add, diff, extract
from .users import CLIENTS_SHARE_KEY, MINUTES_KEPT, USERS_SHARE_KEY, merge_snapshots, top
from .versions import VersionData, parse_entries, unwritten_entries, versions_report

if TYPE_CHECKING:
    from ..telemetry.pipeline import Pipeline
    from . import AnalyticsState
    from .prometheus_source import FleetState

__all__ = ["ViewContext", "setup", "versions_view", "users_view", "clients_view", "heatmap_view", "UNWRITTEN_KEY"]

#: each worker's requests since its last history write: {"version", "since", "requests"}
UNWRITTEN_KEY: Channel[dict[str, Any]] = Channel("otel_monitor.analytics.unwritten")
_HEATMAP_WINDOWS = ("1h", "6h", "24h", "7d")


class ViewContext(Protocol):
    """What these views read of the blueprint's ``AnalyticsContext``."""

    @property
    def settings(self) -> Settings: ...

    @property
    def fleet(self) -> FleetState | None: ...

    def local(self) -> AnalyticsState: ...


def _json(body: object, status: int = 200) -> Response:
    return json_response(body, status)


def _answer(compute: Callable[[], object]) -> Response:
    try:
        return _json(compute())
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)


def _gather(st: AnalyticsState, channel: Channel[Any]) -> list[Any]:
    try:
        return st.pipeline.gather(channel)
    except Exception:  # noqa: BLE001 - this worker's own values are shown instead
        log_internal_error(f"gathering {channel.name} from the workers")
        produce = st.pipeline.shared.get(channel.name)
        return [produce()] if produce is not None else []


# -- per pipeline --------------------------------------------------------------------------------


def setup(st: AnalyticsState, pipeline: Pipeline) -> None:
    """Share this worker's requests since its last history write (with a history file)."""
    history = st.history
    if history is None:
        return

    def unwritten() -> dict[str, Any]:
        # Only the request histograms (no observable callbacks): this runs at each publish of a worker.
        own, _ = extract(_request_data(pipeline), st.cap, st.prefix)
        return {"version": st.version, "since": history.started, "requests": unwritten_entries(history.unwritten(own))}

    pipeline.share(UNWRITTEN_KEY, unwritten)


def _request_data(pipeline: Pipeline) -> MetricsData:
    """This process's request histograms as a collection (what ``extract`` reads)."""
    scope = ScopeMetrics(InstrumentationScope("otel_monitor"), pipeline.request_metrics.collect(), "")
    return MetricsData([ResourceMetrics(pipeline.resource, [scope], "")])


def _unwritten(st: AnalyticsState) -> list[tuple[str, float, dict[Key, Series]]]:
    result = []
    for worker in _gather(st, UNWRITTEN_KEY):
        if isinstance(worker, dict):
            try:
                result.append((str(worker["version"]), float(worker["since"]), parse_entries(worker["requests"])))
            except (KeyError, TypeError, ValueError):
                continue
    return result


# -- /versions -----------------------------------------------------------------------------------


def collect_versions(st: AnalyticsState, name: str) -> tuple[dict[str, VersionData], str]:
    """Per version: its requests in the window and when it was seen; and where they came from."""
    now = st.clock()
    length = WINDOWS[name]
    history = st.history
    data: dict[str, VersionData] = {}
    if history is not None and history.usable:
        start = now - length if length is not None else 0.0
        per_version = history.requests_by_version(start, now)
        seen = history.versions(start, now)
        for version, requests in per_version.items():
            first, last = seen.get(version, (start, now))
            data[version] = {"requests": requests, "first_seen": first, "last_seen": last}
        for version, since, requests in _unwritten(st):
            if not requests:
                continue
            entry = data.get(version)
            if entry is None:
                data[version] = {"requests": requests, "first_seen": max(since, start), "last_seen": now}
                continue
            merged = dict(entry["requests"])
            for key, s in requests.items():
                merged[key] = add(merged.get(key), s)
            entry["requests"] = merged
            entry["last_seen"] = now
        return data, "history"
    window = st.window(name)
    if window["requests"]:
        data[st.version] = {"requests": window["requests"], "first_seen": window["since"], "last_seen": now}
    return data, "memory"


def versions_view(ctx: ViewContext) -> Response:
    def compute() -> dict[str, Any]:
        name = window_param("24h")
        if ctx.fleet is not None:
            return _fleet(ctx, name)
        st = ctx.local()
        data, source = collect_versions(st, name)
        return {"window": name, "source": source, **versions_report(data, st.bounds, st.version)}

    return _answer(compute)


def _fleet(ctx: ViewContext, name: str) -> dict[str, Any]:
    from .fleet_versions import fleet_versions

    fleet = ctx.fleet
    assert fleet is not None
    return {"window": name, "source": "prometheus", **fleet_versions(fleet, WINDOWS[name])}


# -- /users and /clients ---------------------------------------------------------------------------


def _identities(ctx: ViewContext, key: Channel[Any], label: str) -> dict[str, Any]:
    name = window_param("24h")
    limit = limit_param(100)
    route = request.args.get("route") or None
    method = (request.args.get("method") or "").upper()[:16] or None
    st = ctx.local()
    now = st.clock()
    length = WINDOWS[name]
    since = now - length if length is not None else 0.0
    hours = length is None or length > MINUTES_KEPT * 60
    totals, anonymous, evicted, earliest = merge_snapshots(
        _gather(st, key), since, route, method, hours, len(st.bounds) + 1
    )
    return {
        "window": name,
        # a window of hours starts with the first whole hour counted in it
        "since": earliest if earliest is not None and (length is None or earliest < since) else since,
        "route": route,
        "method": method,
        label: top(totals, st.bounds, limit),
        f"total_{label}": len(totals),
        "anonymous_requests": anonymous,
        "exact": evicted == 0,
        "kept_per_endpoint": ctx.settings.analytics_users_kept,
        "hashed": bool(ctx.settings.enduser_id_hash) if label == "users" else False,
        "clients_counted": bool(ctx.settings.analytics_client_addresses),
    }


def users_view(ctx: ViewContext) -> Response:
    return _answer(lambda: _identities(ctx, USERS_SHARE_KEY, "users"))


def clients_view(ctx: ViewContext) -> Response:
    if not ctx.settings.analytics_client_addresses:
        return _json({"error": "client addresses are not counted (setting analytics_client_addresses)"}, 404)
    return _answer(lambda: _identities(ctx, CLIENTS_SHARE_KEY, "clients"))


# -- /heatmap -------------------------------------------------------------------------------------


def _zone(name: str) -> dt.tzinfo:
    if name.upper() == "UTC":
        return dt.timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest("tz must be an IANA time zone name such as UTC or Europe/Paris") from None


def heatmap_view(ctx: ViewContext) -> Response:
    def compute() -> dict[str, Any]:
        name = window_param("7d", _HEATMAP_WINDOWS)
        metric = request.args.get("metric", "requests")
        if metric not in METRICS:
            raise BadRequest(f"metric must be one of {', '.join(METRICS)}")
        zone_name = request.args.get("tz", "UTC")[:64]
        zone = _zone(zone_name)
        st = ctx.local()
        now = st.clock()
        length = WINDOWS[name] or 0.0
        start = now - length
        per_minute, source = _per_minute(st, start, now)
        body = heatmap(per_minute, start, now, zone, "UTC" if zone is dt.timezone.utc else zone_name, metric, st.bounds)
        return {"window": name, "source": source, **body}

    return _answer(compute)


def _per_minute(st: AnalyticsState, start: float, now: float) -> tuple[dict[int, dict[Key, Series]], str]:
    minute_now = int(now // 60) * 60
    history = st.history
    if history is not None and history.usable:
        per_minute = history.requests_by_minute(start, now)
        current = per_minute.setdefault(minute_now, {})
        for _version, _since, requests in _unwritten(st):
            for key, s in requests.items():
                current[key] = add(current.get(key), s)
        return per_minute, "history"
    # No history: the in-memory samples (the last 15 minutes), each step in its minute.
    per_minute = {}
    for earlier, later in st.steps(900.0, st.read()):
        step = per_minute.setdefault(int(later.t // 60) * 60, {})
        for key, s in diff(later.requests, earlier.requests, st.bounds).items():
            step[key] = add(step.get(key), s)
    return per_minute, "memory"
