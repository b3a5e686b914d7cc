"""Requests per user (``enduser.id``) and per client address: bounded top-k counts per endpoint.

A span processor (:class:`IdentityCounts`) reads the finished SERVER span's ``enduser.id`` (and,
with ``analytics_client_addresses``, ``client.address``) and counts the request for its endpoint
in the current time bucket: one minute for the last 15 minutes, one hour for older ones (up to 7
days; a background job folds minutes into hours). Nothing of it is a metric label.

Each (bucket, endpoint) holds at most ``analytics_users_kept`` (k) identities, with the
Space-Saving algorithm (Metwally, Agrawal and El Abbadi, 2005): a new identity arriving at a full
table takes the place of the least counted one and inherits its count as a possible overcount.
So while an endpoint sees at most k distinct identities in a bucket every count is exact; beyond
that, every identity with more than ``requests / k`` requests is kept, and a count is high by at
most its ``overcount``. Windows add up buckets (and workers): overcounts add up too. Requests
without an identity are counted apart (``anonymous``), never as a row.

Memory: at most (15 + 168) buckets x tracked endpoints x k entries, each a few integers and a
latency histogram; only buckets and endpoints that saw identities exist.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from .summary import OTHER, UNMATCHED, quantile

__all__ = [
    "SpaceSaving",
    "IdentityCounts",
    "Identities",
    "USERS_SHARE_KEY",
    "CLIENTS_SHARE_KEY",
    "merge_snapshots",
    "top",
]

USERS_SHARE_KEY = "otel_monitor.analytics.users"
CLIENTS_SHARE_KEY = "otel_monitor.analytics.clients"
MINUTE = 60
HOUR = 3600
#: minutes kept as minutes; older ones are folded into hours
MINUTES_KEPT = 15
#: hours kept (7 days)
HOURS_KEPT = 168
#: longest identity kept (longer ones are cut)
MAX_ID_LENGTH = 128
_SERVER = SpanKind.SERVER
_ERROR = StatusCode.ERROR


class SpaceSaving:
    """At most ``k`` identities with [requests, errors, overcount, histogram...] each."""

    __slots__ = ("k", "entries", "evicted")

    def __init__(self, k: int) -> None:
        self.k = k
        #: identity -> [requests, errors, overcount, bucket counts...]
        self.entries: dict[str, list[int]] = {}
        #: requests counted before their identity was replaced (0: every count is exact)
        self.evicted = 0

    def add(self, identity: str, error: bool, bucket: int, buckets: int) -> None:
        entry = self.entries.get(identity)
        if entry is None:
            if len(self.entries) < self.k:
                entry = [0, 0, 0] + [0] * buckets
            else:
                # Space-Saving: replace the least counted, inheriting its count as an overcount.
                victim = min(self.entries, key=lambda i: self.entries[i][0])
                lowest = self.entries.pop(victim)[0]
                self.evicted += lowest
                entry = [lowest, 0, lowest] + [0] * buckets
            self.entries[identity] = entry
        entry[0] += 1
        if error:
            entry[1] += 1
        entry[3 + bucket] += 1

    def merge(self, other_entries: Mapping[str, list[int]], evicted: int) -> None:
        """Add another table's counts (the sum of two Space-Saving tables; trimmed to k after)."""
        for identity, counts in other_entries.items():
            entry = self.entries.get(identity)
            if entry is None:
                self.entries[identity] = list(counts)
            else:
                for i, value in enumerate(counts):
                    if i < len(entry):
                        entry[i] += value
        self.evicted += evicted
        if len(self.entries) > self.k:
            ranked = sorted(self.entries.items(), key=lambda item: -item[1][0])
            for identity, counts in ranked[self.k :]:
                self.evicted += counts[0]
                del self.entries[identity]


class _Bucket:
    __slots__ = ("endpoints", "anonymous")

    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, str], SpaceSaving] = {}
        #: (route, method) -> requests without an identity
        self.anonymous: dict[tuple[str, str], int] = {}


