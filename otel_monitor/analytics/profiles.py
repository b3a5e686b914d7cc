"""Per-route aggregated profiles: bounded, windowed by the minute, merged across workers.

:class:`RouteProfiles` holds, for each ``(route, method)``, the stacks sampled from its slow
requests with their counts, in one-minute buckets for the last :data:`MINUTES` minutes and in a
total since the process started. Memory is bounded: at most :data:`MAX_ROUTES` routes (samples
of further routes are counted in ``dropped_samples``) and :data:`MAX_STACKS` distinct stacks per
route (further stacks are summed into one ``(other stacks)`` stack, so the counts stay whole).

Windows (``window=`` as the other endpoints): up to an hour the profile sums the minute buckets
that start inside the window (to the minute); longer windows and ``all`` answer the total since
the process (each worker) started, and say so (``source: "since start"``, ``covered_s``).

Under a pre-fork server each worker shares :meth:`RouteProfiles.snapshot` (``pipeline.share``)
and :func:`route_profile` merges what :func:`~otel_monitor.telemetry.pipeline.Pipeline.gather` returns.
:func:`collapsed` writes Brendan Gregg's collapsed stacks (``root;caller;callee 42``), what
``flamegraph.pl``, speedscope and inferno read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..metrics.metrics_view import Channel

__all__ = [
    "RouteProfiles",
    "FrameKey",
    "SHARE_KEY",
    "MAX_ROUTES",
    "MAX_STACKS",
    "MINUTES",
    "OTHER_STACKS",
    "route_profile",
    "collapsed",
    "frame_label",
    "profile_json",
]

#: one frame: (function, file as the traceback shows it, line being executed)
FrameKey = tuple[str, str, int]

#: key under which each worker shares its route profiles (``pipeline.share`` / ``pipeline.gather``)
SHARE_KEY: Channel[dict[str, Any]] = Channel("otel_monitor.analytics.profiles")
MAX_ROUTES = 100
MAX_STACKS = 200
#: minute buckets kept (windows up to this long are exact to the minute)
MINUTES = 60
#: the stack further stacks of a full route are summed into
OTHER_STACKS: tuple[FrameKey, ...] = (("(other stacks)", "", 0),)


#: ``[total, {minute: count}]``
_Counts = list[Any]


class _Route:
    __slots__ = ("frames", "frame_ids", "stacks", "requests")

    def __init__(self) -> None:
        self.frames: list[FrameKey] = []
        self.frame_ids: dict[FrameKey, int] = {}
        #: stack (frame ids, root first) -> [total, {minute: count}]
        self.stacks: dict[tuple[int, ...], _Counts] = {}
        #: [total, {minute: count}] of sampled requests
        self.requests: _Counts = [0, {}]

    def ids(self, stack: tuple[FrameKey, ...]) -> tuple[int, ...]:
        result = []
        for key in stack:
            i = self.frame_ids.get(key)
            if i is None:
                i = self.frame_ids[key] = len(self.frames)
                self.frames.append(key)
            result.append(i)
        return tuple(result)


def _bump(entry: _Counts, minute: int, count: int, oldest: int) -> None:
    entry[0] += count
    buckets = entry[1]
    buckets[minute] = buckets.get(minute, 0) + count
    if len(buckets) > MINUTES:
        for m in [m for m in buckets if m < oldest]:
            del buckets[m]


class RouteProfiles:
    """The bounded per-route aggregate of one process (written by the profiler's thread)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self._routes: dict[tuple[str, str], _Route] = {}
        self._lock = threading.Lock()
        self.dropped_samples = 0

    def add(self, route: str, method: str, stacks: dict[tuple[FrameKey, ...], int]) -> None:
        """Fold one request's samples (``stack -> count``) into its route."""
        if not stacks:
            return
        minute = int(self.clock() // 60) * 60
        oldest = minute - (MINUTES - 1) * 60
        with self._lock:
            entry = self._routes.get((route, method))
            if entry is None:
                if len(self._routes) >= MAX_ROUTES:
                    self.dropped_samples += sum(stacks.values())
                    return
                entry = self._routes[(route, method)] = _Route()
            _bump(entry.requests, minute, 1, oldest)
            for stack, count in stacks.items():
                ids = entry.ids(stack)
                found = entry.stacks.get(ids)
                if found is None:
                    if len(entry.stacks) >= MAX_STACKS:
                        ids = entry.ids(OTHER_STACKS)
                        found = entry.stacks.get(ids)
                    if found is None:
                        found = entry.stacks[ids] = [0, {}]
                _bump(found, minute, count, oldest)

    def snapshot(self) -> dict[str, Any]:
        """This process's aggregate as JSON (what a worker shares)."""
        with self._lock:
            routes = [
                {
                    "route": route,
                    "method": method,
                    "frames": [list(f) for f in entry.frames],
                    "requests": [entry.requests[0], _pairs(entry.requests[1])],
                    "stacks": [[list(ids), total, _pairs(buckets)] for ids, (total, buckets) in entry.stacks.items()],
                }
                for (route, method), entry in self._routes.items()
            ]
        return {"started": self.started, "dropped_samples": self.dropped_samples, "routes": routes}

    def routes(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._routes)


def profile_json(
    stacks: dict[tuple[FrameKey, ...], int],
    interval_ms: float,
    after_ms: float,
    dropped: int = 0,
    max_stacks: int | None = None,
) -> dict[str, Any]:
    """Stacks with their sample counts as JSON: a frame table and stacks of indexes, root first.

    With ``max_stacks``, the heaviest stacks only; the others are summed into ``(other stacks)``.
    """
    ordered = sorted(stacks.items(), key=lambda item: -item[1])
    if max_stacks is not None and len(ordered) > max_stacks:
        rest = sum(count for _, count in ordered[max_stacks - 1 :])
        ordered = ordered[: max_stacks - 1] + [(OTHER_STACKS, rest)]
    index: dict[FrameKey, int] = {}
    frames: list[dict[str, Any]] = []
    out = []
    for stack, count in ordered:
        ids = []
        for key in stack:
            i = index.get(key)
            if i is None:
                i = index[key] = len(frames)
                frames.append({"function": key[0], "file": key[1], "line": key[2]})
            ids.append(i)
        out.append({"frames": ids, "count": count})
    return {
        "interval_ms": interval_ms,
        "after_ms": after_ms,
        "samples": sum(stacks.values()) + dropped,
        "dropped_samples": dropped,
        "frames": frames,
        "stacks": out,
    }


def _pairs(buckets: dict[int, int]) -> list[list[int]]:
    return [[minute, count] for minute, count in sorted(buckets.items())]


def _frame(raw: object) -> FrameKey | None:
    if isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], str) and isinstance(raw[1], str):
        return (raw[0], raw[1], raw[2] if isinstance(raw[2], int) else 0)
    return None


