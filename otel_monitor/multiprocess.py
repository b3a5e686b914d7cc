"""Pre-fork servers (gunicorn, uWSGI-style): every worker's metrics on ``/metrics``, whichever worker answers.

How it works
------------
* Each worker owns its OpenTelemetry pipeline (built after the fork) and, from the background
  thread, writes its cumulative metrics and shared values (the analytics' recent traces) to
  ``<dir>/w-<pid>.json`` -- atomically (write + rename) and only off the request path: every
  0.5 s while it serves requests, every 5 s when idle, and right before it answers a scrape.
* A scrape merges the answering worker's fresh data with the other live workers' files:
  counters and histograms are summed; up/down counters of live workers are summed; process-level
  gauges (``process.*`` and custom gauges) keep one series per worker, told apart by
  ``process.pid``; host-level metrics (``system.*``) come from the answering worker only, so they
  appear once per host.
* A worker that dies (crash, SIGKILL, ``max_requests``) leaves its last file behind. The next
  merge moves its counters and histograms into ``archive.json`` (under an exclusive ``flock``,
  so two workers never archive the same file twice) and deletes the file: totals never go
  backwards when gunicorn replaces a worker. Its gauges disappear with it.
* The directory is ``$TMPDIR/otel_monitor-<uid>-<master pid>`` (mode 0700, refused if another
  user owns it or it is a symlink), or ``multiprocess_dir`` when set. Directories of masters that
  no longer exist are removed when a new group starts.

Limits: other workers' numbers are as fresh as their last write (at most ~0.5 s behind while
they serve traffic); requests a worker served in its last half second before a SIGKILL are lost.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Iterable

import psutil
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
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ._safe_log import log_internal_error
from .system import HOST_METRIC_PREFIX

__all__ = ["detect_group", "enable", "group_dir", "merge"]

_logger = logging.getLogger("otel_monitor")
BUSY_INTERVAL = 0.5
IDLE_INTERVAL = 5.0
_PREFIX = "otel_monitor-"


# -- who are we? --------------------------------------------------------------------------------


def detect_group(forked_from: int | None) -> int | None:
    """The pid of the pre-fork master this process is a worker of, or None when not pre-forked.

    A worker is a process forked (not exec'd) from the master: either we saw the fork (the monitor
    was built before it: gunicorn ``--preload``), or the parent runs the same command line as we
    do, or this is a gunicorn worker (the master's title may differ when setproctitle is installed).
    """
    if forked_from is not None:
        return forked_from
    if _in_gunicorn_master_setup():
        return None  # gunicorn --preload importing the app: we are the master, whatever our parent runs
    try:
        me = psutil.Process()
        parent = me.parent()
        if parent is None or parent.pid <= 1:
            return None
        if parent.cmdline() == me.cmdline():
            return parent.pid
        if "gunicorn.workers.base" in sys.modules and any("gunicorn" in part for part in parent.cmdline()):
            return parent.pid
    except (psutil.Error, OSError):
        return None
    return None


def _arbiter_frames() -> set[str]:
    """Names of gunicorn ``Arbiter`` methods on the current stack (none outside gunicorn)."""
    if "gunicorn.arbiter" not in sys.modules:
        return set()
    arbiter = os.path.join("gunicorn", "arbiter.py")
    names = set()
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(arbiter):
            names.add(frame.f_code.co_name)
        frame = frame.f_back
    return names


def _in_gunicorn_master_setup() -> bool:
    """True in the gunicorn master while it loads the app (``--preload``): ``Arbiter.setup`` is on
    the stack and ``Arbiter.spawn_worker`` (under which a forked worker runs) is not.

    Without this, a master whose parent's command line mentions gunicorn (``timeout gunicorn ...``,
    a test runner, a supervisor) passed for a worker of that parent.
    """
    names = _arbiter_frames()
    return "setup" in names and "spawn_worker" not in names


def forked_a_gunicorn_worker() -> bool:
    """True in the gunicorn master right after it forked a worker (an ``after_in_parent`` hook)."""
    return "spawn_worker" in _arbiter_frames()


def group_dir(master_pid: int, configured: str | None = None) -> str:
    """Create (or reuse) the group's directory, owned by us and private."""
    if configured:
        path = configured
    else:
        path = os.path.join(tempfile.gettempdir(), f"{_PREFIX}{os.getuid()}-{master_pid}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass
    info = os.lstat(path)
    import stat

    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"otel_monitor: refusing multiprocess directory {path!r}: not a directory we own")
    if not configured:
        _remove_stale_groups()
    return path


