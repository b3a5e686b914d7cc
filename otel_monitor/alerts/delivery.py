"""Delivery: a bounded queue and one background thread that sends, retries with backoff, and counts.

``submit(notice)`` never blocks and never raises (a full queue drops the notice and counts it):
the evaluator and the request path only ever hand over. The thread sends each notice to each
destination; a failure that may pass (a timeout, a 5xx, a refused connection) is retried up to
``attempts`` times with exponential backoff (``backoff_s``, doubled each time, at most 60 s).
Every notification ends with one outcome per destination -- ``sent``, ``failed`` or ``dropped``
-- counted on ``otel_monitor.alerts.notifications`` (attributes ``destination``, ``outcome``,
``kind``) and reported to ``on_outcome`` (the engine keeps the last ones for the API). A
destination that fails is logged at most once a minute; the messages carry no secrets.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .._safe_log import neutralise, should_log
from .destinations import DeliveryError, Destination
from .notices import Notice

__all__ = ["Delivery", "Outcome", "Count", "NOTIFICATIONS_METRIC"]

_logger = logging.getLogger("otel_monitor")
NOTIFICATIONS_METRIC = "otel_monitor.alerts.notifications"
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class Outcome:
    destination: str
    target: str
    outcome: str  # sent, failed, dropped
    kind: str
    headline: str
    alerts: tuple[str, ...]
    attempts: int
    error: str | None
    time: float


class Count(Protocol):
    """The counter's ``add`` (an OpenTelemetry Counter)."""

    def add(self, amount: int, attributes: dict[str, str]) -> None: ...


class Delivery:
    def __init__(
        self,
        destinations: Sequence[Destination],
        counter: Count | None,
        on_outcome: Callable[[Outcome], None],
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_queued: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.destinations = list(destinations)
        self._counter = counter
        self._on_outcome = on_outcome
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._clock = clock
        self._queue: queue.Queue[Notice | None] = queue.Queue(max_queued)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = 0

    def submit(self, notice: Notice) -> None:
        """Queue ``notice`` for every destination (never blocks, never raises)."""
        if not self.destinations:
            return
        try:
            with self._lock:
                self._busy += 1
            self._queue.put_nowait(notice)
        except queue.Full:
            with self._lock:
                self._busy -= 1
            for destination in self.destinations:
                self._finish(destination, notice, "dropped", 0, "the delivery queue is full")
            return
        self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="otel_monitor-alerts", daemon=True)
                self._thread.start()

    def idle(self) -> bool:
        """Nothing queued or being sent."""
        with self._lock:
            return self._busy == 0

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued for at most ``timeout`` seconds, then stop the thread."""
        deadline = time.monotonic() + timeout
        while not self.idle() and time.monotonic() < deadline and self._thread is not None and self._thread.is_alive():
            time.sleep(0.05)
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.1, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            try:
                self._deliver_all(item)
            finally:
                with self._lock:
                    self._busy -= 1

    def _deliver_all(self, notice: Notice) -> None:
        """Every destination gets its first attempt before anybody's retry: one that is down does
        not hold up the others."""
        pending = list(self.destinations)
        attempts = dict.fromkeys((d.name for d in pending), 0)
        delay = self._backoff_s
        while pending:
            retry: list[Destination] = []
            for destination in pending:
                attempts[destination.name] += 1
                attempt = attempts[destination.name]
                error = self._attempt(destination, notice)
                if error is None:
                    self._finish(destination, notice, "sent", attempt, None)
                    continue
                message, may_pass = error
                last = attempt >= self._attempts or not may_pass
                if should_log(f"alerts delivery to {destination.name}"):
                    _logger.warning(
                        "otel_monitor: alert notification to %s failed (attempt %d of %d): %s%s",
                        destination.name,
                        attempt,
                        self._attempts,
                        neutralise(message),
                        "" if last else "; retrying",
                    )
                if last:
                    self._finish(destination, notice, "failed", attempt, message)
                else:
                    retry.append(destination)
            if retry and self._stop.wait(delay):
                for destination in retry:
                    self._finish(destination, notice, "failed", attempts[destination.name], "stopped before the retry")
                return
            pending = retry
            delay = min(delay * 2, MAX_BACKOFF_S)

    @staticmethod
    def _attempt(destination: Destination, notice: Notice) -> tuple[str, bool] | None:
        """None when delivered, else (what went wrong, whether it may pass)."""
        try:
            destination.send(notice)
        except DeliveryError as exc:
            return str(exc), exc.retry
        except Exception as exc:  # noqa: BLE001 - a bug in a destination must not end the thread
            return type(exc).__name__, False
        return None

    def _finish(self, destination: Destination, notice: Notice, outcome: str, attempts: int, error: str | None) -> None:
        if self._counter is not None:
            try:
                self._counter.add(1, {"destination": destination.name, "outcome": outcome, "kind": notice.kind})
            except Exception:  # noqa: BLE001 - counting must not stop the delivery
                pass
        record = Outcome(
            destination.name,
            destination.target,
            outcome,
            notice.kind,
            notice.headline,
            tuple(a.rule for a in notice.alerts),
            attempts,
            error,
            self._clock(),
        )
        try:
            self._on_outcome(record)
        except Exception:
            if should_log("alerts outcome"):
                _logger.warning("otel_monitor: could not record an alert notification's outcome", exc_info=True)