def _in_window(total: object, buckets: object, since_minute: float | None) -> int:
    if since_minute is None:
        return total if isinstance(total, int) else 0
    count = 0
    for pair in buckets if isinstance(buckets, list) else ():
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], int) and pair[0] >= since_minute:
            count += pair[1]
    return count


def route_profile(
    snapshots: Iterable[Any],
    route: str,
    method: str,
    window_s: float | None,
    now: float,
    interval_ms: float,
    after_ms: float,
) -> dict[str, Any]:
    """One route's profile over the window, merged from every worker's snapshot."""
    exact = window_s is not None and window_s <= MINUTES * 60
    since_minute = (int((now - window_s) // 60) * 60) if exact and window_s is not None else None
    merged: dict[tuple[FrameKey, ...], int] = {}
    requests = 0
    started = now
    for snap in snapshots:
        if not isinstance(snap, dict):
            continue
        if isinstance(snap.get("started"), (int, float)):
            started = min(started, float(snap["started"]))
        for entry in snap.get("routes") or ():
            if not isinstance(entry, dict) or entry.get("route") != route or entry.get("method") != method:
                continue
            frames = [_frame(f) for f in entry.get("frames") or ()]
            req = entry.get("requests")
            if isinstance(req, list) and len(req) == 2:
                requests += _in_window(req[0], req[1], since_minute)
            for raw in entry.get("stacks") or ():
                if not (isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], list)):
                    continue
                count = _in_window(raw[1], raw[2], since_minute)
                if count <= 0:
                    continue
                try:
                    stack = tuple(frames[i] for i in raw[0])
                except (IndexError, TypeError):
                    continue
                if any(f is None for f in stack):
                    continue
                key: tuple[FrameKey, ...] = stack  # type: ignore[assignment]  # no None left
                merged[key] = merged.get(key, 0) + count
    body = profile_json(merged, interval_ms, after_ms)
    if exact and window_s is not None:
        since = max(now - window_s, started)
        available = started <= now - window_s
        source = "minutes"
    else:
        since, available, source = started, window_s is None or started <= now - window_s, "since start"
    return {
        "route": route,
        "method": method,
        "requests": requests,
        "since": round(since, 3),
        "covered_s": round(max(0.0, now - since), 3),
        "window_available": available,
        "source": source,
        **body,
    }


def frame_label(frame: dict[str, Any]) -> str:
    """``function (file:line)``, as py-spy labels a frame; no ``;`` or line break inside."""
    text = f"{frame.get('function')} ({frame.get('file')}:{frame.get('line')})"
    return text.replace(";", ":").replace("\r", " ").replace("\n", " ")


def collapsed(profile: dict[str, Any]) -> str:
    """Brendan Gregg's collapsed stacks: one ``root;...;leaf count`` line per stack, sorted."""
    labels = [frame_label(f) for f in profile.get("frames") or ()]
    lines = sorted(";".join(labels[i] for i in s["frames"]) + f" {s['count']}" for s in profile.get("stacks") or ())
    return "\n".join(lines) + ("\n" if lines else "")