def _remove_stale_groups() -> None:
    base = tempfile.gettempdir()
    mine = f"{_PREFIX}{os.getuid()}-"
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(mine):
            continue
        pid_text = name[len(mine) :]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False
    except psutil.Error:
        return True


# -- serialisation: MetricsData <-> plain JSON -------------------------------------------------------


def _attrs_key(attributes: Any) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in dict(attributes or {}).items()))


def serialise(data: MetricsData | None) -> list[dict]:
    """[{scope, version, name, description, unit, kind, monotonic, points: [...]}, ...]"""
    result: list[dict] = []
    if data is None:
        return result
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                entry = {
                    "scope": sm.scope.name,
                    "version": sm.scope.version,
                    "name": metric.name,
                    "description": metric.description,
                    "unit": metric.unit,
                }
                d = metric.data
                if isinstance(d, Histogram):
                    entry["kind"] = "histogram"
                    entry["points"] = [
                        {
                            "a": dict(p.attributes or {}),
                            "start": p.start_time_unix_nano,
                            "count": p.count,
                            "sum": p.sum,
                            "min": p.min,
                            "max": p.max,
                            "bounds": list(p.explicit_bounds),
                            "buckets": list(p.bucket_counts),
                        }
                        for p in d.data_points
                    ]
                elif isinstance(d, Sum):
                    entry["kind"] = "sum"
                    entry["monotonic"] = d.is_monotonic
                    entry["points"] = [
                        {"a": dict(p.attributes or {}), "start": p.start_time_unix_nano, "v": p.value}
                        for p in d.data_points
                    ]
                elif isinstance(d, Gauge):
                    entry["kind"] = "gauge"
                    entry["points"] = [{"a": dict(p.attributes or {}), "v": p.value} for p in d.data_points]
                else:
                    continue  # exponential histograms are not merged across workers
                result.append(entry)
    return result


def _is_host_level(entry: dict) -> bool:
    return entry["name"].startswith(HOST_METRIC_PREFIX)


def merge(own: list[dict], own_pid: int, live: Iterable[tuple[int, list[dict]]], archive: list[dict]) -> list[dict]:
    """Merge serialised metrics: see the module docstring for the rules."""
    merged: dict[tuple, dict] = {}
    order: list[tuple] = []

    def slot(entry: dict) -> dict:
        key = (entry["scope"], entry["name"])
        target = merged.get(key)
        if target is None:
            target = {k: v for k, v in entry.items() if k != "points"}
            target["points"] = {}
            merged[key] = target
            order.append(key)
        return target

    def add(entry: dict, pid: int | None, alive: bool) -> None:
        kind = entry["kind"]
        counting = kind == "histogram" or (kind == "sum" and entry.get("monotonic"))
        if not alive and not counting:
            return  # a dead worker's gauges and up/down counters die with it
        if _is_host_level(entry) and pid != own_pid:
            return  # host-level: the answering worker's reading only
        target = slot(entry)
        per_worker = kind == "gauge" and not _is_host_level(entry)
        for point in entry["points"]:
            attrs = dict(point["a"])
            if per_worker and pid is not None and "process.pid" not in attrs:
                attrs["process.pid"] = pid
            key = _attrs_key(attrs)
            existing = target["points"].get(key)
            if existing is None:
                target["points"][key] = {
                    **point,
                    "a": attrs,
                    **({"buckets": list(point["buckets"])} if kind == "histogram" else {}),
                }
            elif kind == "histogram":
                if existing["bounds"] != point["bounds"]:
                    continue  # a worker running other code; keep the first layout
                existing["count"] += point["count"]
                existing["sum"] += point["sum"]
                existing["buckets"] = [a + b for a, b in zip(existing["buckets"], point["buckets"])]
                existing["min"] = _opt(min, existing["min"], point["min"])
                existing["max"] = _opt(max, existing["max"], point["max"])
                existing["start"] = min(existing["start"], point["start"])
            elif kind == "sum":
                existing["v"] += point["v"]
                existing["start"] = min(existing["start"], point["start"])
            else:
                existing["v"] = point["v"]

    add_all = [(own, own_pid, True)] + [(entries, pid, True) for pid, entries in live]
    for entries, pid, alive in add_all:
        for entry in entries:
            add(entry, pid, alive)
    for entry in archive:
        add(entry, None, False)
    return [{**merged[key], "points": list(merged[key]["points"].values())} for key in order]


