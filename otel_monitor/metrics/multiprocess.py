"""Multi-process servers (gunicorn, uWSGI, uvicorn, hypercorn, mod_wsgi): the group's metrics through any worker.

How it works
------------
* Each worker owns its OpenTelemetry pipeline (built after the fork) and publishes its cumulative
  metrics and prometheus_client's default registry (:mod:`otel_monitor.metrics._default_registry`)
  when it answers a scrape, when another worker's scrape asks it to, and every few seconds while
  it serves requests (so a worker that is SIGKILLed loses at most those seconds). Nothing of it
  runs per request. A publish writes only what changed (:meth:`WorkerView.publish`): the series
  that changed since the last publish, as one line appended to ``<dir>/w-<pid>.<generation>.log``;
  the whole ``<dir>/w-<pid>.json`` (atomically: a private temporary file, then rename) starts a
  new generation only when the log grew long (a new metric, or a series that changed place, goes
  on a line whole). Shared values (the
  analytics' recent traces) go to ``<dir>/w-<pid>.shared.json`` when they changed.
* A scrape (:meth:`WorkerView.scrape`) publishes the answering worker's numbers, asks every other
  live worker to publish (a datagram on its ``w-<pid>.sock``, answered from a thread that sleeps
  in ``recv``), waits for their answers (at most :data:`PUBLISH_WAIT` seconds), then merges: so a
  scrape started after requests completed shows exactly the group's totals, and what one scrape
  showed is on disk before the next, through any worker, reads it. Before publishing for a
  scrape, a worker waits (at most :data:`SETTLE_WAIT`) for responses already complete but not yet
  closed by the server: their clients may hold them already.
* In-process readers (the analytics, ``/health``: :meth:`WorkerView.read`) merge the last
  published numbers (at most once a second) without writing or asking anybody. A reader keeps
  each worker's numbers and applies only the log lines it has not read (:meth:`_Group.load`);
  unchanged series keep their objects, and the merge (:class:`MergeCache`) and
  :func:`deserialise` redo only the series that changed.
* Merge rules: counters and histograms are summed; up/down counters of live workers are summed;
  process-level gauges (``process.*`` and custom gauges) keep one series per worker, told apart
  by ``process.pid``; host-level gauges (``system.*``) come from the answering worker; host-level
  counters are the highest any worker read (one host: they must not go backwards).
* A worker that dies leaves its last files behind. The next merge folds its counters and
  histograms (its whole file with its log applied) into ``archive.json`` (under an exclusive
  ``flock``, so two workers never archive the same file twice) and deletes its files: totals
  never go backwards when a worker is replaced.
  Its shared values (recent traces, error groups) go to ``archive-shared.json``, where the last
  :data:`DEAD_SHARED_KEPT` dead workers' stay visible to :meth:`WorkerView.gather`.
* A directory that cannot be written (read-only, full) degrades to the worker's own numbers,
  with one log line, and is tried again a minute later; never an error to the client.
* The directory is ``$TMPDIR/otel_monitor-<uid>-<master pid>`` (mode 0700, refused if another
  user owns it or it is a symlink), or ``multiprocess_dir`` when set (see
  :mod:`otel_monitor.prefork`).

Limits: a worker that does not answer within :data:`PUBLISH_WAIT` (stuck in a long C call holding
the GIL) is merged with its last published numbers; requests a worker served in its last
:data:`BUSY_INTERVAL` seconds before a SIGKILL are lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import operator
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .._safe_log import log_internal_error
from ..prefork import alive as _alive
from ..prefork import detect_group, group_dir, group_secret
from . import _default_registry
from ._metrics_data import iter_scoped
from .system import HOST_METRIC_PREFIX

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric as PrometheusMetric

__all__ = [
    "detect_group",
    "group_dir",
    "group_secret",
    "merge",
    "serialise",
    "deserialise",
    "MergeCache",
    "WorkerView",
    "MasterView",
    "worker_view",
    "master_view",
]

_logger = logging.getLogger("otel_monitor")
#: seconds between publishes while the worker serves requests (bounds what a SIGKILL loses)
BUSY_INTERVAL = 2.0
#: seconds between publishes when idle (keeps the file's time fresh for the analytics)
IDLE_INTERVAL = 30.0
#: how long a scrape waits for the other workers to publish
PUBLISH_WAIT = 0.5
#: seconds an in-process read (analytics, /health) reuses the group's merged numbers
READ_TTL = 1.0
#: seconds before a directory that failed is tried again
RETRY_AFTER = 60.0
#: dead workers whose shared values (recent traces, error groups) stay in gather()
DEAD_SHARED_KEPT = 4
#: how long a publish for a scrape waits for responses already complete but not yet closed
SETTLE_WAIT = 0.05
#: a worker writes its whole file again (a new generation) once its log holds this many lines...
LOG_LINES = 500
#: ... or this fraction of the whole file's size (and at least LOG_MIN_BYTES)
LOG_FRACTION = 0.5
LOG_MIN_BYTES = 65536
#: AF_UNIX paths are limited to 107 bytes on Linux
_MAX_SOCKET_PATH = 100

# -- serialisation: MetricsData <-> plain JSON ----------------------------------------------------

#: one metric in the file format (JSON: ``{scope, version, name, description, unit, kind, points, ...}``)
Entry = dict[str, Any]
#: a file's JSON object (a worker's payload, the archive)
JsonObject = dict[str, Any]
#: one series of an entry (JSON: ``{"a": attributes, "start", "v" | "count", "sum", "buckets", ...}``)
Point = dict[str, Any]
#: (scope, metric name)
MetricKey = tuple[str, str]
#: a series' attributes as a sorted, hashable tuple
SeriesKey = tuple[tuple[str, Any], ...]
#: (entry, pid of the worker, or None for the archive; the worker is alive)
Contribution = tuple[Entry, int | None, bool]
#: (point, pid, alive, one series per worker, the entry's histogram bounds)
Part = tuple[Point, int | None, bool, bool, list[float]]
DataPoint = NumberDataPoint | HistogramDataPoint


def _attrs_key(attributes: Mapping[str, Any]) -> SeriesKey:
    if not attributes:
        return ()
    key = tuple(sorted(attributes.items()))
    try:
        hash(key)
    except TypeError:  # a sequence-valued attribute (a list after JSON)
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items()))
    return key


def serialise(data: MetricsData | None) -> list[Entry]:
    """[{scope, version, name, description, unit, kind, monotonic, bounds, points: [...]}, ...]

    A histogram's bucket bounds are written once per metric (``bounds``), and on a point only
    when they differ from those.
    """
    result: list[Entry] = []
    for scope_metrics, metric in iter_scoped(data):
        entry: dict[str, Any] = {
            "scope": scope_metrics.scope.name,
            "version": scope_metrics.scope.version,
            "name": metric.name,
            "description": metric.description,
            "unit": metric.unit,
        }
        d = metric.data
        if isinstance(d, Histogram):
            entry["kind"] = "histogram"
            bounds = list(d.data_points[0].explicit_bounds) if d.data_points else []
            entry["bounds"] = bounds
            points = []
            for p in d.data_points:
                point = {
                    "a": dict(p.attributes or {}),
                    "start": p.start_time_unix_nano,
                    "count": p.count,
                    "sum": p.sum,
                    "min": p.min,
                    "max": p.max,
                    "buckets": list(p.bucket_counts),
                }
                if list(p.explicit_bounds) != bounds:
                    point["bounds"] = list(p.explicit_bounds)
                if p.exemplars:
                    point["ex"] = _exemplars_out(p.exemplars)
                points.append(point)
            entry["points"] = points
        elif isinstance(d, Sum):
            entry["kind"] = "sum"
            entry["monotonic"] = d.is_monotonic
            entry["points"] = [
                {"a": dict(p.attributes or {}), "start": p.start_time_unix_nano, "v": p.value} for p in d.data_points
            ]
        elif isinstance(d, Gauge):
            entry["kind"] = "gauge"
            entry["points"] = [{"a": dict(p.attributes or {}), "v": p.value} for p in d.data_points]
        else:
            continue  # exponential histograms are not merged across workers
        result.append(entry)
    return result


def _exemplars_out(exemplars: Sequence[Exemplar]) -> list[list[Any]]:
    return [[e.value, e.time_unix_nano, e.trace_id, e.span_id] for e in exemplars if e.trace_id]


class _Exemplar(NamedTuple):
    """What the exposition reads of an SDK ``Exemplar``; merged data is never exported over OTLP,
    and building the SDK's dataclass for every bucket of every worker doubled a merge's cost."""

    value: float
    time_unix_nano: int
    trace_id: int
    span_id: int
    filtered_attributes: None = None


def _exemplars_in(rows: list[list[Any]]) -> list[_Exemplar]:
    return [_Exemplar(*row) for row in rows]


def _is_host_level(entry: Entry) -> bool:
    return str(entry["name"]).startswith(HOST_METRIC_PREFIX)


class MergeCache:
    """The merged entries of the last merge, by metric, with the entry objects they came from.

    A worker file that did not change is not parsed again (:class:`_Group`), so its entries are
    the same objects as in the last merge; the request histograms' entries are the same objects
    while no request came in (:meth:`~otel_monitor.request._request_metrics.RequestMetrics.as_entries`).
    A metric whose every contribution is the same object as last time is not merged again, and
    :func:`deserialise` reuses its SDK objects: with thousands of series, the periodic reads of
    an idle or lightly used group (the analytics' sample) no longer redo every series.
    """

    def __init__(self) -> None:
        self.entries: dict[MetricKey, tuple[tuple[Contribution, ...], Entry]] = {}
        self.metrics: dict[int, tuple[Entry, Metric]] = {}
        #: per metric: what its last merge was made of (see :class:`_MetricState`)
        self.states: dict[MetricKey, _MetricState] = {}
        #: id(merged point) -> (merged point, its SDK data point): an unchanged series keeps its object
        self.points: dict[int, tuple[Point, DataPoint]] = {}


def merge(
    own: list[Entry],
    own_pid: int,
    live: Iterable[tuple[int, list[Entry]]],
    archive: list[Entry],
    cache: MergeCache | None = None,
) -> list[Entry]:
    """Merge serialised metrics: see the module docstring for the rules."""
    # In pid order, whichever worker answers: float sums then add up in the same order on every
    # scrape (1.82 must not read 1.8199999999999998 through another worker).
    workers = sorted([(own, own_pid)] + [(entries, pid) for pid, entries in live], key=lambda e: e[1])
    add_all: list[tuple[list[Entry], int | None, bool]] = [(entries, pid, True) for entries, pid in workers]
    add_all.append((archive, None, False))
    sources: dict[MetricKey, list[Contribution]] = {}
    for entries, pid, alive in add_all:
        for entry in entries:
            if _contributes(entry, pid, alive, own_pid):  # the first kept one places the metric
                sources.setdefault((entry["scope"], entry["name"]), []).append((entry, pid, alive))
    result = []
    kept: dict[MetricKey, tuple[tuple[Contribution, ...], Entry]] = {}
    states: dict[MetricKey, _MetricState] = {}
    for key, contributions in sources.items():
        signature = tuple(contributions)
        state = cache.states.get(key) if cache is not None else None
        if cache is not None:
            known = cache.entries.get(key)
            if (
                known is not None
                and len(known[0]) == len(signature)
                and all(a[0] is b[0] and a[1:] == b[1:] for a, b in zip(known[0], signature, strict=True))
            ):
                kept[key] = known
                result.append(known[1])
                if state is not None:
                    states[key] = state
                continue
        merged, states[key] = _merge_entry(contributions, state)
        kept[key] = (signature, merged)
        result.append(merged)
    if cache is not None:
        cache.entries = kept
        cache.states = states
    return result


def _contributes(entry: Entry, pid: int | None, alive: bool, own_pid: int) -> bool:
    kind = entry["kind"]
    counting = kind == "histogram" or (kind == "sum" and entry.get("monotonic"))
    if not alive and not counting:
        return False  # a dead worker's gauges and up/down counters die with it
    if _is_host_level(entry):
        # Host-level: one reading per host. Gauges are the answering worker's; host counters
        # are the highest any live worker read, so they never go backwards between scrapes
        # answered by different workers.
        return pid == own_pid or bool(kind == "sum" and entry.get("monotonic") and alive)
    return True


class _MetricState:
    """What one metric's last merge was made of: per contributor (worker, or the archive) its
    points list and each point's series key; per series one slot per contributor and the merged
    point. The next merge of the metric redoes only the series whose points are other objects
    than then (a worker's numbers read again keep the objects of the points that did not change:
    :meth:`_Group.load`); the others keep their merged point, and :func:`deserialise` its SDK point.
    """

    __slots__ = ("contributors", "points", "keys", "parts", "merged")

    def __init__(self, contributors: tuple[tuple[int | None, bool], ...]) -> None:
        self.contributors = contributors
        self.points: list[list[Point]] = [[] for _ in contributors]
        self.keys: list[list[SeriesKey]] = [[] for _ in contributors]
        self.parts: dict[SeriesKey, list[Part | None]] = {}
        self.merged: dict[SeriesKey, Point] = {}

    def clear(self, key: SeriesKey, contributor: int, point: Point) -> None:
        slot = self.parts.get(key)
        if slot is not None and (part := slot[contributor]) is not None and part[0] is point:
            slot[contributor] = None


def _series_key(point: Point, pid: int | None, per_worker: bool) -> SeriesKey:
    attrs = point["a"]
    if per_worker and pid is not None and "process.pid" not in attrs:
        attrs = {**attrs, "process.pid": pid}
    return _attrs_key(attrs)


def _merge_entry(contributions: list[Contribution], state: _MetricState | None = None) -> tuple[Entry, _MetricState]:
    """One metric's kept entries from every worker (pid order) and the archive, merged; with the
    state for the next merge. With ``state`` (the last merge's, same contributors), only the
    series whose points changed are merged again (per-series work only for series that changed)."""
    target = {k: v for k, v in contributions[0][0].items() if k != "points"}
    kind = target["kind"]
    host_level = _is_host_level(target)
    contributors = tuple((pid, alive) for _, pid, alive in contributions)
    if state is None or state.contributors != contributors:
        state = _MetricState(contributors)  # a worker came or went: everything again
    width = len(contributions)
    dirty: dict[SeriesKey, None] = {}  # in order of first appearance
    for i, (entry, pid, alive) in enumerate(contributions):
        points = entry["points"]
        old_points, old_keys = state.points[i], state.keys[i]
        if points is old_points:
            continue
        per_worker = entry["kind"] == "gauge" and not _is_host_level(entry)
        bounds = entry.get("bounds", [])
        keys = old_keys[: len(points)]
        n_old = len(old_points)
        changed = [j for j, (a, b) in enumerate(zip(old_points, points, strict=False)) if a is not b]
        changed.extend(range(n_old, len(points)))
        for j in changed:
            point = points[j]
            if j < n_old:
                before = old_points[j]
                if before["a"] is point["a"] or before["a"] == point["a"]:
                    key = old_keys[j]  # the same series, new numbers
                else:  # another series at this place: the old one leaves this contributor
                    state.clear(old_keys[j], i, before)
                    dirty[old_keys[j]] = None
                    key = _series_key(point, pid, per_worker)
                keys[j] = key
            else:
                key = _series_key(point, pid, per_worker)
                keys.append(key)
            slot = state.parts.get(key)
            if slot is None:
                slot = state.parts[key] = [None] * width
            slot[i] = (point, pid, alive, per_worker, bounds)
            dirty[key] = None
        for j in range(len(points), n_old):  # series gone from this contributor
            state.clear(old_keys[j], i, old_points[j])
            dirty[old_keys[j]] = None
        state.points[i], state.keys[i] = points, keys
    for key in dirty:
        parts = [part for part in state.parts.get(key, ()) if part is not None]
        if parts:
            state.merged[key] = _merge_points(parts, kind, host_level)
        else:
            state.parts.pop(key, None)
            state.merged.pop(key, None)
    target["points"] = list(state.merged.values())
    return target, state


def _merge_points(parts: list[Part], kind: str, host_level: bool) -> Point:
    """One series' points from every worker (pid order) and the archive, merged (a new dict)."""
    histogram = kind == "histogram"
    first, pid, alive, per_worker, default_bounds = parts[0]
    attrs = first["a"]  # never modified: it may be a live series' own dict
    if per_worker and pid is not None and "process.pid" not in attrs:
        attrs = {**attrs, "process.pid": pid}
    new = dict(first)
    new["a"] = dict(attrs)
    if histogram:
        new["buckets"] = list(first["buckets"])
        new.setdefault("bounds", default_bounds)
    if not alive:
        new.pop("ex", None)  # a dead worker's exemplars go stale
    for point, _pid, alive, _per_worker, default_bounds in parts[1:]:
        if histogram:
            if new["bounds"] != point.get("bounds", default_bounds):
                continue  # a worker running other code; keep the first layout
            new["count"] += point["count"]
            new["sum"] += point["sum"]
            new["buckets"] = list(map(operator.add, new["buckets"], point["buckets"]))
            new["min"] = _opt(min, new["min"], point["min"])
            new["max"] = _opt(max, new["max"], point["max"])
            new["start"] = min(new["start"], point["start"])
            if alive and point.get("ex"):
                new["ex"] = new.get("ex", []) + point["ex"]
        elif kind == "sum" and host_level:
            new["v"] = max(new["v"], point["v"])  # one host, read by several workers
        elif kind == "sum":
            new["v"] += point["v"]
            new["start"] = min(new["start"], point["start"])
        else:
            new["v"] = point["v"]
    return new


def _opt(fn: Callable[[float, float], float], a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


def deserialise(
    entries: list[Entry],
    template: MetricsData | None,
    resource: Resource,
    intern: _Interner | None = None,
    cache: MergeCache | None = None,
) -> MetricsData:
    """Merged entries back into MetricsData, with ``resource`` and the scopes of ``template``.

    With ``intern``, a series keeps the same attributes object from one merge to the next (the
    exposition caches label text per attributes object). With ``cache``, an entry :func:`merge`
    did not merge again keeps its ``Metric`` (its points' ``time_unix_nano`` is then that of
    the merge that built it: the exposition does not print it, and merged data is never pushed).
    """
    attrs = intern.get if intern is not None else (lambda a: a)
    scopes: dict[str, ScopeMetrics] = {}
    scope_objects = (
        {sm.scope.name: sm.scope for rm in template.resource_metrics for sm in rm.scope_metrics} if template else {}
    )
    now = time.time_ns()
    by_scope: dict[str, list[Metric]] = {}
    built: dict[int, tuple[Entry, Metric]] = {}
    known_points = cache.points if cache is not None else {}
    points_used: dict[int, tuple[Point, DataPoint]] = {}
    for entry in entries:
        known = cache.metrics.get(id(entry)) if cache is not None else None
        if known is not None and known[0] is entry:
            built[id(entry)] = known
            by_scope.setdefault(entry["scope"], []).append(known[1])
            metric_points = cast(Sequence[DataPoint], getattr(known[1].data, "data_points", ()))
            for p, kept_point in zip(entry["points"], metric_points, strict=True):
                found = known_points.get(id(p))
                # the last tuple again: a new one per series and merge fed the cyclic GC's full collections
                points_used[id(p)] = found if found is not None and found[0] is p else (p, kept_point)
            continue
        kind = entry["kind"]
        data_points: list[DataPoint] = []
        for p in entry["points"]:
            found = known_points.get(id(p))
            point: DataPoint
            if found is not None and found[0] is p:
                points_used[id(p)] = found  # an unchanged series: the merge kept its point, we keep ours
                data_points.append(found[1])
                continue
            if kind == "histogram":
                point = HistogramDataPoint(
                    attributes=attrs(p["a"]),
                    start_time_unix_nano=p["start"],
                    time_unix_nano=now,
                    count=p["count"],
                    sum=p["sum"],
                    bucket_counts=p["buckets"],
                    explicit_bounds=p["bounds"],
                    min=p["min"],
                    max=p["max"],
                    # our NamedTuple has every field of the SDK's Exemplar that the exposition reads
                    exemplars=cast(list[Exemplar], _exemplars_in(p["ex"])) if p.get("ex") else [],
                )
            else:
                start = p["start"] if kind == "sum" else 0
                point = NumberDataPoint(
                    attributes=attrs(p["a"]), start_time_unix_nano=start, time_unix_nano=now, value=p["v"]
                )
            points_used[id(p)] = (p, point)
            data_points.append(point)
        data: Histogram | Sum | Gauge
        if kind == "histogram":
            data = Histogram(
                data_points=cast(list[HistogramDataPoint], data_points),
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
            )
        elif kind == "sum":
            data = Sum(
                data_points=cast(list[NumberDataPoint], data_points),
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
                is_monotonic=entry["monotonic"],
            )
        else:
            data = Gauge(data_points=cast(list[NumberDataPoint], data_points))
        metric = Metric(name=entry["name"], description=entry["description"], unit=entry["unit"], data=data)
        built[id(entry)] = (entry, metric)
        by_scope.setdefault(entry["scope"], []).append(metric)
    if cache is not None:
        cache.metrics = built
        cache.points = points_used
    for name, metrics in by_scope.items():
        scope = scope_objects.get(name) or InstrumentationScope(name)
        scopes[name] = ScopeMetrics(scope=scope, metrics=metrics, schema_url="")
    return MetricsData(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=list(scopes.values()), schema_url="")]
    )


class _Interner:
    """One attributes dict per series across merges; forgets series that stopped appearing."""

    def __init__(self) -> None:
        self._known: dict[SeriesKey, dict[str, Any]] = {}
        self._used: dict[SeriesKey, dict[str, Any]] = {}

    def get(self, attributes: dict[str, Any]) -> dict[str, Any]:
        key = _attrs_key(attributes)
        found = self._known.get(key)
        if found is None:
            found = attributes
        self._used[key] = found
        return found

    def rotate(self) -> None:
        self._known, self._used = self._used, {}


def _read_json(path: str) -> JsonObject | None:
    try:
        with open(path, encoding="utf-8") as fh:
            payload = json.load(fh)
        return payload if isinstance(payload, dict) else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log_internal_error(f"reading {os.path.basename(path)}")
        return None


class Changes(NamedTuple):
    """What changed in a worker's entries since its last publish (one log line)."""

    #: how many entries there are now
    length: int
    #: ``[[entry index, [[point index, point], ...]], ...]``: changed and new points (a worker's
    #: new series come last in its entries)
    points: list[list[Any]]
    #: ``[[entry index, entry], ...]``: entries given whole (a new metric, another description,
    #: a series that changed place)
    entries: list[list[Any]]

    def __bool__(self) -> bool:
        return bool(self.points or self.entries)


def _changes(published: list[Entry], metrics: list[Entry]) -> Changes:
    """What changed from ``published`` to ``metrics``.

    Unchanged entries and points are mostly the same objects (:func:`serialise`'s gauges are
    not: they are compared, in C).
    """
    points_changed: list[list[Any]] = []
    whole: list[list[Any]] = []
    for index, entry in enumerate(metrics):
        before = published[index] if index < len(published) else None
        if before is entry:
            continue
        if (
            before is None
            or len(before) != len(entry)
            or len(entry["points"]) < len(before["points"])
            or any(before.get(k) != v for k, v in entry.items() if k != "points")
        ):
            whole.append([index, entry])
            continue
        old_points, points = before["points"], entry["points"]
        changed: list[list[Any]] = []
        for i, (old, new) in enumerate(zip(old_points, points, strict=False)):
            if old is not new and old != new:
                if old["a"] != new["a"]:
                    break  # a series changed place
                changed.append([i, new])
        else:
            changed.extend([i, points[i]] for i in range(len(old_points), len(points)))
            if changed:
                points_changed.append([index, changed])
            continue
        whole.append([index, entry])
    return Changes(len(metrics), points_changed, whole)


def _apply(entries: list[Entry], record: Mapping[str, Any]) -> list[Entry]:
    """``entries`` with one log line's changes (:class:`Changes`, as JSON); the unchanged entries
    and points stay the same objects. Raises ValueError for changes that do not fit."""
    length = int(record.get("n", len(entries)))
    result: list[Entry | None] = [*entries[:length], *[None] * (length - len(entries))]
    for index, entry in record.get("entries", []):
        result[index] = entry
    for index, changed in record.get("changes", []):
        entry = result[index]
        if entry is None:
            raise ValueError(f"changes for entry {index}, which is not there")
        points = list(entry["points"])
        for i, point in changed:
            if i < len(points):
                points[i] = point
            elif i == len(points):
                points.append(point)
            else:
                raise ValueError(f"point {i} after {len(points)}")
        result[index] = {**entry, "points": points}
    complete = [entry for entry in result if entry is not None]
    if len(complete) != length:
        raise ValueError("a new entry is missing")
    return complete


def _append_line(path: str, line: str) -> None:
    """One line at the end of ``path``, in one ``write`` (a reader takes only whole lines)."""
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a short write (a signal): the rest, still in order
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


class _Worker:
    """What a reader knows of one worker: its base file (by ``stat``), the payload with the log
    applied so far, and where in the log it stopped."""

    __slots__ = ("signature", "payload", "generation", "offset")

    def __init__(self, signature: tuple[int, int, int], payload: dict[str, Any]) -> None:
        self.signature = signature
        self.payload = payload
        self.generation = int(payload.get("generation") or 0)
        self.offset = 0


def _reuse_unchanged(old: list[Entry], new: list[Entry]) -> list[Entry]:
    """``new`` (a worker's entries read again) with the objects of ``old`` wherever they are equal:
    a whole entry, or each point that did not change (series keep their order in a worker's file).

    The merge then recognises unchanged metrics and series by identity (:class:`MergeCache`):
    the comparisons run in C, and the per-series work is left for the series that changed.
    """
    previous = {(e.get("scope"), e.get("name")): e for e in old if isinstance(e, dict)}
    result: list[Entry] = []
    for entry in new:
        before = previous.get((entry.get("scope"), entry.get("name"))) if isinstance(entry, dict) else None
        if before is None or not isinstance(entry.get("points"), list):
            result.append(entry)
        elif before == entry:
            result.append(before)
        else:
            old_points = before.get("points") or []
            points = entry["points"]
            reused = [o if o == n else n for o, n in zip(old_points, points, strict=False)]
            result.append({**entry, "points": reused + points[len(old_points) :]})  # never modifies `new`
    return result


class _Group:
    """The group directory: reading the workers' files (parsed again only when changed), archiving."""

    def __init__(self, directory: str, own_pid: int | None) -> None:
        self.directory = directory
        self.own_pid = own_pid
        self._parsed: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self._workers: dict[int, _Worker] = {}

    def path(self, pid: int, suffix: str = "json") -> str:
        return os.path.join(self.directory, f"w-{pid}.{suffix}")

    def log_path(self, pid: int, generation: int) -> str:
        return self.path(pid, f"{generation}.log")

    def peers(self) -> tuple[list[int], list[int]]:
        """(live, dead) pids of the other workers that published a file."""
        live: list[int] = []
        dead: list[int] = []
        for name in os.listdir(self.directory):
            if not (name.startswith("w-") and name.endswith(".json")):
                continue
            pid_text = name[2:-5]
            if not pid_text.isdigit() or int(pid_text) == self.own_pid:
                continue
            pid = int(pid_text)
            (live if _alive(pid) else dead).append(pid)
        return live, dead

    def load(self, pid: int) -> dict[str, Any] | None:
        """A worker's numbers: its base file (parsed again only when it changed) with the lines of
        its log that were not read yet applied; None when it has no file (any more)."""
        path = self.path(pid)
        for _ in range(3):  # the worker may write a new generation while we read
            try:
                info = os.stat(path)
            except FileNotFoundError:
                self._workers.pop(pid, None)
                return None
            signature = (info.st_ino, info.st_mtime_ns, info.st_size)
            known = self._workers.get(pid)
            if known is None or known.signature != signature:
                payload = _read_json(path)
                if payload is None:
                    return None
                if known is not None and isinstance(payload.get("metrics"), list):
                    payload["metrics"] = _reuse_unchanged(known.payload.get("metrics", []), payload["metrics"])
                known = self._workers[pid] = _Worker(signature, payload)
            if self._follow(pid, known):
                return known.payload
        return known.payload if known is not None else None

    def _follow(self, pid: int, known: _Worker) -> bool:
        """Apply the log's whole lines after ``known.offset``; False when the log of that generation
        is gone (a newer base replaced it: read the base again)."""
        try:
            with open(self.log_path(pid, known.generation), "rb") as fh:
                fh.seek(known.offset)
                data = fh.read()
        except FileNotFoundError:
            return known.generation == 0 or not known.offset and self._base_unchanged(pid, known)
        except OSError:
            log_internal_error(f"reading the log of worker {pid}")
            return True
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        if not end:
            return True
        payload = known.payload
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
                payload = {
                    **payload,
                    "time": record.get("time", payload.get("time")),
                    "registry": record.get("registry", payload.get("registry", [])),
                    "metrics": _apply(payload.get("metrics", []), record),
                }
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):  # a torn line: the next ones count
                log_internal_error(f"reading the log of worker {pid}")
        known.payload = payload
        known.offset += end
        return True

    def _base_unchanged(self, pid: int, known: _Worker) -> bool:
        try:
            info = os.stat(self.path(pid))
        except OSError:
            return True
        return known.signature == (info.st_ino, info.st_mtime_ns, info.st_size)

    def shared(self, pid: int) -> dict[str, Any]:
        """What a worker shared (its recent traces, error groups...)."""
        payload = self._load(self.path(pid, "shared.json"))
        if payload is None:  # a worker of an older version kept them in its base file
            payload = self.load(pid)
        found = payload.get("shared") if payload is not None else None
        return found if isinstance(found, dict) else {}

    def dead_shared(self) -> list[Entry]:
        """What the last :data:`DEAD_SHARED_KEPT` dead workers shared (their recent traces and
        error groups stay visible after a recycle)."""
        payload = self._load(os.path.join(self.directory, "archive-shared.json"))
        workers = payload.get("workers") if payload else None
        return [w for w in workers if isinstance(w, dict)] if isinstance(workers, list) else []

    def _load(self, path: str) -> JsonObject | None:
        """A JSON file, parsed again only when it changed."""
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._parsed.pop(path, None)
            return None
        signature = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        payload = _read_json(path)
        if payload is not None:
            if cached is not None and isinstance(payload.get("metrics"), list):
                payload["metrics"] = _reuse_unchanged(cached[1].get("metrics", []), payload["metrics"])
            self._parsed[path] = (signature, payload)
        return payload

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The group lock: reading everybody's files and archiving dead workers happen as one step,
        so a worker that exits (archiving itself) is never counted twice by a concurrent merge."""
        with open(os.path.join(self.directory, "archive.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def archive(self, dead: list[int]) -> JsonObject:
        """Fold dead workers' counters into archive.json; returns the archive
        (``{"metrics": [...], "registry": [...]}``). Call with the lock held."""
        archive_path = os.path.join(self.directory, "archive.json")
        stored = self._load(archive_path) or {}  # the same objects while unchanged (merge caches by them)
        archive = stored.get("metrics", [])
        registry = stored.get("registry", [])
        dead_shared: list[Entry] = []
        changed = False
        for pid in dead:
            path = self.path(pid)
            self._workers.pop(pid, None)  # read it whole, as it is now
            payload = self.load(pid)
            if payload is None:
                continue  # another worker archived it first
            archive = merge([], -1, [], archive + payload.get("metrics", []))
            registry = _default_registry.merge([], None, [], registry + payload.get("registry", []), exact=True)
            shared = self.shared(pid)
            if shared:
                dead_shared.append(shared)
            os.unlink(path)
            self._workers.pop(pid, None)
            prefix = f"w-{pid}."
            for name in os.listdir(self.directory):  # its logs, shared values and socket
                if name.startswith(prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.directory, name))
                        self._parsed.pop(os.path.join(self.directory, name), None)
            changed = True
        if dead_shared:
            kept = (self.dead_shared() + dead_shared)[-DEAD_SHARED_KEPT:]
            _write_atomically(os.path.join(self.directory, "archive-shared.json"), {"workers": kept})
        if changed:
            _write_atomically(archive_path, {"metrics": archive, "registry": registry})
        return {"metrics": archive, "registry": registry}

    def others(self) -> tuple[list[tuple[int, JsonObject]], JsonObject]:
        """The other live workers' last payloads, and the archive (dead workers folded in)."""
        with self.locked():
            live, dead = self.peers()
            archive = self.archive(dead)
            payloads = [(pid, p) for pid in live if (p := self.load(pid)) is not None]
        for gone in set(self._workers) - set(live):  # archived by another worker: forget its numbers
            del self._workers[gone]
        return payloads, archive

    def ask_to_publish(self, timeout: float) -> None:
        """Ask every other live worker to publish now; return when all answered or ``timeout`` passed."""
        self.ask().wait(timeout)

    def ask(self) -> _Asked:
        """Ask every other live worker to publish now, without waiting: the caller does its own
        work while they answer, then waits with :meth:`_Asked.wait` (which also closes the ask)."""
        live, _ = self.peers()
        targets = [self.path(pid, "sock") for pid in live]
        if not targets:
            return _Asked(None, "", 0)
        reply = os.path.join(self.directory, f"q-{os.getpid()}-{threading.get_ident()}-{next(_asks)}.sock")
        if len(reply.encode()) > _MAX_SOCKET_PATH:
            return _Asked(None, "", 0)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        pending = 0
        try:
            sock.bind(reply)
            for target in targets:
                try:
                    sock.sendto(b"publish", target)
                    pending += 1
                except OSError:
                    pass  # a worker that just exited, or one without a listener
        except BaseException:
            _Asked(sock, reply, 0).close()
            raise
        return _Asked(sock, reply, pending)