class IdentityCounts(SpanProcessor):
    """Counts SERVER spans per identity (an attribute), endpoint and time bucket; see the module."""

    def __init__(
        self,
        attribute: str,
        k: int,
        bounds: tuple,
        clock: Callable[[], float],
        exclude_prefix: str | None = None,
        max_routes: int = 500,
    ) -> None:
        self.attribute = attribute
        self.k = k
        self.bounds = tuple(bounds)
        self.clock = clock
        self._exclude = exclude_prefix.rstrip("/") if exclude_prefix else None
        self._max_routes = max_routes
        self._routes: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._minutes: dict[int, _Bucket] = {}
        self._hours: dict[int, _Bucket] = {}

    # -- the span processor (runs where the request's span ends) ------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.kind is not _SERVER:
            return
        attrs = span.attributes
        route = attrs.get("http.route") or UNMATCHED
        exclude = self._exclude
        if exclude is not None and (route == exclude or route.startswith(exclude + "/")):
            return
        identity = attrs.get(self.attribute)
        method = str(attrs.get("http.request.method", "_OTHER"))
        end, start = span.end_time, span.start_time
        seconds = (end - start) / 1e9 if end is not None and start is not None else 0.0
        failed = span.status.status_code is _ERROR
        self.record(str(route), method, None if identity is None else str(identity), failed, seconds)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def record(self, route: str, method: str, identity: str | None, error: bool, seconds: float) -> None:
        """Count one request (``identity`` None: anonymous)."""
        minute = int(self.clock() // MINUTE) * MINUTE
        endpoint = (route, method)
        with self._lock:
            if endpoint not in self._routes:
                if len(self._routes) >= self._max_routes and route != UNMATCHED:
                    endpoint = (OTHER, method)
                self._routes.add(endpoint)
            bucket = self._minutes.get(minute)
            if bucket is None:
                bucket = self._minutes[minute] = _Bucket()
            if identity is None:
                bucket.anonymous[endpoint] = bucket.anonymous.get(endpoint, 0) + 1
                return
            table = bucket.endpoints.get(endpoint)
            if table is None:
                table = bucket.endpoints[endpoint] = SpaceSaving(self.k)
            index = bisect.bisect_left(self.bounds, seconds)
            table.add(identity[:MAX_ID_LENGTH], error, index, len(self.bounds) + 1)

    # -- the background job and the readers ------------------------------------------------------

    def fold(self) -> None:
        """Fold minutes older than 15 minutes into their hour; drop hours older than 7 days."""
        now = self.clock()
        with self._lock:
            for minute in [m for m in self._minutes if m < now - MINUTES_KEPT * MINUTE]:
                old = self._minutes.pop(minute)
                hour = int(minute // HOUR) * HOUR
                target = self._hours.get(hour)
                if target is None:
                    target = self._hours[hour] = _Bucket()
                _merge_bucket(target, old.endpoints.items(), old.anonymous, self.k)
            for hour in [h for h in self._hours if h < now - HOURS_KEPT * HOUR]:
                del self._hours[hour]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every bucket as JSON-able dicts (what this worker shares)."""
        with self._lock:
            buckets = [(t, MINUTE, b) for t, b in self._minutes.items()]
            buckets += [(t, HOUR, b) for t, b in self._hours.items()]
            return [
                {
                    "t": t,
                    "span": span,
                    "anonymous": [[r, m, n] for (r, m), n in b.anonymous.items()],
                    "endpoints": [
                        [r, m, table.evicted, {i: list(c) for i, c in table.entries.items()}]
                        for (r, m), table in b.endpoints.items()
                    ],
                }
                for t, span, b in buckets
            ]


def _merge_bucket(
    target: _Bucket, endpoints: Iterable[tuple[tuple[str, str], SpaceSaving]], anonymous: Mapping, k: int
) -> None:
    for endpoint, table in endpoints:
        merged = target.endpoints.get(endpoint)
        if merged is None:
            merged = target.endpoints[endpoint] = SpaceSaving(k)
        merged.merge(table.entries, table.evicted)
    for endpoint, n in anonymous.items():
        target.anonymous[endpoint] = target.anonymous.get(endpoint, 0) + n


def merge_snapshots(
    snapshots: Iterable[Any],
    since: float,
    route: str | None = None,
    method: str | None = None,
    hours: bool = True,
) -> tuple[dict[str, list[int]], int, int, float | None]:
    """Every worker's buckets from ``since`` on, for one endpoint or all, summed per identity.

    Returns (identity -> [requests, errors, overcount, histogram...], anonymous requests,
    evicted requests, the earliest bucket start used). ``hours``: also read the hour buckets that
    end after ``since`` (windows beyond 15 minutes, rounded out to whole hours); else minutes only.
    """
    totals: dict[str, list[int]] = {}
    anonymous = 0
    evicted = 0
    earliest: float | None = None
    for worker in snapshots:
        if not isinstance(worker, list):
            continue
        for bucket in worker:
            try:
                t, span = float(bucket["t"]), float(bucket["span"])
                if t + span <= since or (not hours and span > MINUTE):
                    continue
                used = False
                for r, m, n in bucket["anonymous"]:
                    if (route is None or r == route) and (method is None or m == method):
                        anonymous += int(n)
                        used = True
                for r, m, lost, entries in bucket["endpoints"]:
                    if (route is not None and r != route) or (method is not None and m != method):
                        continue
                    used = True
                    evicted += int(lost)
                    for identity, counts in entries.items():
                        entry = totals.get(identity)
                        if entry is None:
                            totals[str(identity)] = [int(c) for c in counts]
                        else:
                            for i, c in enumerate(counts[: len(entry)]):
                                entry[i] += int(c)
                if used:
                    earliest = t if earliest is None else min(earliest, t)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
    return totals, anonymous, evicted, earliest


def top(totals: Mapping[str, list[int]], bounds: tuple, limit: int) -> list[dict[str, Any]]:
    """The rows of ``/users``: most requests first (then by identity), with errors and p95."""
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    rows = []
    for identity, counts in ranked:
        requests, errors, over = counts[0], counts[1], counts[2]
        p95 = quantile(0.95, tuple(counts[3:]), bounds)
        rows.append(
            {
                "id": identity,
                "requests": requests,
                "errors": errors,
                "error_rate_pct": round(100.0 * errors / requests, 3) if requests else None,
                "p95_ms": None if p95 is None else round(p95 * 1000.0, 3),
                "overcount": over,
            }
        )
    return rows


class Identities:
    """The per-process counts of one monitored app: users always, client addresses when enabled."""

    def __init__(self, settings: Any, bounds: tuple, clock: Callable[[], float]) -> None:
        prefix = settings.analytics_prefix.rstrip("/")
        k, routes = settings.analytics_users_kept, settings.analytics_max_routes
        self.users = IdentityCounts("enduser.id", k, bounds, clock, prefix, routes)
        self.clients = (
            IdentityCounts("client.address", k, bounds, clock, prefix, routes)
            if settings.analytics_client_addresses
            else None
        )
        self.hashed = bool(settings.enduser_id_hash)

    def attach(self, state: Any, pipeline: Any) -> None:
        """Per pipeline: the span processors, what the workers share, the folding job."""
        for counts, key in ((self.users, USERS_SHARE_KEY), (self.clients, CLIENTS_SHARE_KEY)):
            if counts is None:
                continue
            pipeline.tracer_provider.add_span_processor(counts)
            pipeline.share(key, counts.snapshot)
            pipeline.scheduler.every(MINUTE, counts.fold, f"analytics {counts.attribute} buckets")
