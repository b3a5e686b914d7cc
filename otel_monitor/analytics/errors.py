"""Failed requests grouped by exception type, route and the innermost frame of the app's own code.

:class:`ErrorGroups` is fed every failed request's span tree by the
:class:`~otel_monitor.analytics.trace_store.TraceStore` (only failed requests reach it, so the
request path of normal ones pays nothing). Each group keeps a count, first and last seen, a
per-minute timeline of the last hour and the trace ids of its latest examples. Bounded: at most
``max_groups`` groups (the one seen longest ago goes first). :func:`merge` joins the groups of
every worker.
"""

from __future__ import annotations

import hashlib
import os
import re
import sysconfig
import threading
from collections import deque
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from ..metrics.metrics_view import Channel

__all__ = ["ErrorGroups", "SHARE_KEY", "merge", "app_frame", "TIMELINE_MINUTES", "EXAMPLES"]

#: key under which each worker shares its groups (``pipeline.share`` / ``pipeline.gather``)
SHARE_KEY: Channel[list[dict[str, Any]]] = Channel("otel_monitor.analytics.errors")
TIMELINE_MINUTES = 60
EXAMPLES = 5
MAX_GROUPS = 200

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$', re.M)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _library_dirs() -> tuple[str, ...]:
    """Where code that is not the app's own lives: the standard library, installed packages, us."""
    dirs = {_PACKAGE_DIR}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            dirs.add(os.path.abspath(path))
    return tuple(sorted(dirs))


_LIBRARY_DIRS = _library_dirs()


def app_frame(stacktrace: str | None) -> str | None:
    """``path:line in function`` of the innermost frame outside the standard library and packages."""
    if not stacktrace:
        return None
    found = None
    for match in _FRAME.finditer(stacktrace):
        path = match.group("path")
        absolute = os.path.abspath(path)
        if path.startswith("<") or "site-packages" in path or "dist-packages" in path:
            continue
        if any(absolute == d or absolute.startswith(d + os.sep) for d in _LIBRARY_DIRS):
            continue
        found = (path, match.group("line"), match.group("func").strip())
    if found is None:
        return None
    path, line, func = found
    try:
        relative = os.path.relpath(path)
        if not relative.startswith(".."):
            path = relative
    except ValueError:  # another drive on Windows
        pass
    return f"{path}:{line} in {func}"


def group_id(exception_type: str, route: str, frame: str | None) -> str:
    """A stable id (the same in every worker and after restarts): URL-safe, 16 hex digits."""
    text = "\x00".join((exception_type, route, frame or ""))
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:16]


def _message(exception: dict[str, Any], tree: dict[str, Any], exc_type: str) -> str:
    """The exception's message; for a plain 5xx answer (no exception, ``error.type`` is the status
    code) its reason phrase, so the group reads "503: Service Unavailable", not "503: 503"."""
    text = str(exception.get("exception.message") or tree.get("error") or "")[:512]
    if not exception and text == exc_type and exc_type.isdigit():
        try:
            return HTTPStatus(int(exc_type)).phrase
        except ValueError:
            return ""  # a status code without a standard phrase: the code alone says it
    return text


class ErrorGroups:
    """This process's error groups. ``add(tree)`` runs in the request's thread, so it takes a lock."""

    def __init__(self, max_groups: int = MAX_GROUPS) -> None:
        self.max_groups = max_groups
        self.groups: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        #: the last snapshot, until add() changes a group (a worker shares it every publish)
        self._snapshot: list[dict[str, Any]] | None = None

    def add(self, tree: dict[str, Any]) -> None:
        exception = tree.get("exception") or {}
        exc_type = str(exception.get("exception.type") or tree.get("error_type") or "error")
        route = str(tree.get("route") or "(unmatched)")
        frame = app_frame(exception.get("exception.stacktrace"))
        key = group_id(exc_type, route, frame)
        when = float(tree.get("time") or 0.0)
        minute = int(when // 60) * 60
        example = {"trace_id": tree.get("trace_id"), "time": when}
        with self._lock:
            self._snapshot = None
            group = self.groups.get(key)
            if group is None:
                if len(self.groups) >= self.max_groups:
                    oldest = min(self.groups, key=lambda k: self.groups[k]["last_seen"])
                    del self.groups[oldest]
                group = self.groups[key] = {
                    "id": key,
                    "exception_type": exc_type,
                    "route": route,
                    "method": tree.get("method"),
                    "frame": frame,
                    "count": 0,
                    "first_seen": when,
                    "last_seen": when,
                    "message": None,
                    "status_code": None,
                    "timeline": {},
                    "examples": deque(maxlen=EXAMPLES),
                }
            group["count"] += 1
            group["first_seen"] = min(group["first_seen"], when)
            group["last_seen"] = max(group["last_seen"], when)
            group["message"] = _message(exception, tree, exc_type)
            group["status_code"] = tree.get("status_code")
            timeline = group["timeline"]
            timeline[minute] = timeline.get(minute, 0) + 1
            if len(timeline) > TIMELINE_MINUTES:
                for old in sorted(timeline)[: len(timeline) - TIMELINE_MINUTES]:
                    del timeline[old]
            group["examples"].append(example)

    def snapshot(self) -> list[dict[str, Any]]:
        """JSON-able groups (what this worker shares): the same list until a group changes (read-only)."""
        with self._lock:
            if self._snapshot is not None:
                return self._snapshot
            groups = list(self.groups.values())
            self._snapshot = [
                {
                    **g,
                    "timeline": [[t, n] for t, n in sorted(g["timeline"].items())],
                    "examples": list(g["examples"]),
                }
                for g in groups
            ]
            return self._snapshot


def merge(workers: Iterable[Any], now: float) -> list[dict[str, Any]]:
    """The groups of every worker joined by id, busiest first; ``timeline`` is the last hour per minute."""
    merged: dict[str, dict[str, Any]] = {}
    for worker in workers:
        if not isinstance(worker, list):
            continue
        for g in worker:
            if not isinstance(g, dict) or not isinstance(g.get("id"), str):
                continue
            into = merged.get(g["id"])
            if into is None:
                merged[g["id"]] = into = {**g, "count": 0, "timeline": {}, "examples": []}
                into["first_seen"], into["last_seen"] = g.get("first_seen"), g.get("last_seen")
            into["count"] += int(g.get("count") or 0)
            firsts = [t for t in (into["first_seen"], g.get("first_seen")) if isinstance(t, (int, float))]
            into["first_seen"] = min(firsts) if firsts else None
            if (g.get("last_seen") or 0) >= (into["last_seen"] or 0):
                into["last_seen"] = g.get("last_seen")
                into["message"], into["status_code"] = g.get("message"), g.get("status_code")
            for t, n in g.get("timeline") or []:
                into["timeline"][t] = into["timeline"].get(t, 0) + n
            into["examples"].extend(e for e in g.get("examples") or [] if isinstance(e, dict))
    start = int(now // 60) * 60 - (TIMELINE_MINUTES - 1) * 60
    result = []
    for g in merged.values():
        counts = g["timeline"]
        g["timeline"] = [{"t": start + 60 * i, "count": counts.get(start + 60 * i, 0)} for i in range(TIMELINE_MINUTES)]
        g["last_hour"] = sum(p["count"] for p in g["timeline"])
        g["examples"] = sorted(g["examples"], key=lambda e: e.get("time") or 0, reverse=True)[:EXAMPLES]
        result.append(g)
    result.sort(key=lambda g: (-(g["last_seen"] or 0), -g["count"]))
    return result
