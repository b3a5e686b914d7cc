"""Where the alerts' state lives across restarts, and which process of a group evaluates.

One small JSON document (:class:`Stored`): every rule's state, the silences, the last
notifications and their outcomes, each destination's health, when the last report went out. It
is kept in the analytics history database when there is one (its own table, ``otel_monitor_alerts``),
else in a JSON file (``alerts_state_file``; by default ``$TMPDIR/otel_monitor-<uid>-alerts-<service>.json``,
so a restarted app -- or gunicorn group -- finds it again). Every change is a read-modify-write
under an exclusive lock (``flock`` on ``<file>.lock``; ``BEGIN IMMEDIATE`` in SQLite), so a
silence posted through one worker and the evaluator's writes in another never lose each other.

:class:`EvaluatorLock`: the one process that evaluates. A POSIX record lock (``lockf``) on
``<file>.evaluator.lock``, taken without waiting at every evaluation and held while the process
lives: gunicorn's four workers (or the master) race for it, one wins, and when it dies the lock
goes with it and another worker takes over at its next tick. Record locks are not inherited over
``fork``, so a child never believes it holds its parent's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypedDict

__all__ = ["Stored", "StateStore", "JsonStore", "SqliteStore", "EvaluatorLock", "default_state_file", "open_store"]

MAX_NOTIFICATIONS = 100


class Stored(TypedDict):
    #: rule name -> AlertState.as_json()
    alerts: dict[str, dict[str, Any]]
    silences: list[dict[str, Any]]
    #: newest last, at most MAX_NOTIFICATIONS
    notifications: list[dict[str, Any]]
    #: destination name -> {"ok": bool, "last_error": str|None, "since": t}
    destinations: dict[str, dict[str, Any]]
    report_last: float | None


def empty() -> Stored:
    return {"alerts": {}, "silences": [], "notifications": [], "destinations": {}, "report_last": None}


def _coerce(data: object) -> Stored:
    doc = empty()
    if not isinstance(data, dict):
        return doc
    if isinstance(data.get("alerts"), dict):
        doc["alerts"] = {str(k): v for k, v in data["alerts"].items() if isinstance(v, dict)}
    for key in ("silences", "notifications"):
        if isinstance(data.get(key), list):
            doc[key] = [e for e in data[key] if isinstance(e, dict)]
    if isinstance(data.get("destinations"), dict):
        doc["destinations"] = {str(k): v for k, v in data["destinations"].items() if isinstance(v, dict)}
    last = data.get("report_last")
    doc["report_last"] = float(last) if isinstance(last, (int, float)) and not isinstance(last, bool) else None
    return doc


class StateStore(Protocol):
    #: where the state is (for the API and ``doctor``)
    where: str
    #: the evaluator's lock file
    lock_path: str

    def load(self) -> Stored: ...

    def update(self, change: Callable[[Stored], None]) -> Stored: ...


class JsonStore:
    """The state as one JSON file, replaced atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = path
        self.lock_path = path + ".evaluator.lock"
        self._thread_lock = threading.Lock()

    def load(self) -> Stored:
        # In a shared temporary directory: never through a symlink, never a file another user made.
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return empty()
        try:
            if os.fstat(fd).st_uid != os.getuid():
                return empty()
            with os.fdopen(fd, encoding="utf-8") as fh:
                fd = -1
                return _coerce(json.load(fh))
        except (OSError, ValueError):
            return empty()
        finally:
            if fd >= 0:
                os.close(fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def update(self, change: Callable[[Stored], None]) -> Stored:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with self._locked():
            doc = self.load()
            change(doc)
            tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # left by a write that crashed in a process with our pid
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, separators=(",", ":"))
            os.replace(tmp, self.path)
            return doc


class SqliteStore:
    """The state in the analytics history database: one row of its own table."""

    TABLE = "otel_monitor_alerts"

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = f"{path} (table {self.TABLE})"
        self.lock_path = path + ".alerts-evaluator.lock"

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        connection.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        return connection

    def load(self) -> Stored:
        try:
            connection = self._connect()
        except sqlite3.Error:
            return empty()
        try:
            row = connection.execute(f"SELECT value FROM {self.TABLE} WHERE key = 'state'").fetchone()
            return _coerce(json.loads(row[0])) if row else empty()
        except (sqlite3.Error, ValueError):
            return empty()
        finally:
            connection.close()

    def update(self, change: Callable[[Stored], None]) -> Stored:
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            row = connection.execute(f"SELECT value FROM {self.TABLE} WHERE key = 'state'").fetchone()
            try:
                doc = _coerce(json.loads(row[0])) if row else empty()
            except ValueError:
                doc = empty()
            change(doc)
            connection.execute(
                f"INSERT OR REPLACE INTO {self.TABLE} (key, value) VALUES ('state', ?)",
                (json.dumps(doc, separators=(",", ":")),),
            )
            connection.execute("COMMIT")
            return doc
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()


def default_state_file(service_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", service_name or "app")[:80]
    return os.path.join(tempfile.gettempdir(), f"otel_monitor-{os.getuid()}-alerts-{slug}.json")


def open_store(state_file: str | None, history_db: str | None, service_name: str) -> StateStore:
    """``alerts_state_file`` when set, else the history database, else the default file."""
    if state_file:
        return JsonStore(os.path.expanduser(state_file))
    if history_db:
        return SqliteStore(history_db)
    return JsonStore(default_state_file(service_name))


#: lock files held by this process (record locks do not exclude two holders in one process)
_held: set[str] = set()
_held_lock = threading.Lock()


class EvaluatorLock:
    """Held by the one process (of those sharing ``path``) that evaluates the rules."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = os.getpid()

    @property
    def held(self) -> bool:
        return self._fd is not None and self._pid == os.getpid()

    def acquire(self) -> bool:
        """Take the lock without waiting (True when this process holds it now)."""
        if self.held:
            return True
        if self._pid != os.getpid():  # a forked child: the parent's descriptor is not ours
            self._fd, self._pid = None, os.getpid()
        with _held_lock:
            if self.path in _held:
                return False
            fd = None
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if fd is not None:
                    os.close(fd)
                return False
            self._fd = fd
            _held.add(self.path)
            return True

    def release(self) -> None:
        if not self.held:
            return
        fd, self._fd = self._fd, None
        with _held_lock:
            _held.discard(self.path)
        assert fd is not None
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)
