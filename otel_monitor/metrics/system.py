"""System-health gauges on psutil, read only when a metric reader collects (never per request).

Names, units and attributes follow the OpenTelemetry semantic conventions (``system.*``,
``process.*``). One table registers them all.

Why not opentelemetry-instrumentation-system-metrics: it is a process-wide singleton (a
second monitor in the same process gets nothing), it captures ``psutil.Process()`` when it is
created (in a pre-fork master that is the master, not the worker), it uses the old attribute
names (``state``, ``direction``) and reports per-CPU series, and it has no filesystem usage.
What it does well -- psutil as the source, observable instruments, callbacks per collection --
is what this module does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypedDict, TypeVar

import psutil
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import Attributes

__all__ = ["register_system_metrics", "HOST_METRIC_PREFIX", "mountpoint_of"]

#: metrics describing the host (one series per host, whatever the number of workers)
HOST_METRIC_PREFIX = "system."

# A reading taken within this many seconds is reused: one scrape reads several instruments
# that share one psutil call.
_TTL = 0.5
# CPU utilisation over an interval shorter than this is noise; until one has passed since the
# monitor started, no CPU value is reported at all (rather than a bogus 0 %).
_MIN_CPU_INTERVAL = 0.1


def mountpoint_of(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


# What is read of psutil's results (psutil ships no type hints: these say what we rely on).
class _Memory(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def available(self) -> int: ...


class _Disk(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def used(self) -> int: ...
    @property
    def free(self) -> int: ...


class _NetIO(Protocol):
    @property
    def bytes_sent(self) -> int: ...
    @property
    def bytes_recv(self) -> int: ...
    @property
    def packets_sent(self) -> int: ...
    @property
    def packets_recv(self) -> int: ...


class _ProcessInfo(TypedDict):
    rss: int
    vms: int
    threads: int
    fds: int | None  # None where the platform has no file descriptor count
    start: float


T = TypeVar("T")


class _Cached(Generic[T]):
    """The last result of ``read``, read again when older than ``_TTL``."""

    def __init__(self, read: Callable[[], T]) -> None:
        self._read = read
        self._at = -1.0
        self._cached: tuple[T] | None = None  # a 1-tuple, so that a read may return None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._at > _TTL:
                self._cached = (self._read(),)
                self._at = now
            return self._cached[0]


class _Utilization:
    """CPU utilisation (0..1, all CPUs together) from cpu time deltas, held for >= 1 s."""

    def __init__(self, busy_seconds: Callable[[], float], cpus: int) -> None:
        self._busy = busy_seconds
        self._cpus = max(1, cpus)
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._b0 = busy_seconds()
        self._value: float | None = None

    def get(self) -> float | None:
        with self._lock:
            now = time.monotonic()
            elapsed = now - self._t0
            if self._value is not None and elapsed < 1.0:
                return self._value
            if elapsed < _MIN_CPU_INTERVAL:
                return self._value
            busy = self._busy()
            self._value = max(0.0, min(1.0, (busy - self._b0) / (elapsed * self._cpus)))
            self._t0, self._b0 = now, busy
            return self._value


def _system_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def register_system_metrics(meter: Meter, process: psutil.Process | None = None, disk_path: str | None = None) -> None:
    """Register the ``system.*`` and ``process.*`` observable instruments on ``meter``.

    ``process`` must be created in the process it describes (after any fork).
    """
    process = process or psutil.Process()
    pid = process.pid
    cpus = psutil.cpu_count() or 1
    mount = mountpoint_of(disk_path or os.getcwd())
    system_cpu = _Utilization(_system_busy, cpus)

    def _process_busy() -> float:
        t = process.cpu_times()
        return float(t.user + t.system)

    process_cpu = _Utilization(_process_busy, cpus)
    memory: _Cached[_Memory] = _Cached(psutil.virtual_memory)
    disk: _Cached[_Disk] = _Cached(lambda: psutil.disk_usage(mount))
    # psutil returns None on a host without network interfaces
    network: _Cached[_NetIO | None] = _Cached(psutil.net_io_counters)

    def _process_info() -> _ProcessInfo:
        with process.oneshot():
            info = process.memory_info()
            fds: int | None
            try:
                fds = process.num_fds()
            except (AttributeError, psutil.Error):
                fds = None
            return {
                "rss": info.rss,
                "vms": info.vms,
                "threads": process.num_threads(),
                "fds": fds,
                "start": process.create_time(),
            }

    proc = _Cached(_process_info)
    pid_attr = {"process.pid": pid}

    def mem_used() -> int:
        m = memory.get()
        return m.total - m.available  # what `free` and most dashboards call used

    # (name, kind, unit, description, observe() -> iterable of (value, attributes))
    table: list[tuple[str, str, str, str, Callable[[], Iterable[tuple[float, Attributes]]]]] = [
        (
            "system.cpu.utilization",
            "gauge",
            "1",
            "Fraction of CPU time in use, all logical CPUs together",
            lambda: [] if (v := system_cpu.get()) is None else [(v, {})],
        ),
        ("system.cpu.logical.count", "updown", "{cpu}", "Number of logical CPUs", lambda: [(cpus, {})]),
        (
            "system.memory.usage",
            "updown",
            "By",
            "Memory in use and available",
            lambda: [
                (mem_used(), {"system.memory.state": "used"}),
                (memory.get().available, {"system.memory.state": "free"}),
            ],
        ),
        ("system.memory.limit", "updown", "By", "Total physical memory", lambda: [(memory.get().total, {})]),
        (
            "system.memory.utilization",
            "gauge",
            "1",
            "Fraction of memory in use and available",
            lambda: [
                (mem_used() / memory.get().total, {"system.memory.state": "used"}),
                (memory.get().available / memory.get().total, {"system.memory.state": "free"}),
            ],
        ),
        (
            "system.filesystem.usage",
            "updown",
            "By",
            "Filesystem space of the app's disk",
            lambda: [
                (disk.get().used, {"system.filesystem.state": "used", "system.filesystem.mountpoint": mount}),
                (disk.get().free, {"system.filesystem.state": "free", "system.filesystem.mountpoint": mount}),
            ],
        ),
        (
            "system.filesystem.utilization",
            "gauge",
            "1",
            "Fraction of the app's disk in use",
            lambda: [
                (
                    disk.get().used / max(1, disk.get().total),
                    {"system.filesystem.state": "used", "system.filesystem.mountpoint": mount},
                )
            ],
        ),
        (
            "system.network.io",
            "counter",
            "By",
            "Bytes sent and received on all interfaces",
            lambda: (
                []
                if (n := network.get()) is None
                else [
                    (n.bytes_sent, {"network.io.direction": "transmit"}),
                    (n.bytes_recv, {"network.io.direction": "receive"}),
                ]
            ),
        ),
        (
            "system.network.packet.count",
            "counter",
            "{packet}",
            "Packets sent and received on all interfaces",
            lambda: (
                []
                if (n := network.get()) is None
                else [
                    (n.packets_sent, {"network.io.direction": "transmit"}),
                    (n.packets_recv, {"network.io.direction": "receive"}),
                ]
            ),
        ),
        (
            "process.cpu.utilization",
            "gauge",
            "1",
            "Fraction of all CPUs' time used by this process",
            lambda: [] if (v := process_cpu.get()) is None else [(v, pid_attr)],
        ),
        (
            "process.memory.usage",
            "updown",
            "By",
            "Resident set size of this process",
            lambda: [(proc.get()["rss"], pid_attr)],
        ),
        (
            "process.memory.virtual",
            "updown",
            "By",
            "Virtual memory size of this process",
            lambda: [(proc.get()["vms"], pid_attr)],
        ),
        (
            "process.thread.count",
            "updown",
            "{thread}",
            "Threads of this process",
            lambda: [(proc.get()["threads"], pid_attr)],
        ),
        (
            "process.unix.file_descriptor.count",
            "updown",
            "{file_descriptor}",
            "Open file descriptors of this process",
            lambda: [] if (fds := proc.get()["fds"]) is None else [(fds, pid_attr)],
        ),
        (
            "process.uptime",
            "gauge",
            "s",
            "Seconds since this process started",
            lambda: [(time.time() - proc.get()["start"], pid_attr)],
        ),
        (
            "process.start_time",
            "gauge",
            "s",
            "Start time of this process, seconds since the Unix epoch",
            lambda: [(proc.get()["start"], pid_attr)],
        ),
    ]
    create = {
        "gauge": meter.create_observable_gauge,
        "updown": meter.create_observable_up_down_counter,
        "counter": meter.create_observable_counter,
    }
    for name, kind, unit, description, observe in table:
        create[kind](name, callbacks=[_callback(observe)], unit=unit, description=description)


def _callback(
    observe: Callable[[], Iterable[tuple[float, Attributes]]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, attrs) for value, attrs in observe()]

    return callback
