"""Requests per user (``enduser.id``) and per client address: bounded top-k counts per endpoint.

A span processor (:class:`IdentityCounts`) reads the finished SERVER span's ``enduser.id`` (and,
with ``analytics_client_addresses``, ``client.address``) and counts the request for its endpoint
in the current time bucket: one minute for the last 15 minutes, one hour for older ones (up to 7
days; a background job folds minutes into hours). Nothing of it is a metric label.

Each (bucket, endpoint) holds at most 2 x ``analytics_users_kept`` (k) identities, with the
Space-Saving algorithm (Metwally, Agrawal and El Abbadi, 2005) evicting lazily: a new identity
arriving at a full table inherits the largest count cut so far as a possible overcount.
So while an endpoint sees at most 2 k distinct identities in a bucket every count is exact;
beyond that the table is cut to its k busiest whenever it is full again, a count is never low and
high by at most its ``overcount``, and an identity with more requests than any identity cut is
never lost. Windows add up buckets (and workers): overcounts add up too. Requests
without an identity are counted apart (``anonymous``), never as a row: most of them without a lock,
as ``None`` appended to their endpoint's waiting list in the current minute (by the analytics' span
processor, :class:`~.spans.AnalyticsSpans`), added to the counts under the lock before any read,
at a fold and once :data:`~.spans.ANONYMOUS_BATCH` wait.

Memory: at most (15 + 168) buckets x tracked endpoints x 2 k entries, each a few integers and a
latency histogram; only buckets and endpoints that saw identities exist.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind

from ..metrics.metrics_view import Channel
from ..settings import Settings
from .spans import ANONYMOUS_BATCH, request_parts
from .summary import OTHER, UNMATCHED, quantile

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

    from ..telemetry.pipeline import Pipeline

__all__ = [
    "SpaceSaving",
    "IdentityCounts",
    "Identities",
    "USERS_SHARE_KEY",
    "CLIENTS_SHARE_KEY",
    "merge_snapshots",
    "top",
]

USERS_SHARE_KEY: Channel[list[dict[str, Any]]] = Channel("otel_monitor.analytics.users")
CLIENTS_SHARE_KEY: Channel[list[dict[str, Any]]] = Channel("otel_monitor.analytics.clients")
MINUTE = 60
HOUR = 3600
#: minutes kept as minutes; older ones are folded into hours
MINUTES_KEPT = 15
#: hours kept (7 days)
HOURS_KEPT = 168
#: longest identity kept (longer ones are cut)
MAX_ID_LENGTH = 128
_SERVER = SpanKind.SERVER
#: no current minute: every clock reading is outside it (a minute's bucket is made under the lock)
_NO_MINUTE: tuple[float, float, dict[str, dict[str, list[None]]]] = (float("inf"), float("-inf"), {})


class SpaceSaving:
    """The busiest identities, with [requests, errors, overcount, histogram...] each.

    Space-Saving with lazy eviction: up to ``2 k`` identities are counted exactly; when a new one
    arrives at a full table, the table is cut to its ``k`` busiest (one sort per ``k`` new
    identities, not a scan of the table per request) and ``floor`` becomes the largest count cut.
    An identity arriving later starts at ``floor`` (its count before is unknown but at most that)
    and carries it as its ``overcount``: a count is never low, and high by at most its overcount.
    """

    __slots__ = ("k", "entries", "evicted", "floor")

    def __init__(self, k: int) -> None:
        self.k = k
        #: identity -> [requests, errors, overcount, bucket counts...]
        self.entries: dict[str, list[int]] = {}
        #: requests of the identities cut from the table (0: every count is exact)
        self.evicted = 0
        #: the largest count cut so far: what a newly arriving identity may already have had
        self.floor = 0

    def add(self, identity: str, error: bool, bucket: int, buckets: int) -> None:
        entry = self.entries.get(identity)
        if entry is None:
            if len(self.entries) >= 2 * self.k:
                self._cut()
            floor = self.floor
            entry = self.entries[identity] = [floor, 0, floor] + [0] * buckets
        entry[0] += 1
        if error:
            entry[1] += 1
        entry[3 + bucket] += 1

    def _cut(self) -> None:
        ranked = sorted(self.entries.items(), key=lambda item: -item[1][0])
        for identity, counts in ranked[self.k :]:
            self.evicted += counts[0] - counts[2]
            self.floor = max(self.floor, counts[0])
            del self.entries[identity]

    def merge(self, other_entries: Mapping[str, list[int]], evicted: int, floor: int = 0) -> None:
        """Add another table (its entries, evicted requests and floor); cut to the busiest after.

        An identity missing from one of the two tables may have had up to that table's floor
        there: it is added, as overcount, so that no count is low.
        """
        mine = self.floor
        if floor:
            for identity, own in self.entries.items():
                if identity not in other_entries:
                    own[0] += floor
                    own[2] += floor
        for identity, counts in other_entries.items():
            entry = self.entries.get(identity)
            if entry is None:
                entry = self.entries[identity] = [mine, 0, mine] + [0] * (len(counts) - 3)
            for i, value in enumerate(counts):
                if i < len(entry):
                    entry[i] += value
        self.evicted += evicted
        self.floor = mine + floor
        if len(self.entries) > 2 * self.k:
            self._cut()


class _Bucket:
    __slots__ = ("endpoints", "anonymous", "waiting", "shared")

    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, str], SpaceSaving] = {}
        #: (route, method) -> requests without an identity counted (``_lock`` held to change)
        self.anonymous: dict[tuple[str, str], int] = {}
        #: route -> method -> anonymous requests not yet in ``anonymous``, one ``None`` each, of
        #: every tracked endpoint that had one in this bucket: a request thread appends without a
        #: lock (``list.append`` is one step under the GIL); whoever holds the lock adds them to
        #: ``anonymous`` (:meth:`count_waiting`) before reading it. Made only with the lock held.
        self.waiting: dict[str, dict[str, list[None]]] = {}
        #: what was last shared of it (None: changed since); a past minute is serialised once
        self.shared: dict[str, Any] | None = None

    def count_waiting(self) -> None:
        """Add the waiting anonymous requests to ``anonymous`` (``_lock`` held: one at a time).
        Appends go on meanwhile, at the end of a list: its first ``n`` are the ones added."""
        for route, methods in self.waiting.items():
            for method, waiting in methods.items():
                n = len(waiting)
                if n:
                    del waiting[:n]
                    endpoint = (route, method)
                    self.anonymous[endpoint] = self.anonymous.get(endpoint, 0) + n
                    self.shared = None

    def serialise(self, t: int, span: int) -> dict[str, Any]:
        if self.shared is None:
            self.shared = {
                "t": t,
                "span": span,
                "anonymous": [[r, m, n] for (r, m), n in self.anonymous.items()],
                "endpoints": [
                    [r, m, table.evicted, {i: _sparse(c) for i, c in table.entries.items()}]
                    for (r, m), table in self.endpoints.items()
                ],
            }
        return self.shared


def _sparse(counts: list[int]) -> list[Any]:
    """[requests, errors, overcount, [[bucket, n], ...]]: the histogram without its empty buckets."""
    return [counts[0], counts[1], counts[2], [[i, n] for i, n in enumerate(counts[3:]) if n]]


class IdentityCounts(SpanProcessor):
    """Counts SERVER spans per identity (an attribute), endpoint and time bucket; see the module."""

    #: reads spans only in ``on_end``: the request path may hand it its light span (request._server_span)
    reads_ended_spans_only = True

    def __init__(
        self,
        attribute: str,
        k: int,
        bounds: tuple[float, ...],
        clock: Callable[[], float],
        exclude_prefix: str | None = None,
        max_routes: int = 500,
    ) -> None:
        self.attribute = attribute
        self.k = k
        self.bounds = tuple(bounds)
        self.clock = clock
        self._exclude = exclude_prefix.rstrip("/") if exclude_prefix else None
        self._exclude_slash = (self._exclude or "") + "/"
        self._buckets = len(self.bounds) + 1
        self._max_routes = max_routes
        self._routes: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._minutes: dict[int, _Bucket] = {}
        self._hours: dict[int, _Bucket] = {}
        #: the current minute's bucket (``_lock`` held to change)
        self._current: _Bucket | None = None
        #: its [start, end) in clock seconds and its waiting anonymous requests, as one tuple (read
        #: in one step by a request thread, which then appends; see ``spans.AnonymousCounts``)
        self.current: tuple[float, float, dict[str, dict[str, list[None]]]] = _NO_MINUTE

    # -- the span processor (runs where the request's span ends) ------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not _SERVER:
            return
        self.request_ended(span, *request_parts(span))

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Tests: read time from ``clock`` from now on."""
        self.clock = clock

    def request_ended(self, span: ReadableSpan, attributes: Mapping[str, object], duration: int, failed: bool) -> None:
        """An ended SERVER span (see :class:`~.spans.RequestSpanConsumer`)."""
        # The analytics' processor counts most requests itself (spans.AnalyticsSpans): anonymous,
        # for an endpoint tracked, in the current minute, with fewer than ANONYMOUS_BATCH waiting.
        # The same here, without a lock, when it can be; else ``record``.
        route = attributes.get("http.route") or UNMATCHED
        method = attributes.get("http.request.method", "_OTHER")
        identity = attributes.get(self.attribute)
        if identity is None:
            since, until, waiting = self.current
            if since <= self.clock() < until:
                try:
                    endpoint = waiting[route][method]  # type: ignore[index]  # a non-str finds none
                except (KeyError, TypeError):  # not in this minute yet, or not tracked
                    pass
                else:
                    if len(endpoint) < ANONYMOUS_BATCH:
                        endpoint.append(None)
                        return
        self._count(route, method, identity, duration, failed)

    def _count(self, route: object, method: object, identity: object, duration: int, failed: bool) -> None:
        """``request_ended`` for an identified request, or one whose endpoint is not tracked yet."""
        if type(route) is not str:
            route = str(route)
        exclude = self._exclude
        if exclude is not None and (route == exclude or route.startswith(self._exclude_slash)):
            return
        method = method if type(method) is str else str(method)
        if identity is None:
            self.record(route, method, None, False, 0.0)
            return
        self.record(
            route,
            method,
            identity if type(identity) is str else str(identity),
            failed,
            duration / 1e9,
        )

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _minute_bucket(self, now: float) -> _Bucket:
        """The bucket of the minute ``now`` falls in, made if needed; remembered as the current one
        (``_lock`` held)."""
        minute = int(now // MINUTE) * MINUTE
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = _Bucket()
        if bucket is not self._current:
            self._current = bucket
            self.current = (float(minute), float(minute + MINUTE), bucket.waiting)
        return bucket

    def _admit(self, endpoint: tuple[str, str]) -> tuple[str, str]:
        """A route not seen before (``_lock`` held): tracked, or counted as ``OTHER`` once
        ``max_routes`` are (an unmatched path is always tracked: it is one endpoint)."""
        if len(self._routes) >= self._max_routes and endpoint[0] != UNMATCHED:
            return (OTHER, endpoint[1])
        self._routes.add(endpoint)
        return endpoint

    def record(self, route: str, method: str, identity: str | None, error: bool, seconds: float) -> None:
        """Count one request (``identity`` None: anonymous)."""
        now = self.clock()
        endpoint = (route, method)
        with self._lock:
            if endpoint not in self._routes:
                endpoint = self._admit(endpoint)
            bucket = self._minute_bucket(now)
            bucket.shared = None
            if identity is None:
                anonymous = bucket.anonymous
                anonymous[endpoint] = anonymous.get(endpoint, 0) + 1
                if endpoint[0] == route:  # tracked (not OTHER): the next ones may wait, without the lock
                    methods = bucket.waiting.setdefault(route, {})
                    if method in methods:
                        bucket.count_waiting()  # a full list: counted now, emptied
                    else:
                        methods[method] = []
                return
            table = bucket.endpoints.get(endpoint)
            if table is None:
                table = bucket.endpoints[endpoint] = SpaceSaving(self.k)
            if len(identity) > MAX_ID_LENGTH:
                identity = identity[:MAX_ID_LENGTH]
            table.add(identity, error, bisect.bisect_left(self.bounds, seconds), self._buckets)

    # -- the background job and the readers ------------------------------------------------------

    def fold(self) -> None:
        """Fold minutes older than 15 minutes into their hour; drop hours older than 7 days."""
        now = self.clock()
        with self._lock:
            for minute in [m for m in self._minutes if m < now - MINUTES_KEPT * MINUTE]:
                old = self._minutes.pop(minute)
                if old is self._current:
                    self._current, self.current = None, _NO_MINUTE
                old.count_waiting()
                hour = int(minute // HOUR) * HOUR
                target = self._hours.get(hour)
                if target is None:
                    target = self._hours[hour] = _Bucket()
                _merge_bucket(target, old.endpoints.items(), old.anonymous, self.k)
                target.shared = None
            for hour in [h for h in self._hours if h < now - HOURS_KEPT * HOUR]:
                del self._hours[hour]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every bucket as JSON-able dicts (what this worker shares)."""
        with self._lock:
            for bucket in self._minutes.values():
                bucket.count_waiting()
            shared = [b.serialise(t, MINUTE) for t, b in self._minutes.items()]
            shared += [b.serialise(t, HOUR) for t, b in self._hours.items()]
            return shared


def _merge_bucket(
    target: _Bucket,
    endpoints: Iterable[tuple[tuple[str, str], SpaceSaving]],
    anonymous: Mapping[tuple[str, str], int],
    k: int,
) -> None:
    for endpoint, table in endpoints:
        merged = target.endpoints.get(endpoint)
        if merged is None:
            merged = target.endpoints[endpoint] = SpaceSaving(k)
        merged.merge(table.entries, table.evicted, table.floor)
    for endpoint, n in anonymous.items():
        target.anonymous[endpoint] = target.anonymous.get(endpoint, 0) + n


def merge_snapshots(
    snapshots: Iterable[Any],
    since: float,
    route: str | None = None,
    method: str | None = None,
    hours: bool = True,
    buckets: int = 0,
) -> tuple[dict[str, list[int]], int, int, float | None]:
    """Every worker's buckets from ``since`` on, for one endpoint or all, summed per identity.

    Returns (identity -> [requests, errors, overcount, histogram...], anonymous requests,
    evicted requests, the earliest bucket start used). ``hours``: also read the hour buckets that
    end after ``since`` (windows beyond 15 minutes, rounded out to whole hours); else minutes only.
    ``buckets``: the number of latency buckets (the bounds' length + 1).
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
                    for identity, (requests, errors, over, histogram) in entries.items():
                        entry = totals.get(identity)
                        if entry is None:
                            entry = totals[str(identity)] = [0] * (3 + buckets)
                        entry[0] += int(requests)
                        entry[1] += int(errors)
                        entry[2] += int(over)
                        for i, n in histogram:
                            if 0 <= i < buckets:
                                entry[3 + i] += int(n)
                if used:
                    earliest = t if earliest is None else min(earliest, t)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
    return totals, anonymous, evicted, earliest


def top(totals: Mapping[str, list[int]], bounds: tuple[float, ...], limit: int) -> list[dict[str, Any]]:
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

    def __init__(self, settings: Settings, bounds: tuple[float, ...], clock: Callable[[], float]) -> None:
        prefix = settings.analytics_prefix.rstrip("/")
        k, routes = settings.analytics_users_kept, settings.analytics_max_routes
        self.users = IdentityCounts("enduser.id", k, bounds, clock, prefix, routes)
        self.clients = (
            IdentityCounts("client.address", k, bounds, clock, prefix, routes)
            if settings.analytics_client_addresses
            else None
        )
        self.hashed = bool(settings.enduser_id_hash)

    @property
    def counts(self) -> tuple[IdentityCounts, ...]:
        """The users' counts, then the client addresses' when enabled: what the analytics' span
        processor hands each ended request span to (:class:`~.spans.AnalyticsSpans`)."""
        return (self.users,) if self.clients is None else (self.users, self.clients)

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Tests: the counts read time from ``clock`` from now on (``AnalyticsState.use_clock``)."""
        for counts in self.counts:
            counts.use_clock(clock)

    def attach(self, pipeline: Pipeline) -> None:
        """Per pipeline: what the workers share, the folding job (the span processor that feeds the
        counts is the analytics' one, :class:`~.spans.AnalyticsSpans`)."""
        for counts, key in ((self.users, USERS_SHARE_KEY), (self.clients, CLIENTS_SHARE_KEY)):
            if counts is None:
                continue
            pipeline.share(key, counts.snapshot)
            pipeline.scheduler.every(MINUTE, counts.fold, f"analytics {counts.attribute} buckets")
