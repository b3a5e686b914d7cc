"""One daemon thread per process runs every periodic job (metric push, worker merge, analytics).

Jobs never run on the request path. A failing job is logged (rate-limited) and runs again at
its next turn; a slow job delays the others, never a request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .._safe_log import log_internal_error


class Scheduler:
    def __init__(self, name: str = "otel_monitor") -> None:
        self._name = name
        self._jobs: list[list[Any]] = []  # [next_due, interval, fn, what]
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def every(self, interval: float, fn: Callable[[], object], what: str) -> None:
        with self._lock:
            self._jobs.append([time.monotonic() + interval, interval, fn, what])
        self._wake.set()

    def start(self) -> None:
        if self._thread is None and self._jobs:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                jobs = list(self._jobs)
            now = time.monotonic()
            for job in jobs:
                if job[0] <= now and not self._stop.is_set():
                    try:
                        job[2]()
                    except Exception:  # noqa: BLE001 - one failing job must not stop the scheduler
                        log_internal_error(job[3])
                    job[0] = time.monotonic() + job[1]
            with self._lock:
                due = min((j[0] for j in self._jobs), default=time.monotonic() + 1.0)
            self._wake.wait(max(0.01, due - time.monotonic()))
            self._wake.clear()
