"""A sampling profiler for slow requests: one thread per process, idle while no request runs.

The request path notes which thread serves which request since when (``pipeline.serving``:
thread ident -> request, and ``pipeline.serving_started``, an Event that a starting request sets
when the profiler has cleared it). :class:`Profiler`'s thread waits on that Event while nothing is
served;
while requests are in flight it sleeps until the oldest becomes older than ``after`` seconds,
then reads ``sys._current_frames()`` every ``interval`` seconds and records the stack of each
thread serving a request past the threshold. A fast request therefore costs nothing here; a
slow one costs one stack walk per interval on the profiler's thread, never on its own.

A stack is walked from the innermost frame out, at most :data:`MAX_DEPTH` frames (the innermost
ones: where the time goes), as ``(code, line)`` pairs; names and files are looked up only when a
profile is read or folded, through a small cache keyed by the code object (the shape of
sentry-python's ``sentry_sdk/profiler``: frames keyed by file, line and ``co_qualname``).

When the trace store keeps the request (slow or failed), :meth:`Profiler.annotate` puts the
request's profile into its trace (``profile``). When the request has ended, the profiler folds
its samples into the route's bounded aggregate (:class:`~.profiles.RouteProfiles`).

Nothing here runs in a request but :meth:`Profiler.annotate` (for kept traces only), and nothing
raises out of the thread: a failure is logged (rate-limited) and sampling goes on.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Protocol, TypeVar

from .._safe_log import log_internal_error
from ..metrics.metrics_view import Channel
from . import outliers as _outliers
from .profiles import SHARE_KEY, FrameKey, RouteProfiles, profile_json

__all__ = ["Profiling", "Profiler", "ServedRequest", "MAX_DEPTH", "MAX_REQUEST_STACKS"]

_T = TypeVar("_T")

#: frames kept per sample (the innermost ones; as sentry-python's profiler)
MAX_DEPTH = 128
#: distinct stacks kept per request; samples of further stacks are counted as dropped
MAX_REQUEST_STACKS = 200
#: stacks a kept trace carries (the heaviest; the others are summed into ``(other stacks)``)
TRACE_STACKS = 100
#: requests sampled at the same time (threads serving slow requests); more are not sampled
MAX_LIVE = 64
#: code objects whose (file, function) are cached
MAX_CODES = 4096

Stack = tuple[tuple[CodeType, int], ...]
#: code flags of frames that can be suspended and resumed by another caller
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


class _SpanContext(Protocol):
    @property
    def span_id(self) -> int: ...


class _Span(Protocol):
    def get_span_context(self) -> _SpanContext: ...


class ServedRequest(Protocol):
    """What the profiler reads of a request in flight (``_request_path._Request``)."""

    start: float
    #: set when the body was read to its end or dropped unclosed: the app's code is done
    end: float | None
    finished: bool
    #: the route template, read when the app returned (None before, or for an unmatched path)
    route: str | None
    method: str
    span: _Span
    #: the request's WSGI environ, kept only while it is served (the outlier context reads it)
    request_environ: dict[str, str] | None


class _EndedSpan(Protocol):
    """What :meth:`Profiler.annotate` reads of an ended span (an SDK ``ReadableSpan``)."""

    @property
    def context(self) -> _SpanContext: ...


class _RequestProfile:
    """The samples of one request, and its last sample's innermost frame.

    While a function's frame runs, the frames that called it cannot change line: when the innermost frame
    is the same (still running) frame object as at the last sample, the stack is the last one
    with that frame's current line. A sleeping or waiting request then costs a comparison and a
    dict increment per sample, not a walk. (Not for generators and coroutines: another caller
    may resume them.) Holding the frame keeps it from being freed and its
    address reused until the next sample or the request's end.
    """

    __slots__ = ("record", "span_id", "stacks", "samples", "dropped", "leaf", "last")

    def __init__(self, record: ServedRequest, span_id: int) -> None:
        self.record = record
        self.span_id = span_id
        self.stacks: dict[Stack, int] = {}
        self.samples = 0
        self.dropped = 0
        self.leaf: FrameType | None = None
        self.last: Stack = ()

    def stack_of(self, frame: FrameType) -> Stack:
        last = self.last
        if frame is self.leaf and last and not frame.f_code.co_flags & _RESUMABLE:
            line = frame.f_lineno
            if last[-1][1] == line:
                return last
            stack = last[:-1] + ((frame.f_code, line),)
        else:
            stack = _walk(frame)
        self.leaf = frame
        self.last = stack
        return stack

    def add(self, stack: Stack) -> None:
        self.samples += 1
        stacks = self.stacks
        if stack in stacks:
            stacks[stack] += 1
        elif len(stacks) < MAX_REQUEST_STACKS:
            stacks[stack] = 1
        else:
            self.dropped += 1


def _walk(frame: FrameType | None) -> Stack:
    """``(code, line)`` from the outermost to the innermost frame; the innermost MAX_DEPTH."""
    pairs = []
    depth = 0
    while frame is not None and depth < MAX_DEPTH:
        pairs.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
        depth += 1
    pairs.reverse()
    return tuple(pairs)


class _Names:
    """``code -> (file, function)``: a bounded cache (cleared when full)."""

    def __init__(self) -> None:
        self._cache: dict[CodeType, tuple[str, str]] = {}

    def frames(self, stack: Stack) -> tuple[FrameKey, ...]:
        cache = self._cache
        result = []
        for code, line in stack:
            names = cache.get(code)
            if names is None:
                if len(cache) >= MAX_CODES:
                    cache.clear()
                names = cache[code] = (code.co_filename, getattr(code, "co_qualname", code.co_name))
            result.append((names[1], names[0], line if line is not None else 0))
        return tuple(result)


class Profiler:
    """Samples the threads serving requests older than ``after_s``, every ``interval_s``.

    ``serving`` and ``wake`` are the pipeline's (see the module docstring); ``routes`` receives
    each sampled request's stacks when it has ended. ``tick`` (e.g. refreshing the CPU and
    memory readings kept with outliers) runs on the profiler's thread at most every
    ``tick_every_s`` while requests are sampled. Routes under ``exclude_prefix`` (the analytics'
    own) are not folded.
    """

    def __init__(
        self,
        serving: dict[int, ServedRequest],
        wake: threading.Event,
        interval_s: float,
        after_s: float,
        routes: RouteProfiles,
        tick: Callable[[], None] | None = None,
        tick_every_s: float = 1.0,
        exclude_prefix: str | None = None,
    ) -> None:
        self.serving = serving
        self.wake = wake
        self.interval_s = interval_s
        self.after_s = after_s
        self.routes = routes
        self._tick = tick
        self._exclude = exclude_prefix.rstrip("/") if exclude_prefix else None
        self._tick_every = tick_every_s
        self._last_tick = float("-inf")
        self._live: dict[int, _RequestProfile] = {}  # id(record) -> its samples
        self._by_span: dict[int, _RequestProfile] = {}  # span id -> the same
        self._names = _Names()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: samples taken and sampling passes made (the benchmark and tests read these)
        self.samples = 0
        self.passes = 0
        self.wakeups = 0

    # -- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="otel_monitor-profiler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        # A stopped profiler folds nothing more: let go of the last frame each request was sampled
        # in, which would keep that request's whole stack (and the locals of its frames) alive.
        for profile in list(self._live.values()):
            profile.leaf = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self.step()
            except Exception:  # noqa: BLE001 - the profiler goes on; the request never sees it
                log_internal_error("sampling request stacks")
                delay = max(self.interval_s, 1.0)
            if delay is None:
                self.wake.wait()  # until a request starts (or stop)
                self.wakeups += 1
                # Nothing can be due before the request that woke us is ``after`` old: wait that
                # long (the Event stays set meanwhile, so no request sets it again).
                self._stopping.wait(self.after_s)
            elif delay > 0:
                self._stopping.wait(delay)

    def step(self, now: float | None = None) -> float | None:
        """One pass: sample what is due, fold what ended; the seconds to sleep, None for "idle"."""
        serving = self.serving
        if not serving:
            self.fold_ended()
            self.wake.clear()
            # A request registers itself before it looks at the Event: one that started before
            # the clear is seen here, one that starts after it finds the Event clear and sets it.
            if not serving:
                return None
        now = time.perf_counter() if now is None else now
        threshold = now - self.after_s
        due = []
        oldest = now
        for ident, record in list(serving.items()):
            start = record.start
            if start <= threshold:
                due.append((ident, record))
            elif start < oldest:
                oldest = start
        if due:
            self._sample(due)
        self.fold_ended()
        if due:
            return self.interval_s
        if not self.serving:
            return 0.0
        # Nothing due yet: sleep until the oldest request reaches the threshold.
        return max(self.interval_s, oldest + self.after_s - now)

    def _sample(self, due: list[tuple[int, ServedRequest]]) -> None:
        self.passes += 1
        frames = sys._current_frames()
        live = self._live
        for ident, record in due:
            frame = frames.get(ident)
            if frame is None or record.finished or record.end is not None:
                continue
            profile = live.get(id(record))
            if profile is None:
                if len(live) >= MAX_LIVE:
                    continue
                span_id = record.span.get_span_context().span_id
                profile = live[id(record)] = _RequestProfile(record, span_id)
                self._by_span[span_id] = profile
            stack = profile.stack_of(frame)
            if record.finished:  # it ended while we walked: the stack is not the request's
                continue
            profile.add(stack)
            self.samples += 1
        del frames
        if self._tick is not None:
            now = time.monotonic()
            if now - self._last_tick >= self._tick_every:
                self._last_tick = now
                self._tick()

    def fold_ended(self) -> None:
        """Fold the samples of the requests that have ended into their route's aggregate."""
        for key, profile in list(self._live.items()):
            record = profile.record
            if not record.finished:
                continue
            del self._live[key]
            self._by_span.pop(profile.span_id, None)
            profile.leaf = None
            route = record.route
            route = route if isinstance(route, str) else "(unmatched)"
            exclude = self._exclude
            if exclude is not None and (route == exclude or route.startswith(exclude + "/")):
                continue  # the analytics' own requests, left out as from every other figure
            self.routes.add(route, record.method, self._frames(profile.stacks))

    def _frames(self, stacks: dict[Stack, int]) -> dict[tuple[FrameKey, ...], int]:
        named: dict[tuple[FrameKey, ...], int] = {}
        frames = self._names.frames
        for stack, count in list(stacks.items()):
            key = frames(stack)
            named[key] = named.get(key, 0) + count
        return named

    # -- the kept trace ------------------------------------------------------------------------

    def annotate(self, span: _EndedSpan, tree: dict[str, object]) -> None:
        """Put the request's profile into its kept trace (a trace store annotator)."""
        profile = self._by_span.get(span.context.span_id)
        if profile is None:
            return
        tree["profile"] = profile_json(
            self._frames(dict(profile.stacks)),
            self.interval_s * 1000,
            self.after_s * 1000,
            profile.dropped,
            max_stacks=TRACE_STACKS,
        )