class _Asked:
    """The other workers asked to publish (:meth:`_Group.ask`): their answers, still to be awaited."""

    def __init__(self, sock: socket.socket | None, reply: str, pending: int) -> None:
        self._sock, self._reply, self._pending = sock, reply, pending
        self._since = time.monotonic()

    def wait(self, timeout: float) -> None:
        """Return when every asked worker answered or ``timeout`` passed since the ask; then close."""
        try:
            deadline = self._since + timeout
            while self._pending and self._sock is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._sock.settimeout(left)
                try:
                    self._sock.recv(16)
                except OSError:
                    break
                self._pending -= 1
        finally:
            self.close()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self._reply)


_asks = itertools.count()


def _write_atomically(path: str, payload: JsonObject) -> None:
    # dumps, not dump: only the one-shot encoder is the C one (several times faster)
    _write_text_atomically(path, json.dumps(payload, separators=(",", ":"), default=str))


def _write_text_atomically(path: str, text: str) -> None:
    # A private temporary name per thread: two threads never write the same file.
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _group_resource(pipeline: GroupPipeline, directory: str) -> Resource:
    # The merged view describes the whole group, not this worker: a target_info that changed with
    # every scrape (landing on another worker) would churn series in Prometheus.
    attributes = {k: v for k, v in pipeline.resource.attributes.items() if k != "process.pid"}
    attributes["service.instance.id"] = f"{attributes.get('host.name', 'host')}:{os.path.basename(directory)}"
    return Resource(attributes)


