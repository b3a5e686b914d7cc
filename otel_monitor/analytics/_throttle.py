"""Login throttling and session revocation, shared by the workers of a pre-fork group.

Failed attempts are counted twice: per client address (:data:`PER_CLIENT`) and against one
global budget for the app's credentials (:data:`GLOBAL`), both over :data:`WINDOW_S`. The key
never includes the user name, and the global budget caps what rotating addresses can try: 40
addresses get the global budget in total, not 40 times the per-address one. An address that
authenticated successfully within :data:`TRUSTED_S` is exempt from the global budget (not from
its own), so guessers elsewhere cannot lock out a monitoring script that already signed in.
Logged-out session ids are kept until their cookie would have expired.

Under a pre-fork server (gunicorn ``-w 3``) the state lives in one small JSON file in the group's
directory (``multiprocess.group_dir``), read and written under ``flock``: the workers share one
budget. Otherwise it is in memory. The backend is chosen per process on first use, so a monitor
built in the master (``--preload``) still shares once its workers fork. Times are
``time.monotonic()``, which Linux keeps system-wide, so every worker reads the same clock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Throttle", "PER_CLIENT", "GLOBAL", "WINDOW_S", "MAX_TRACKED_CLIENTS"]

#: failed attempts from one address within WINDOW_S before 429
PER_CLIENT = 10
#: failed attempts from all addresses together within WINDOW_S before 429 (for everyone guessing)
GLOBAL = 30
WINDOW_S = 300.0
#: addresses remembered; the least recently failing are forgotten first
MAX_TRACKED_CLIENTS = 10_000
#: how long a successful authentication exempts its address from the global budget
TRUSTED_S = 12 * 3600.0
#: addresses remembered as trusted (the oldest are forgotten first)
MAX_TRUSTED = 1_000
#: logged-out sessions remembered (the oldest are forgotten first; they expire anyway)
MAX_REVOKED = 10_000
STATE_FILE = "analytics-auth.json"


def _group_file() -> str | None:
    try:
        from ..metrics.multiprocess import detect_group, group_dir

        master = detect_group(None)
        return os.path.join(group_dir(master), STATE_FILE) if master is not None else None
    except Exception:  # noqa: BLE001 - one process's own budget still throttles
        return None


class _State:
    def __init__(self, raw: object = None) -> None:
        raw = raw if isinstance(raw, dict) else {}
        clients = raw.get("clients")
        self.clients: dict[str, list[float]] = clients if isinstance(clients, dict) else {}
        budget = raw.get("global")
        self.global_: list[float] = budget if isinstance(budget, list) else []
        revoked = raw.get("revoked")
        self.revoked: dict[str, float] = revoked if isinstance(revoked, dict) else {}
        trusted = raw.get("trusted")
        self.trusted: dict[str, float] = trusted if isinstance(trusted, dict) else {}

    def dump(self) -> dict[str, Any]:
        return {"clients": self.clients, "global": self.global_, "revoked": self.revoked, "trusted": self.trusted}

    def prune(self, now: float) -> None:
        for key in [k for k, times in self.clients.items() if not times or now - times[-1] > WINDOW_S]:
            del self.clients[key]
        self.global_ = [t for t in self.global_ if now - t <= WINDOW_S][-GLOBAL:]
        for sid in [s for s, until in self.revoked.items() if until <= now]:
            del self.revoked[sid]
        for client in [c for c, until in self.trusted.items() if until <= now]:
            del self.trusted[client]


def _wait(times: list[float], limit: int, now: float) -> float | None:
    recent = [t for t in times if now - t <= WINDOW_S]
    if len(recent) < limit:
        return None
    return max(1.0, WINDOW_S - (now - recent[-limit]))


class Throttle:
    """Failure budgets and revoked sessions; in memory, or in ``path`` (default: the group's file)."""

    def __init__(self, path: str | None = None, shared: bool = True) -> None:
        self._configured = path
        self._shared = shared
        self._pid: int | None = None
        self._path: str | None = None
        self._lock = threading.Lock()
        self._memory = _State()

    def _resolve(self) -> str | None:
        pid = os.getpid()
        if self._pid != pid:
            self._pid = pid
            self._path = self._configured or (_group_file() if self._shared else None)
        return self._path

    @contextmanager
    def _state(self, write: bool) -> Iterator[_State]:
        with self._lock:
            path = self._resolve()
            if path is None:
                yield self._memory
                return
            import fcntl

            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as fh:
                    text = fh.read()
                    try:
                        state = _State(json.loads(text) if text else None)
                    except ValueError:
                        state = _State()  # a torn or foreign file: start over rather than fail logins
                    yield state
                    if write:
                        fh.seek(0)
                        fh.truncate()
                        json.dump(state.dump(), fh, separators=(",", ":"))
                        fh.flush()
            finally:
                os.close(fd)  # releases the lock

    def retry_after(self, client: str, now: float | None = None) -> float | None:
        """Seconds to wait when this address, or everyone together, used up the budget; else None."""
        now = time.monotonic() if now is None else now
        with self._state(write=False) as state:
            own = _wait(state.clients.get(client, []), PER_CLIENT, now)
            trusted = state.trusted.get(client, 0.0) > now
            everyone = None if trusted else _wait(state.global_, GLOBAL, now)
        waits = [w for w in (own, everyone) if w is not None]
        return max(waits) if waits else None

    def record_success(self, client: str, now: float | None = None) -> None:
        """``client`` authenticated: exempt it from the global budget for TRUSTED_S."""
        now = time.monotonic() if now is None else now
        with self._state(write=False) as state:
            if state.trusted.get(client, 0.0) > now + TRUSTED_S - 3600:
                return  # refreshed within the hour: no write on every request
        with self._state(write=True) as state:
            state.prune(now)
            state.trusted.pop(client, None)
            state.trusted[client] = now + TRUSTED_S
            while len(state.trusted) > MAX_TRUSTED:
                del state.trusted[next(iter(state.trusted))]

    def record_failure(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._state(write=True) as state:
            state.prune(now)
            times = state.clients.pop(client, [])  # re-inserted last: most recently failing
            state.clients[client] = (times + [now])[-PER_CLIENT:]
            while len(state.clients) > MAX_TRACKED_CLIENTS:
                del state.clients[next(iter(state.clients))]
            state.global_ = (state.global_ + [now])[-GLOBAL:]

    def tracked_clients(self) -> int:
        with self._state(write=False) as state:
            return len(state.clients)

    def revoke(self, sid: str, seconds: float, now: float | None = None) -> None:
        """Refuse session ``sid`` for the next ``seconds`` (its remaining lifetime)."""
        now = time.monotonic() if now is None else now
        with self._state(write=True) as state:
            state.prune(now)
            state.revoked[sid] = now + seconds
            while len(state.revoked) > MAX_REVOKED:
                del state.revoked[next(iter(state.revoked))]

    def is_revoked(self, sid: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._state(write=False) as state:
            until = state.revoked.get(sid)
        return until is not None and until > now