def _opt(fn: Any, a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


def deserialise(entries: list[dict], template: MetricsData, resource: Any) -> MetricsData:
    """Merged entries back into MetricsData, with ``resource`` and the scopes of ``template``."""
    scopes: dict[str, ScopeMetrics] = {}
    scope_objects = {sm.scope.name: sm.scope for rm in template.resource_metrics for sm in rm.scope_metrics}
    now = time.time_ns()
    by_scope: dict[str, list[Metric]] = {}
    for entry in entries:
        kind = entry["kind"]
        if kind == "histogram":
            data: Any = Histogram(
                data_points=[
                    HistogramDataPoint(
                        attributes=p["a"],
                        start_time_unix_nano=p["start"],
                        time_unix_nano=now,
                        count=p["count"],
                        sum=p["sum"],
                        bucket_counts=p["buckets"],
                        explicit_bounds=p["bounds"],
                        min=p["min"],
                        max=p["max"],
                    )
                    for p in entry["points"]
                ],
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
            )
        elif kind == "sum":
            data = Sum(
                data_points=[
                    NumberDataPoint(
                        attributes=p["a"], start_time_unix_nano=p["start"], time_unix_nano=now, value=p["v"]
                    )
                    for p in entry["points"]
                ],
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
                is_monotonic=entry["monotonic"],
            )
        else:
            data = Gauge(
                data_points=[
                    NumberDataPoint(attributes=p["a"], start_time_unix_nano=0, time_unix_nano=now, value=p["v"])
                    for p in entry["points"]
                ]
            )
        by_scope.setdefault(entry["scope"], []).append(
            Metric(name=entry["name"], description=entry["description"], unit=entry["unit"], data=data)
        )
    for name, metrics in by_scope.items():
        scope = scope_objects.get(name) or InstrumentationScope(name)
        scopes[name] = ScopeMetrics(scope=scope, metrics=metrics, schema_url="")
    return MetricsData(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=list(scopes.values()), schema_url="")]
    )


# -- the worker's side ------------------------------------------------------------------------------