class _Reader(Protocol):
    @property
    def extra_scope(self) -> str: ...

    def snapshot(self, timeout_millis: float = ..., extra: bool = ...) -> MetricsData | None: ...


class _RequestEntries(Protocol):
    def as_entries(self, scope: str, version: str | None = None) -> list[dict[str, Any]]: ...


class _Scheduler(Protocol):
    def every(self, interval: float, fn: Callable[[], object], what: str) -> None: ...


class _GroupSettings(Protocol):
    @property
    def metrics_default_registry(self) -> bool: ...


class GroupPipeline(Protocol):
    """What the group views read of a pipeline (:class:`~otel_monitor.telemetry.pipeline.Pipeline`)."""

    @property
    def settings(self) -> _GroupSettings: ...

    @property
    def resource(self) -> Resource: ...

    @property
    def reader(self) -> _Reader: ...

    @property
    def request_metrics(self) -> _RequestEntries: ...

    @property
    def scheduler(self) -> _Scheduler: ...

    @property
    def shared(self) -> dict[str, Callable[[], Any]]: ...

    @property
    def requests_seen(self) -> int: ...

    @property
    def instance_id(self) -> str: ...

    #: the requests in flight (each with ``awaiting_close()``)
    @property
    def active(self) -> set[Any]: ...

    @property
    def shutdown_hooks(self) -> list[Callable[[], None]]: ...


