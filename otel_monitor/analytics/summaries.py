"""Window summaries computed at most once per sample tick and shared by every caller.

The analytics sample the cumulative request metrics every 10 s (a *tick*: the background job,
or the first reader after a late one). Whatever an endpoint reports about a window -- its totals,
quantiles and Apdex, one row per ``(route, method)``, a chart's steps -- is a function of the
tick's sample and the samples (or history) before it, so it is computed once per
``(tick, what)``, by the first caller after the tick, while every other caller asking for the
same thing waits for that one computation and then shares its result. A caller of another window
or figure does not wait. Results of older ticks are dropped.

Usage (other features build on the same objects; they are read-only and shared, never mutate them)::

    summaries = state.summaries                 # AnalyticsState or FleetState
    five = summaries.window("5m")               # WindowSummary of the current tick
    five.figures["latency"]["p95_ms"], five.figures["error_rate_pct"], five.figures["rps"]
    five.endpoint("/api/users", "GET")          # that row, or None
    five.tick.sample.system["cpu_pct"]          # the host gauges of the same sample
    summaries.memo(("my-figure", "5m"), lambda tick: compute(tick))  # anything else, once per tick

``computed`` counts the computations by kind (tests and benchmarks read it).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from opentelemetry.sdk.metrics.export import MetricsData

from .summary import Sample, Window, endpoint_rows, stats

__all__ = ["Tick", "TickSource", "WindowSummary", "Summaries", "MAX_ENTRIES"]

T = TypeVar("T")
#: results kept per tick; beyond (many distinct filters in one tick) they are computed and not kept
MAX_ENTRIES = 256


class Tick(NamedTuple):
    """One sample of the cumulative metrics and its number (increasing with every sample)."""

    number: int
    sample: Sample
    #: what the sample was read from (every instrument, all workers); None for the fleet source
    data: MetricsData | None = None


class TickSource(Protocol):
    """What :class:`Summaries` needs of a state: its ticks and the raw window computation."""

    @property
    def bounds(self) -> tuple[float, ...]: ...

    @property
    def last_seen(self) -> Mapping[tuple[str, str], float]: ...

    def tick(self) -> Tick: ...

    def compute_window(self, name: str, now: Sample) -> Window: ...


@dataclass(frozen=True)
class WindowSummary:
    """The figures of one window at one tick: totals, one row per endpoint, in sorted orders on demand."""

    name: str
    tick: Tick
    #: the window's requests and what they cover (``AnalyticsState.window``)
    window: Window
    #: the histogram bounds the window's buckets use
    bounds: tuple[float, ...]
    #: ``summary.stats()``: requests, rps, errors, error_rate_pct, latency (avg/p50/p90/p95/p99/max ms), apdex
    figures: dict[str, Any]
    #: one ``summary.endpoint_rows()`` row per (route, method), with ``last_seen``
    rows: tuple[dict[str, Any], ...]
    _index: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    _orders: dict[tuple[str, bool], tuple[dict[str, Any], ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update(((r["route"], r["method"]), r) for r in self.rows)

    @property
    def time(self) -> float:
        """When the window ends: the tick's sample time (Unix seconds)."""
        return self.tick.sample.t

    @property
    def available(self) -> bool:
        return self.window["available"]

    @property
    def covered_s(self) -> float:
        return round(self.window["seconds"], 3)

    def endpoint(self, route: str, method: str) -> dict[str, Any] | None:
        """The row of ``(route, method)``; None when it had no requests in the window."""
        return self._index.get((route, method))

    def sorted_rows(self, sort: str, descending: bool) -> tuple[dict[str, Any], ...]:
        """The rows by ``sort`` (then route, method); rows without a value last, by route. Kept per tick."""
        key = (sort, descending)
        found = self._orders.get(key)
        if found is None:
            present = [r for r in self.rows if r[sort] is not None]
            missing = [r for r in self.rows if r[sort] is None]
            present.sort(key=lambda r: (r[sort], r["route"], r["method"]), reverse=descending)
            found = (*present, *sorted(missing, key=lambda r: (r["route"], r["method"])))
            self._orders[key] = found  # a race computes the same tuple twice, harmlessly
        return found


class _Entry:
    __slots__ = ("lock", "done", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None


class Summaries:
    """Per-tick results shared by every caller (one computation per ``(tick, key)``, single flight)."""

    def __init__(self, source: TickSource, apdex_t: float) -> None:
        self._source = source
        self.apdex_t = apdex_t
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, Hashable], _Entry] = {}
        self._newest = -1
        self._lasting: dict[Hashable, tuple[int, _Entry]] = {}
        #: computations so far, by kind (the first item of the key; ``"window"`` for :meth:`window`)
        self.computed: Counter[str] = Counter()

    def tick(self) -> Tick:
        """The current tick (the source samples now when its newest sample is too old)."""
        return self._source.tick()

    def memo(self, key: tuple[Hashable, ...], compute: Callable[[Tick], T], tick: Tick | None = None) -> T:
        """``compute(tick)``, computed once per tick for ``key`` and shared; a failure is not kept."""
        tick = tick or self.tick()
        slot = (tick.number, key)
        with self._lock:
            entry = self._entries.get(slot)
            if entry is None and len(self._entries) >= MAX_ENTRIES and tick.number <= self._newest:
                entry = _Entry()  # not kept: the memory of a tick stays bounded
            elif entry is None:
                entry = self._entries[slot] = _Entry()
                if tick.number > self._newest:
                    self._newest = tick.number
                    # Keep the previous tick's too: a caller may still be reading it.
                    for old in [s for s in self._entries if s[0] < tick.number - 1]:
                        del self._entries[old]
        with entry.lock:
            if not entry.done:
                entry.value = compute(tick)
                entry.done = True
                with self._lock:
                    self.computed[str(key[0])] += 1
            value: T = entry.value
            return value

    def lasting(self, key: tuple[Hashable, ...], period: int, compute: Callable[[], T]) -> T:
        """``compute()`` once per ``period`` (e.g. a minute number) for ``key``: for what changes more
        slowly than the ticks (the history's per-minute rows); a newer period replaces the entry."""
        with self._lock:
            found = self._lasting.get(key)
            if found is None or found[0] < period:
                found = self._lasting[key] = (period, _Entry())
                for old in [k for k, (p, _) in self._lasting.items() if p < period - 1]:
                    del self._lasting[old]
            entry = found[1]
        with entry.lock:
            if not entry.done:
                entry.value = compute()
                entry.done = True
                with self._lock:
                    self.computed[str(key[0])] += 1
            value: T = entry.value
            return value

    def window(self, name: str, tick: Tick | None = None) -> WindowSummary:
        """The summary of window ``name`` (``summary.WINDOWS``) at the current tick."""
        return self.memo(("window", name), lambda t: self._summarise(name, t), tick)

    def _summarise(self, name: str, tick: Tick) -> WindowSummary:
        source = self._source
        window = source.compute_window(name, tick.sample)
        bounds = source.bounds
        figures = stats(window["requests"], bounds, window["seconds"], self.apdex_t)
        rows = endpoint_rows(window["requests"], bounds, window["seconds"], dict(source.last_seen))
        return WindowSummary(name, tick, window, bounds, figures, tuple(rows))