class WorkerFiles:
    """This worker's file in the group directory, and the merge of everybody's."""

    def __init__(self, directory: str, pipeline: Any) -> None:
        self.directory = directory
        self.pipeline = pipeline
        self.pid = os.getpid()
        self.path = os.path.join(directory, f"w-{self.pid}.json")
        self._last_seen = -1
        self._last_write = 0.0
        # The merged view describes the whole group, not this worker: a target_info that changed
        # with every scrape (landing on another worker) would churn series in Prometheus.
        from opentelemetry.sdk.resources import Resource

        attributes = {k: v for k, v in pipeline.resource.attributes.items() if k != "process.pid"}
        attributes["service.instance.id"] = f"{attributes.get('host.name', 'host')}:{os.path.basename(directory)}"
        self.group_resource = Resource(attributes)

    # called from the background thread
    def tick(self) -> None:
        busy = self.pipeline.requests_seen != self._last_seen
        if busy or time.monotonic() - self._last_write >= IDLE_INTERVAL:
            self.write(serialise(self.pipeline.reader.snapshot()))

    def write(self, metrics: list[dict]) -> None:
        if os.getpid() != self.pid:
            return  # a process forked from this worker must never write the worker's file
        self._last_seen = self.pipeline.requests_seen
        shared = {}
        for key, produce in list(self.pipeline.shared.items()):
            try:
                shared[key] = produce()
            except Exception:  # noqa: BLE001
                log_internal_error(f"sharing {key}")
        payload = {
            "pid": self.pid,
            "instance_id": self.pipeline.instance_id,
            "time": time.time(),
            "metrics": metrics,
            "shared": shared,
        }
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, separators=(",", ":"), default=str)
        os.replace(tmp, self.path)
        self._last_write = time.monotonic()

    def _read_others(self) -> tuple[list[tuple[int, dict]], list[int]]:
        live, dead = [], []
        for name in os.listdir(self.directory):
            if not (name.startswith("w-") and name.endswith(".json")):
                continue
            pid_text = name[2:-5]
            if not pid_text.isdigit() or int(pid_text) == self.pid:
                continue
            pid = int(pid_text)
            if not _alive(pid):
                dead.append(pid)
                continue
            payload = _read_json(os.path.join(self.directory, name))
            if payload is not None:
                live.append((pid, payload))
        return live, dead

    def _locked(self) -> Any:
        """The group lock: reading everybody's files and archiving dead workers happen as one step,
        so a worker that exits (archiving itself) is never counted twice by a concurrent merge."""
        import contextlib

        @contextlib.contextmanager
        def hold() -> Any:
            with open(os.path.join(self.directory, "archive.lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

        return hold()

    def _archive(self, dead: list[int]) -> list[dict]:
        """Fold dead workers' counters into archive.json; returns the archive. Call with the lock held."""
        archive_path = os.path.join(self.directory, "archive.json")
        archive = (_read_json(archive_path) or {}).get("metrics", [])
        changed = False
        for pid in dead:
            path = os.path.join(self.directory, f"w-{pid}.json")
            payload = _read_json(path)
            if payload is None:
                continue  # another worker archived it first
            archive = merge([], -1, [], archive + payload.get("metrics", []))
            os.unlink(path)
            changed = True
        if changed:
            tmp = archive_path + f".{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"metrics": archive}, fh, separators=(",", ":"))
            os.replace(tmp, archive_path)
        return archive

    def merged(self, own_data: MetricsData) -> MetricsData:
        """What /metrics and the analytics show: everybody's data, this worker's fresh."""
        own = serialise(own_data)
        self.write(own)  # anything we expose is on disk first: a later merge never shows less
        return self._merge(own, own_data)

    def _merge(self, own: list[dict], own_data: MetricsData) -> MetricsData:
        with self._locked():
            live, dead = self._read_others()
            archive = self._archive(dead)
        entries = merge(own, self.pid, [(pid, p.get("metrics", [])) for pid, p in live], archive)
        return deserialise(entries, own_data, self.group_resource)

    def gather(self, key: str) -> list[Any]:
        values = []
        produce = self.pipeline.shared.get(key)
        if produce is not None:
            values.append(produce())
        live, _ = self._read_others()
        for _, payload in live:
            if key in payload.get("shared", {}):
                values.append(payload["shared"][key])
        return values

    def remove(self) -> None:
        """At a clean exit: fold our counters into the archive so the totals stay whole."""
        if os.getpid() != self.pid:
            return
        try:
            self.write(serialise(self.pipeline.reader.snapshot()))
            with self._locked():
                self._archive([self.pid])
        except OSError:
            log_internal_error("archiving this worker's metrics at exit")


def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log_internal_error(f"reading {os.path.basename(path)}")
        return None


class MasterView(WorkerFiles):
    """The pre-fork master's view, for the separate metrics port it holds (gunicorn ``--preload``).

    It shows what a scrape through any worker shows: every worker's data, and of the master's own
    only the host-level gauges. The master serves no requests, and what it counted before the fork
    (at import) no worker exports either. It never writes a file of its own.
    """

    def tick(self) -> None:
        pass

    def write(self, metrics: list[dict]) -> None:
        pass

    def remove(self) -> None:
        pass

    def merged(self, own_data: MetricsData) -> MetricsData:
        return self._merge([e for e in serialise(own_data) if _is_host_level(e)], own_data)


def observe(pipeline: Any, directory: str) -> MasterView:
    """Switch the master's pipeline to the group view (it just forked its first worker)."""
    view = MasterView(directory, pipeline)
    pipeline.reader.transform = view.merged
    pipeline.extensions["multiprocess"] = view
    return view


def enable(pipeline: Any, directory: str) -> WorkerFiles:
    """Switch a pipeline to multiprocess mode (a setup hook; runs in the worker)."""
    files = WorkerFiles(directory, pipeline)
    pipeline.reader.transform = files.merged
    pipeline.gather = files.gather
    pipeline.extensions["multiprocess"] = files
    pipeline.scheduler.every(BUSY_INTERVAL, files.tick, "writing worker metrics")
    pipeline.shutdown_hooks.append(files.remove)
    files.write(serialise(pipeline.reader.snapshot()))
    return files


def group_secret(name: str, nbytes: int = 32) -> bytes | None:
    """A random secret shared by all workers of this pre-fork group, or None when not pre-forked.

    The first worker to ask creates ``<dir>/secret-<name>`` (mode 0600, O_EXCL); the others read
    it. Generated analytics tokens and session keys are then the same whichever worker answers.
    """
    import secrets

    master = detect_group(None)
    if master is None:
        return None
    path = os.path.join(group_dir(master), f"secret-{name}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # the creator may not have written it yet
            with open(path, "rb") as fh:
                value = fh.read()
            if len(value) == nbytes:
                return value
            time.sleep(0.01)
        return None
    value = secrets.token_bytes(nbytes)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value