class WorkerView:
    """A pre-fork worker's view of the group (see the module docstring). Build with :func:`worker_view`."""

    def __init__(self, pipeline: GroupPipeline, directory: str) -> None:
        self.pipeline = pipeline
        self.pid = os.getpid()
        self.group = _Group(directory, self.pid)
        self.group_resource = _group_resource(pipeline, directory)
        self._write_lock = threading.Lock()
        self._merge_lock = threading.Lock()
        self._intern = _Interner()
        self._merge_cache = MergeCache()
        self._last_seen = -1
        self._last_write = 0.0
        #: the last full SDK snapshot (gauges included): periodic publishes reuse it with fresh
        #: request histograms, so gauge callbacks run only when somebody reads
        self._last_sdk: list[Entry] = []
        #: what this worker's files hold now (its base and log): the next publish appends only what changed
        self._published: list[Entry] | None = None
        self._generation = 0
        self._log_lines = 0
        self._log_bytes = 0
        self._base_bytes = 0
        #: per shared key: (the value last written, its JSON text); None: nothing written yet
        self._shared_written: dict[str, tuple[Any, str]] | None = None
        self._registry_written: list[dict[str, Any]] | None = None
        self._failed_at: float | None = None
        self._listener: socket.socket | None = None
        #: set by :meth:`close` once this worker's numbers are in the archive
        self._archived = False
        self._read_cache: tuple[float, MetricsData] | None = None
        #: this worker's entries of the last merge (the next merge reuses their unchanged objects)
        self._last_own: list[Entry] = []
        #: the default registry travels in the worker files (see otel_monitor.metrics._default_registry)
        self.default_registry: bool = pipeline.settings.metrics_default_registry

    # -- publishing ---------------------------------------------------------------------------

    def _usable(self) -> bool:
        if self._failed_at is None:
            return True
        return time.monotonic() - self._failed_at >= RETRY_AFTER

    @property
    def own_only(self) -> bool:
        """The last publish failed (the directory is unwritable or full): until one succeeds,
        this worker's reads show only its own numbers (``/health`` reports it)."""
        return self._failed_at is not None

    def _failed(self, exc: OSError) -> None:
        if self._failed_at is None:
            _logger.warning(
                "otel_monitor: cannot use the multiprocess directory %s (%s); this worker shows only its own "
                "numbers until it can (retried every %.0f s)",
                self.group.directory,
                exc,
                RETRY_AFTER,
            )
        self._failed_at = time.monotonic()

    def publish(self, metrics: list[Entry], whole: bool = False) -> list[dict[str, Any]]:
        """Write what changed in this worker's numbers since its last publish (raises OSError when
        the directory is unusable); returns the default registry's families it wrote (empty when
        ``metrics_default_registry`` is off).

        The series that changed go on one line appended to ``w-<pid>.<generation>.log`` (an entry
        whose layout changed goes whole: :class:`Changes`); the whole of ``metrics`` is written
        to ``w-<pid>.json`` (a new generation) only first, when the log grew past
        :data:`LOG_FRACTION` of the base (and :data:`LOG_MIN_BYTES`) or :data:`LOG_LINES` lines,
        or when ``whole``. The shared values go to ``w-<pid>.shared.json``, rewritten only when
        they changed."""
        if os.getpid() != self.pid:
            return []  # a process forked from this worker must never write the worker's file
        seen = self.pipeline.requests_seen  # before the values: a request ending meanwhile makes the next tick publish
        registry = self._collect_registry()
        shared = {}
        for key, produce in list(self.pipeline.shared.items()):
            try:
                shared[key] = produce()
            except Exception:  # noqa: BLE001 - a failing producer must not fail the other worker's scrape
                log_internal_error(f"sharing {key}")
        now = time.time()
        with self._write_lock:
            if self._archived:
                return registry  # closed: the archive holds this worker's numbers
            self._write_shared(shared)
            changes = None if whole or self._published is None else _changes(self._published, metrics)
            if changes is None or (
                (changes or changes.length != len(self._published or ()))
                and (
                    self._log_lines >= LOG_LINES
                    or self._log_bytes > max(LOG_MIN_BYTES, LOG_FRACTION * self._base_bytes)
                )
            ):
                self._write_base(metrics, registry, now)
                self._registry_written = registry
            elif changes or changes.length != len(self._published or ()) or registry != self._registry_written:
                record = {
                    "time": now,
                    "registry": registry,
                    "n": changes.length,
                    "changes": changes.points,
                    "entries": changes.entries,
                }
                line = json.dumps(record, separators=(",", ":"), default=str)
                try:
                    _append_line(self.group.log_path(self.pid, self._generation), line)
                except OSError:
                    self._published = None  # what is on disk is unknown now: the next publish writes it whole
                    raise
                self._log_lines += 1
                self._log_bytes += len(line) + 1
                self._registry_written = registry
            self._published = metrics
            self._last_seen = seen
            self._last_write = time.monotonic()
        if self._failed_at is not None:
            self._failed_at = None
            _logger.warning("otel_monitor: the multiprocess directory %s works again", self.group.directory)
        return registry

    def _write_shared(self, shared: dict[str, Any]) -> None:
        """``w-<pid>.shared.json`` again when a shared value changed (call under the write lock).

        Only the values that changed are encoded again: the error groups, the kept traces and the
        per-user counts change at different rates, and encoding all of them whenever one changed
        cost a busy worker more than its requests did. A value that is the same object as last
        time (a producer that caches its snapshot) is not even compared."""
        written = self._shared_written
        texts: dict[str, tuple[Any, str]] = {}
        changed = written is None or written.keys() != shared.keys()
        for key, value in shared.items():
            known = written.get(key) if written is not None else None
            if known is not None and (known[0] is value or known[0] == value):
                texts[key] = known
            else:
                texts[key] = (value, json.dumps(value, separators=(",", ":"), default=str))
                changed = True
        if changed:
            body = ",".join(f"{json.dumps(key)}:{text}" for key, (_, text) in texts.items())
            _write_text_atomically(self.group.path(self.pid, "shared.json"), f'{{"shared":{{{body}}}}}')
            self._shared_written = texts

    def _write_base(self, metrics: list[Entry], registry: list[dict[str, Any]], now: float) -> None:
        """A new generation: the whole file, then the log before the previous one goes (a reader
        that read the previous base still finds its log)."""
        generation = self._generation + 1
        payload = {
            "pid": self.pid,
            "instance_id": self.pipeline.instance_id,
            "time": now,
            "generation": generation,
            "metrics": metrics,
            "registry": registry,
        }
        text = json.dumps(payload, separators=(",", ":"), default=str)
        _write_text_atomically(self.group.path(self.pid), text)
        with contextlib.suppress(OSError):
            os.unlink(self.group.log_path(self.pid, self._generation - 1))
        self._generation = generation
        self._base_bytes = len(text)
        self._log_lines = self._log_bytes = 0

    def _collect_registry(self) -> list[Entry]:
        if not self.default_registry:
            return []
        try:
            return _default_registry.collect()
        except Exception:  # noqa: BLE001 - a broken custom collector must not stop this worker's publishing
            log_internal_error("collecting the prometheus_client default registry")
            return []

    def _fresh(self) -> tuple[MetricsData | None, list[Entry]]:
        """(the SDK's own snapshot, everything serialised): the request histograms go straight
        from their aggregation to the file format."""
        pipeline = self.pipeline
        data = pipeline.reader.snapshot(extra=False)
        self._last_sdk = serialise(data)
        return data, self._last_sdk + self._requests()

    def _requests(self) -> list[Entry]:
        return self.pipeline.request_metrics.as_entries(self.pipeline.reader.extra_scope)

    def _own(self) -> MetricsData | None:
        return self.pipeline.reader.snapshot()

    def tick(self) -> None:
        """Background: publish when requests were served since the last publish (or rarely when idle)."""
        busy = self.pipeline.requests_seen != self._last_seen
        if not busy and time.monotonic() - self._last_write < IDLE_INTERVAL:
            return
        if not self._usable():
            return
        try:
            self.publish(self._last_sdk + self._requests())
        except OSError as exc:
            self._failed(exc)

    def settle(self) -> None:
        """Wait (at most :data:`SETTLE_WAIT`) for responses that are complete but not yet closed by
        the server: their clients may have them already, and a scrape started after they
        completed must count them. Nothing is waited for when none is in that state."""
        deadline = time.monotonic() + SETTLE_WAIT
        while time.monotonic() < deadline:
            try:
                pending = any(request.awaiting_close() for request in list(self.pipeline.active))
            except RuntimeError:  # the set changed while being copied: look again
                continue
            if not pending:
                return
            time.sleep(0.001)

    def _answer(self) -> None:
        """Listener thread: another worker's scrape asked us to publish."""
        sock = self._listener
        while sock is not None:
            try:
                _, sender = sock.recvfrom(16)
            except OSError:
                return
            if os.getpid() != self.pid or self._listener is None:
                return
            try:
                if self._usable():
                    self.settle()
                    self.publish(self._fresh()[1])
            except OSError as exc:
                self._failed(exc)
            except Exception:  # noqa: BLE001 - a failing publish must not stop the worker's listener
                log_internal_error("publishing metrics for another worker's scrape")
            if sender:
                with contextlib.suppress(OSError):
                    sock.sendto(b"ok", sender)

    def listen(self) -> None:
        path = self.group.path(self.pid, "sock")
        if len(path.encode()) > _MAX_SOCKET_PATH:
            _logger.info("otel_monitor: multiprocess directory path too long for a socket; scrapes won't wait")
            return
        with contextlib.suppress(OSError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        self._listener = sock
        threading.Thread(target=self._answer, name="otel_monitor-publish", daemon=True).start()

    # -- the view -----------------------------------------------------------------------------

    def scrape(self) -> MetricsData | None:
        return self.scrape_with_registry()[0]

    def scrape_with_registry(self) -> tuple[MetricsData | None, list[PrometheusMetric] | None]:
        """The scrape, and the group's default registry merged in the same round (None: this
        process's own, when the directory cannot be used)."""
        if not self._usable():
            return self._own(), None
        self.settle()
        try:
            # The others publish while this worker takes and publishes its own numbers (on two
            # cores, three answers queue behind each other: overlapping saves this worker's share).
            asked = self.group.ask()
        except OSError as exc:
            self._failed(exc)
            return self._own(), None
        try:
            data, own = self._fresh()
            # what we show is on disk before anybody shows the next total
            own_registry = self.publish(own)
            asked.wait(PUBLISH_WAIT)
            merged, registry = self._merged(own, data, own_registry)
            self._read_cache = (time.monotonic(), merged)
            return merged, _default_registry.families(registry)
        except OSError as exc:
            self._failed(exc)
            return self._own(), None
        finally:
            asked.close()

    def read(self) -> MetricsData | None:
        if not self._usable():
            return self._own()
        cached = self._read_cache
        if cached is not None and time.monotonic() - cached[0] < READ_TTL:
            return cached[1]  # a load balancer's /health every few hundred ms costs one merge a second
        data = self.pipeline.reader.snapshot(extra=False)
        try:
            merged, _ = self._merged(serialise(data) + self._requests(), data, [])
        except OSError as exc:
            self._failed(exc)
            return self._own()
        self._read_cache = (time.monotonic(), merged)
        return merged

    def _merged(
        self, own: list[Entry], data: MetricsData | None, own_registry: list[Entry]
    ) -> tuple[MetricsData, list[Entry]]:
        live, archive = self.group.others()
        registry: list[Entry] = []
        if self.default_registry and own_registry:
            registry = _default_registry.merge(
                own_registry, self.pid, [(pid, p.get("registry", [])) for pid, p in live], archive["registry"]
            )
        with self._merge_lock:
            own = self._last_own = _reuse_unchanged(self._last_own, own)
            metrics = [(pid, p.get("metrics", [])) for pid, p in live]
            entries = merge(own, self.pid, metrics, archive["metrics"], self._merge_cache)
            merged = deserialise(entries, data, self.group_resource, self._intern, self._merge_cache)
            self._intern.rotate()
        return merged, registry

    def gather(self, key: str) -> list[Any]:
        values = []
        produce = self.pipeline.shared.get(key)
        if produce is not None:
            values.append(produce())
        if not self._usable():
            return values
        try:
            live, _ = self.group.peers()
        except OSError:
            return values
        for pid in live:
            shared = self.group.shared(pid)
            if key in shared:
                values.append(shared[key])
        values.extend(shared[key] for shared in self.group.dead_shared() if key in shared)
        return values

    def close(self) -> None:
        """At a clean exit: fold our counters into the archive so the totals stay whole.

        The listener keeps answering until the archive holds our numbers: a scrape elsewhere
        that asks us meanwhile either gets a fresh publish or, once we are archived, an answer
        and a group lock that waits for the archive (never our last periodic publish alone)."""
        if os.getpid() != self.pid:
            self._listener = None
            return
        try:
            self.publish(self._fresh()[1], whole=True)
            with self.group.locked():
                with self._write_lock:
                    self._archived = True  # from here on a publish would write a second copy
                self.group.archive([self.pid])
        except OSError:
            log_internal_error("archiving this worker's metrics at exit")
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.sendto(b"stop", self.group.path(self.pid, "sock"))
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.group.path(self.pid, "sock"))


