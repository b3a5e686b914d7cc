"""``GET <prefix>/profiles``: a route's aggregated profile (JSON or collapsed stacks).

``route`` (the template, as ``/endpoints`` names it) and ``method`` choose the route;
``window`` is one of the analytics' windows (default ``15m``; see :mod:`.profiles` for how the
aggregate is windowed); ``format=collapsed`` answers Brendan Gregg's collapsed-stack text.
Without ``route`` the answer lists the routes that have a profile. Every worker's samples are
merged (``pipeline.gather``), as the traces are.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from flask import Response, request

from .._safe_log import log_internal_error
from ..metrics.metrics_view import Channel
from .profiler import Profiling
from .profiles import SHARE_KEY, collapsed, route_profile
from .summary import WINDOWS

__all__ = ["profiles"]

MAX_ROUTE = 2048


class _Workers(Protocol):
    def gather(self, channel: Channel[Any]) -> list[Any]: ...


class _State(Protocol):
    """What the view reads of the analytics state (``AnalyticsState``)."""

    profiling: Profiling
    pipeline: _Workers

    def clock(self) -> float: ...


class _Context(Protocol):
    def local(self) -> _State: ...


def _error(message: str, status: int = 400) -> Response:
    return Response(json.dumps({"error": message}), status=status, mimetype="application/json")


def _snapshots(st: _State) -> list[Any]:
    try:
        return list(st.pipeline.gather(SHARE_KEY))
    except Exception:  # noqa: BLE001 - this worker's own profiles are shown instead
        log_internal_error("gathering the profiles from the workers")
        return [st.profiling.routes.snapshot()]


def profiles(ctx: _Context) -> Response:
    window = request.args.get("window", "15m")
    if window not in WINDOWS:
        return _error(f"window must be one of {', '.join(WINDOWS)}")
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "collapsed"):
        return _error("format must be json or collapsed")
    st = ctx.local()
    profiling = st.profiling
    enabled = profiling.profiler is not None
    route = request.args.get("route")
    method = (request.args.get("method") or "GET").upper()[:16]
    snapshots = _snapshots(st) if enabled else []
    if route is None:
        listed = sorted(
            {
                (e["route"], e["method"])
                for snap in snapshots
                if isinstance(snap, dict)
                for e in snap.get("routes") or ()
                if isinstance(e, dict) and isinstance(e.get("route"), str) and isinstance(e.get("method"), str)
            }
        )
        body = {"profiling": enabled, "routes": [{"route": r, "method": m} for r, m in listed]}
        return Response(json.dumps(body), mimetype="application/json")
    if len(route) > MAX_ROUTE:
        return _error("route is too long")
    answer = route_profile(
        snapshots, route, method, WINDOWS[window], st.clock(), profiling.interval_ms, profiling.after_ms
    )
    answer = {"window": window, "profiling": enabled, **answer}
    if fmt == "collapsed":
        return Response(collapsed(answer), mimetype="text/plain")
    return Response(json.dumps(answer), mimetype="application/json")
