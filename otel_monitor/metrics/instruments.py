"""Custom metrics in one line: ``monitor.counter(...)``, ``.histogram``, ``.up_down_counter``, ``.gauge``.

The objects returned are thin handles, safe to create at import time (before a pre-fork
server forks, before ``init_app``): each call resolves the current process's instrument, so a
worker never writes into the master's copy. Each handle caps its distinct attribute sets at
:data:`CARDINALITY_LIMIT`; further sets are folded into one ``otel.metric.overflow=true``
series (the OpenTelemetry SDK specification's behaviour, which the Python SDK lacks).

Gauge callbacks run at collection time with a time budget: a callback that raises is logged
once and skipped; one that is slow keeps serving its last value while it finishes in the
background, so ``/metrics`` always answers promptly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Union

from opentelemetry.metrics import CallbackOptions, Instrument, Observation
from opentelemetry.util.types import AttributeValue

from .._safe_log import log_internal_error

if TYPE_CHECKING:
    from ..telemetry.pipeline import Pipeline

__all__ = ["Counter", "Histogram", "UpDownCounter", "Gauge", "CARDINALITY_LIMIT"]

CARDINALITY_LIMIT = 2000
_OVERFLOW = {"otel.metric.overflow": True}
#: how long a gauge callback may take before the scrape moves on with its previous value
CALLBACK_BUDGET = 0.25
#: what a gauge callback returns: a number, or ``(value, attributes)`` pairs
GaugeReading = Union[float, "Iterable[tuple[float, Mapping[str, AttributeValue] | None]]"]


class _Handle:
    _create = ""

    def __init__(
        self, resolve: Callable[[], Pipeline | None], name: str, unit: str, description: str, **options: object
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._resolve = resolve  # -> the current process's pipeline, None when disabled
        self._options = options
        self._seen: set[frozenset[tuple[str, AttributeValue]]] = set()
        self._lock = threading.Lock()

    def _instrument(self) -> Instrument | None:
        pipeline = self._resolve()
        if pipeline is None:
            return None
        cache = pipeline.instruments
        key = (self._create, self.name)
        instrument: Instrument | None = cache.get(key)
        if instrument is None:
            instrument = getattr(pipeline.meter, self._create)(
                self.name, unit=self.unit, description=self.description, **self._options
            )
            cache[key] = instrument
        return instrument

    def _apply(self, method: str, value: float, attributes: Mapping[str, AttributeValue] | None) -> None:
        """``instrument.<method>(value, attributes)`` on this process's instrument; never raises."""
        try:
            instrument = self._instrument()
            if instrument is not None:
                getattr(instrument, method)(value, self._bounded(attributes))
        except Exception:  # noqa: BLE001 - recording must never raise into the user's code
            log_internal_error(f"recording metric {self.name}")

    def _bounded(self, attributes: Mapping[str, AttributeValue] | None) -> Mapping[str, AttributeValue] | None:
        if not attributes:
            return attributes
        key = frozenset(attributes.items())
        if key in self._seen:
            return attributes
        with self._lock:
            if len(self._seen) >= CARDINALITY_LIMIT:
                return _OVERFLOW
            self._seen.add(key)
        return attributes


class Counter(_Handle):
    """A monotonic sum: ``add(amount, attributes)``."""

    _create = "create_counter"

    def add(self, amount: float = 1, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        self._apply("add", amount, attributes)


class UpDownCounter(Counter):
    """A sum that can go down: ``add(-1, attributes)``."""

    _create = "create_up_down_counter"


class Histogram(_Handle):
    """A distribution: ``record(value, attributes)``. ``buckets`` sets explicit boundaries."""

    _create = "create_histogram"

    def record(self, value: float, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        self._apply("record", value, attributes)


class Gauge(_Handle):
    """A current value: ``set(value, attributes)``, or a ``callback`` read at each collection.

    The callback returns a number, or an iterable of ``(value, attributes)`` pairs.
    """

    def __init__(
        self,
        resolve: Callable[[], Pipeline | None],
        name: str,
        unit: str,
        description: str,
        callback: Callable[[], GaugeReading] | None = None,
    ) -> None:
        super().__init__(resolve, name, unit, description)
        self._callback = callback
        self._last: list[Observation] = []
        self._running: threading.Thread | None = None
        self._deadline = 0.0
        self._create = "create_observable_gauge" if callback else "create_gauge"
        if callback is not None:
            self._options = {"callbacks": [self._observe]}

    def set(self, value: float, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        if self._callback is not None:
            raise TypeError(f"gauge {self.name!r} is read from its callback; it has no set()")
        self._apply("set", value, attributes)

    def register(self, pipeline: Pipeline) -> None:
        """Create the observable instrument in ``pipeline`` (each new pipeline: after a fork too)."""
        cache = pipeline.instruments
        cache[(self._create, self.name)] = pipeline.meter.create_observable_gauge(
            self.name, callbacks=[self._observe], unit=self.unit, description=self.description
        )
        # Every callback of a collection starts at once: slow callbacks share one budget per read
        # instead of adding theirs up one after another.
        pipeline.reader.before_collect.append(self._start)

    def _start(self) -> None:
        running = self._running
        if running is None or not running.is_alive():
            running = threading.Thread(target=self._run_callback, name=f"otel_monitor-gauge-{self.name}", daemon=True)
            self._running = running
            running.start()
        self._deadline = time.monotonic() + CALLBACK_BUDGET

    def _run_callback(self) -> None:
        try:
            result = self._callback()  # type: ignore[misc]
            if isinstance(result, (int, float)):
                observations = [Observation(result)]
            else:
                observations = [Observation(v, self._bounded(dict(a) if a else None)) for v, a in (result or ())]
            self._last = observations
        except Exception:  # noqa: BLE001 - a failing user callback must not fail the collection
            log_internal_error(f"reading gauge {self.name}")

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        if time.monotonic() - self._deadline > 1.0:
            self._start()  # no collection round started us (a reader other than ours)
        running = self._running
        assert running is not None
        left = max(0.0, self._deadline - time.monotonic())
        running.join(min(left, max(0.0, options.timeout_millis / 1000)))
        if running.is_alive() and _should_warn_slow(self.name):
            import logging

            logging.getLogger("otel_monitor").warning(
                "otel_monitor: gauge %r callback takes longer than %.2fs; serving its previous value",
                self.name,
                CALLBACK_BUDGET,
            )
        return list(self._last)


_slow_warned: dict[str, float] = {}


def _should_warn_slow(name: str) -> bool:
    now = time.monotonic()
    last = _slow_warned.get(name)
    if last is not None and now - last < 60:
        return False
    _slow_warned[name] = now
    return True