class _Pipeline(Protocol):
    """What :class:`Profiling` needs of the pipeline."""

    serving: dict[int, ServedRequest]
    shutdown_hooks: list[Callable[[], None]]

    @property
    def serving_started(self) -> threading.Event: ...

    def share(self, channel: Channel[_T], produce: Callable[[], _T]) -> None: ...


class _Settings(Protocol):
    # read-only, as on the frozen Settings
    @property
    def profiling(self) -> bool: ...
    @property
    def profiling_interval_ms(self) -> float: ...
    @property
    def profiling_after_ms(self) -> float | None: ...
    @property
    def analytics_slow_ms(self) -> float: ...
    @property
    def analytics_prefix(self) -> str: ...
    @property
    def sensitive_query_params(self) -> tuple[str, ...]: ...


class Profiling:
    """One process's profiler (None with ``profiling`` off), route aggregate and outlier context."""

    def __init__(self, pipeline: _Pipeline, settings: _Settings, clock: Callable[[], float] = time.time) -> None:
        self.readings = _outliers.SystemReadings(clock)
        self.outliers = _outliers.OutlierContext(pipeline.serving, self.readings, settings.sensitive_query_params)
        self.routes = RouteProfiles(clock)
        after_ms = settings.profiling_after_ms
        if after_ms is None:
            after_ms = settings.analytics_slow_ms / 2
        self.profiler: Profiler | None = (
            Profiler(
                pipeline.serving,
                pipeline.serving_started,
                settings.profiling_interval_ms / 1000,
                after_ms / 1000,
                self.routes,
                tick=self.readings.refresh,
                exclude_prefix=settings.analytics_prefix,
            )
            if settings.profiling
            else None
        )
        self.interval_ms = float(settings.profiling_interval_ms)
        self.after_ms = float(after_ms)

    @property
    def annotators(self) -> tuple[Callable[[_EndedSpan, dict[str, object]], None], ...]:
        """What the trace store adds to a kept trace: the outlier context, the profile."""
        if self.profiler is None:
            return (self.outliers.annotate,)
        return (self.outliers.annotate, self.profiler.annotate)

    def start(self, pipeline: _Pipeline) -> None:
        """Share the route profiles with the other workers and start sampling (per pipeline)."""
        if self.profiler is None:
            return
        pipeline.share(SHARE_KEY, self.routes.snapshot)
        self.profiler.start()
        pipeline.shutdown_hooks.append(self.profiler.stop)
