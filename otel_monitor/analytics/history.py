"""Optional embedded history: per-minute rollups in one SQLite file (``MONITORING_DB``).

Written by a background job every 60 s (and once more at exit), never from a request. Each
process writes only the deltas of its own instance (``pipeline.instance_id``) from its own
cumulative metrics, into rows keyed by ``(minute, instance_id, route, method, status, error)``
that also carry the instance's app version (``service.version``);
a minute written twice is replaced with that minute's running total, so retries never add
twice, and several processes (pre-fork workers, restarts) sharing one file never double-count.
Readers sum over instances. WAL mode and a busy timeout let writers and readers share the file.

Rows older than ``analytics_retention_days`` are deleted by the same job.

Schema 2 added the ``version`` column and the ``instances`` table (one row per process: its
version, when it started and last wrote). A file of schema 1 is migrated in place when it is
first opened (``ALTER TABLE ... ADD COLUMN``: its rows read as version ``unknown``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .summary import Key, Series, add, diff

__all__ = ["History"]

_logger = logging.getLogger("otel_monitor")
SCHEMA_VERSION = "2"
#: rows written before versions were recorded (schema 1)
UNKNOWN_VERSION = "unknown"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    minute INTEGER NOT NULL, instance_id TEXT NOT NULL, route TEXT NOT NULL, method TEXT NOT NULL,
    status INTEGER NOT NULL, error TEXT NOT NULL,
    count INTEGER NOT NULL, errors INTEGER NOT NULL, sum_s REAL NOT NULL, max_s REAL, buckets TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT 'unknown',
    PRIMARY KEY (minute, instance_id, route, method, status, error)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_by_minute ON requests (minute);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY, version TEXT NOT NULL, started REAL NOT NULL, last_write REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS system (
    minute INTEGER NOT NULL, instance_id TEXT NOT NULL,
    cpu_pct REAL, memory_pct REAL, disk_pct REAL, process_rss_bytes REAL, process_threads REAL,
    net_sent_bps REAL, net_recv_bps REAL,
    PRIMARY KEY (minute, instance_id)) WITHOUT ROWID;
"""
_SYSTEM_COLUMNS = (
    "cpu_pct",
    "memory_pct",
    "disk_pct",
    "process_rss_bytes",
    "process_threads",
    "net_sent_bps",
    "net_recv_bps",
)