class MasterView:
    """The pre-fork master's view, for the separate metrics port it holds (gunicorn ``--preload``).

    It shows what a scrape through any worker shows: every worker's data, and of the master's own
    only the host-level gauges. The master serves no requests, and what it counted before the fork
    (at import) no worker exports either. It never writes a file of its own.
    """

    def __init__(self, pipeline: GroupPipeline, directory: str) -> None:
        self.pipeline = pipeline
        self.group = _Group(directory, None)
        self.group_resource = _group_resource(pipeline, directory)
        self._intern = _Interner()
        self._merge_cache = MergeCache()
        self._lock = threading.Lock()

    def scrape(self) -> MetricsData | None:
        return self.scrape_with_registry()[0]

    def scrape_with_registry(self) -> tuple[MetricsData | None, list[PrometheusMetric] | None]:
        """The workers' numbers; of the default registry too, the workers' only (the master's
        process and GC collectors describe a process that serves nothing)."""
        self.group.ask_to_publish(PUBLISH_WAIT)
        data = self.pipeline.reader.snapshot()
        try:
            live, archive = self.group.others()
        except OSError:
            return data, None
        registry = _default_registry.merge(
            [], None, [(pid, p.get("registry", [])) for pid, p in live], archive.get("registry", [])
        )
        return self._merge(data, live, archive), _default_registry.families(registry)

    def read(self) -> MetricsData | None:
        data = self.pipeline.reader.snapshot()
        try:
            live, archive = self.group.others()
        except OSError:
            return data
        return self._merge(data, live, archive)

    def _merge(self, data: MetricsData | None, live: list[tuple[int, JsonObject]], archive: JsonObject) -> MetricsData:
        own = [e for e in serialise(data) if _is_host_level(e)]
        with self._lock:
            metrics = [(pid, p.get("metrics", [])) for pid, p in live]
            entries = merge(own, os.getpid(), metrics, archive["metrics"], self._merge_cache)
            merged = deserialise(entries, data, self.group_resource, self._intern, self._merge_cache)
            self._intern.rotate()
        return merged

    def gather(self, key: str) -> list[Any]:
        values = []
        with contextlib.suppress(OSError):
            live, _ = self.group.peers()
            for pid in live:
                shared = self.group.shared(pid)
                if key in shared:
                    values.append(shared[key])
            values.extend(shared[key] for shared in self.group.dead_shared() if key in shared)
        return values

    def close(self) -> None:
        pass


def master_view(pipeline: GroupPipeline, directory: str) -> MasterView:
    """The master's view (it just forked its first worker): the caller sets ``pipeline.view``."""
    return MasterView(pipeline, directory)


def worker_view(pipeline: GroupPipeline, directory: str) -> WorkerView:
    """A worker's view, publishing and listening; registers its background job and exit hook.

    Raises OSError when the directory cannot be used at all (the caller keeps the local view).
    """
    view = WorkerView(pipeline, directory)
    try:
        view.publish(view._fresh()[1])
    except OSError as exc:
        view._failed(exc)
    try:
        view.listen()
    except OSError:
        log_internal_error("listening for the other workers' scrapes")
    pipeline.scheduler.every(BUSY_INTERVAL, view.tick, "publishing worker metrics")
    pipeline.shutdown_hooks.append(view.close)
    return view
