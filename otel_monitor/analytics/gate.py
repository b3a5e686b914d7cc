"""A cap on concurrent heavy analytics requests, so that the analytics never starve the app.

At most ``limit`` heavy requests (everything but the health probes and the links list) run at once
in a process (``analytics_max_concurrent``, default 2). As many more may wait up to
:data:`WAIT_S` for a slot -- the dashboard asks for three things at once, which a threaded server
runs side by side -- and the rest are refused at once: the blueprint answers ``503 Service
Unavailable`` with ``Retry-After`` (:data:`RETRY_AFTER_S`). 503, not 429: the server is busy, whoever
asks; 429 would tell a client that made one request that it made too many.

A refused request costs what an authenticated 401 does; a waiting one holds a server thread but
no CPU. ``limit=0`` turns the cap off.
"""

from __future__ import annotations

import threading

__all__ = ["Gate", "WAIT_S", "RETRY_AFTER_S"]

#: how long a request waits for a slot before it is refused
WAIT_S = 2.0
#: what ``Retry-After`` says to a refused request (seconds)
RETRY_AFTER_S = 2


class Gate:
    """``limit`` slots, ``queue`` waiting places (default: as many as slots); ``limit=0``: no cap."""

    def __init__(self, limit: int, queue: int | None = None, wait_s: float = WAIT_S) -> None:
        self.limit = limit
        self.queue = limit if queue is None else queue
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self.running = 0
        self.waiting = 0
        #: requests refused so far (tests and benchmarks read it)
        self.refused = 0

    def enter(self) -> bool:
        """Take a slot (waiting up to ``wait_s`` when a waiting place is free); False: refused."""
        if self.limit <= 0:
            return True
        with self._cond:
            if self.running < self.limit:
                self.running += 1
                return True
            if self.waiting >= self.queue:
                self.refused += 1
                return False
            self.waiting += 1
            try:
                free = self._cond.wait_for(lambda: self.running < self.limit, timeout=self.wait_s)
            finally:
                self.waiting -= 1
            if not free:
                self.refused += 1
                return False
            self.running += 1
            return True

    def leave(self) -> None:
        """Give a slot back (once per successful :meth:`enter`)."""
        if self.limit <= 0:
            return
        with self._cond:
            self.running -= 1
            self._cond.notify()