class History:
    """One process's writer of, and every process's reader from, one SQLite history file."""

    def __init__(
        self,
        path: str,
        instance_id: str,
        bounds: tuple[float, ...],
        retention_days: float,
        clock: Callable[[], float],
        version: str = UNKNOWN_VERSION,
    ) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.instance_id = instance_id
        self.bounds = tuple(bounds)
        self.retention_s = retention_days * 86400.0
        self.clock = clock
        self.version = version
        self.started = clock()
        self._lock = threading.Lock()  # one write at a time in this process
        self._written: dict[Key, Series] = {}  # own cumulative at the last write
        self._minute: int | None = None
        self._minute_rows: dict[Key, Series] = {}  # this minute's running total
        self._net: tuple[float, float, float] | None = None  # (t, sent, recv) at the last write
        self._ready: bool | None = None  # the file is opened on first use, not in the setup hook
        #: why the last due write did not reach the file (None: it did): "unusable" or the error's class
        self.write_error: str | None = None

    @property
    def usable(self) -> bool:
        """The file could be opened and holds our latency buckets (checked once, on first use)."""
        if self._ready is None:
            with self._lock:
                if self._ready is None:
                    try:
                        self._ready = self._init()
                    except (OSError, sqlite3.Error) as exc:
                        self._ready = False
                        _logger.warning(
                            "otel_monitor: cannot use the history file %s (%s: %s); "
                            "windows beyond 15 minutes are not available",
                            self.path,
                            type(exc).__name__,
                            exc,
                        )
        return bool(self._ready)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def _init(self) -> bool:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            _migrate(conn)
            conn.executescript(_SCHEMA)
            bounds = json.dumps(list(self.bounds))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('bounds', ?)", (bounds,))
            stored = conn.execute("SELECT value FROM meta WHERE key = 'bounds'").fetchone()[0]
            if stored != bounds:
                _logger.warning(
                    "otel_monitor: the history file %s was written with other latency buckets; "
                    "history is not used (move the file away to start a new one)",
                    self.path,
                )
                return False
            return True
        finally:
            conn.close()

    # -- writing (the background job) ----------------------------------------------------------

    def write(self, own: Mapping[Key, Series], system: Mapping[str, Any]) -> int:
        """Record this process's requests since the last write, and a system sample. Returns rows written."""
        if not self.usable:
            self.write_error = "unusable"
            return 0
        with self._lock:
            now = self.clock()
            minute = int(now // 60) * 60
            delta = diff(own, self._written, self.bounds)
            # The minute's new running total is kept only once the commit succeeded: a failed write
            # leaves it as it was, so the retry (whose delta includes the lost one) adds it once.
            minute_rows = dict(self._minute_rows) if minute == self._minute else {}
            for key, s in delta.items():
                minute_rows[key] = add(minute_rows.get(key), s)
            rows = [
                (
                    minute,
                    self.instance_id,
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    s.count,
                    s.count if (k[3] or k[2] >= 500) else 0,
                    s.sum,
                    s.max,
                    json.dumps(list(s.buckets)),
                    self.version,
                )
                for k, s in minute_rows.items()
            ]
            sys_row = self._system_row(minute, now, system)
            try:
                conn = self._connect()
            except BaseException as exc:
                self.write_error = type(exc).__name__
                raise
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO requests (minute, instance_id, route, method, status, error, "
                    "count, errors, sum_s, max_s, buckets, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                conn.execute(
                    "INSERT OR REPLACE INTO instances (instance_id, version, started, last_write) VALUES (?, ?, ?, ?)",
                    (self.instance_id, self.version, self.started, now),
                )
                if sys_row is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO system (minute, instance_id, "
                        + ", ".join(_SYSTEM_COLUMNS)
                        + ") VALUES (?, ?"
                        + ", ?" * len(_SYSTEM_COLUMNS)
                        + ")",
                        sys_row,
                    )
                cutoff = now - self.retention_s
                conn.execute("DELETE FROM requests WHERE minute < ?", (cutoff,))
                conn.execute("DELETE FROM system WHERE minute < ?", (cutoff,))
                conn.execute("DELETE FROM instances WHERE last_write < ?", (cutoff,))
                conn.execute("COMMIT")
            except BaseException as exc:
                self.write_error = type(exc).__name__
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            finally:
                conn.close()
            self._written = dict(own)
            self._minute, self._minute_rows = minute, minute_rows
            self.write_error = None
            return len(rows)

    def unwritten(self, own: Mapping[Key, Series]) -> dict[Key, Series]:
        """What this process counted (``own``: its cumulative requests) since its last write."""
        with self._lock:
            return diff(own, self._written, self.bounds)

    def _system_row(self, minute: int, now: float, system: Mapping[str, Any]) -> tuple[object, ...] | None:
        if not system:
            return None
        sent, recv = system.get("net_bytes_sent"), system.get("net_bytes_recv")
        sent_bps = recv_bps = None
        if sent is not None and recv is not None:
            if self._net is not None and now > self._net[0] and sent >= self._net[1] and recv >= self._net[2]:
                sent_bps = (sent - self._net[1]) / (now - self._net[0])
                recv_bps = (recv - self._net[2]) / (now - self._net[0])
            self._net = (now, sent, recv)
        values = {
            "cpu_pct": system.get("cpu_pct"),
            "memory_pct": system.get("memory_pct"),
            "disk_pct": system.get("disk_pct"),
            "process_rss_bytes": system.get("process_rss_bytes"),
            "process_threads": system.get("process_threads"),
            "net_sent_bps": sent_bps,
            "net_recv_bps": recv_bps,
        }
        return (minute, self.instance_id, *(values[c] for c in _SYSTEM_COLUMNS))

    # -- reading (any process) -----------------------------------------------------------------

    def requests(self, since: float, until: float) -> dict[Key, Series]:
        """Requests of every instance in minutes ``[since, until]``, summed per key."""
        result: dict[Key, Series] = {}
        for _minute, key, s in self._rows(since, until):
            result[key] = add(result.get(key), s)
        return result

    def requests_by_minute(self, since: float, until: float) -> dict[int, dict[Key, Series]]:
        result: dict[int, dict[Key, Series]] = {}
        for minute, key, s in self._rows(since, until):
            per_minute = result.setdefault(minute, {})
            per_minute[key] = add(per_minute.get(key), s)
        return result

    def _rows(self, since: float, until: float, with_version: bool = False) -> Iterator[tuple[Any, ...]]:
        if not self.usable:
            return
        conn = self._connect()
        try:
            cursor = conn.execute(
                "SELECT minute, route, method, status, error, count, sum_s, max_s, buckets, version "
                "FROM requests WHERE minute >= ? AND minute <= ?",
                (int(since // 60) * 60, until),
            )
            for minute, route, method, status, error, count, sum_s, max_s, buckets, version in cursor:
                try:
                    parsed = tuple(int(b) for b in json.loads(buckets))
                except (ValueError, TypeError):
                    continue
                series = Series(int(count), float(sum_s), max_s, parsed)
                key = (route, method, int(status), error)
                if with_version:
                    yield minute, key, series, str(version)
                else:
                    yield minute, key, series
        finally:
            conn.close()

    def requests_by_version(self, since: float, until: float) -> dict[str, dict[Key, Series]]:
        """Requests in minutes ``[since, until]`` per app version, summed per key."""
        result: dict[str, dict[Key, Series]] = {}
        for _minute, key, s, version in self._rows(since, until, with_version=True):
            per_version = result.setdefault(version, {})
            per_version[key] = add(per_version.get(key), s)
        return result

    def versions(self, since: float, until: float) -> dict[str, tuple[float, float]]:
        """Per version seen in ``[since, until]``: (first seen, last seen), Unix seconds.

        First seen is the earliest start of its processes (or its earliest minute, for rows of
        schema 1), last seen the end of its latest minute with requests.
        """
        if not self.usable:
            return {}
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT r.version, MIN(r.minute), MAX(r.minute), MIN(i.started) FROM requests r "
                "LEFT JOIN instances i ON i.instance_id = r.instance_id "
                "WHERE r.minute >= ? AND r.minute <= ? GROUP BY r.version",
                (int(since // 60) * 60, until),
            ).fetchall()
        finally:
            conn.close()
        result: dict[str, tuple[float, float]] = {}
        for version, first_minute, last_minute, started in rows:
            first = float(first_minute) if started is None else max(float(started), float(first_minute))
            result[str(version)] = (first, float(last_minute) + 60.0)
        return result

    def system_by_minute(self, since: float, until: float) -> dict[int, dict[str, Any]]:
        """Per minute: host values averaged over instances, process values summed."""
        if not self.usable:
            return {}
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT minute, AVG(cpu_pct), AVG(memory_pct), AVG(disk_pct), SUM(process_rss_bytes), "
                "SUM(process_threads), AVG(net_sent_bps), AVG(net_recv_bps) FROM system "
                "WHERE minute >= ? AND minute <= ? GROUP BY minute ORDER BY minute",
                (int(since // 60) * 60, until),
            ).fetchall()
        finally:
            conn.close()
        return {row[0]: dict(zip(_SYSTEM_COLUMNS, row[1:], strict=True)) for row in rows}

    def first_minute(self) -> int | None:
        if not self.usable:
            return None
        conn = self._connect()
        try:
            row = conn.execute("SELECT MIN(minute) FROM requests").fetchone()
        finally:
            conn.close()
        return row[0] if row else None

    def row_count(self) -> int:
        conn = self._connect()
        try:
            count: int = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            return count
        finally:
            conn.close()


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a file of an older schema up to :data:`SCHEMA_VERSION` (before the schema script runs)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "requests" not in tables:
        return  # a new file
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    if "version" in columns:
        return
    try:
        conn.execute(f"ALTER TABLE requests ADD COLUMN version TEXT NOT NULL DEFAULT '{UNKNOWN_VERSION}'")
    except sqlite3.OperationalError:
        # Another worker opening the same file migrated it first ("duplicate column name").
        if "version" not in {row[1] for row in conn.execute("PRAGMA table_info(requests)")}:
            raise
        return
    _logger.info("otel_monitor: the history file was migrated to schema %s (app versions)", SCHEMA_VERSION)
