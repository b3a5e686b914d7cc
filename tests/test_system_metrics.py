"""System-health gauges: semantic-convention names and units, read on collection, no bogus first 0 % CPU."""

from __future__ import annotations

import os
import threading
import time

import pytest

from otel_monitor.metrics import system
from otel_monitor.testing import Telemetry

EXPECTED = {
    "system.cpu.utilization": "1",
    "system.memory.usage": "By",
    "system.memory.limit": "By",
    "system.memory.utilization": "1",
    "system.filesystem.usage": "By",
    "system.filesystem.utilization": "1",
    "system.network.io": "By",
    "system.network.packet.count": "{packet}",
    "process.cpu.utilization": "1",
    "process.memory.usage": "By",
    "process.memory.virtual": "By",
    "process.thread.count": "{thread}",
    "process.unix.file_descriptor.count": "{file_descriptor}",
    "process.uptime": "s",
    "process.start_time": "s",
}


@pytest.fixture
def telemetry(monitors):
    app, monitor = monitors.app(system_metrics=True)
    return Telemetry(monitor)


def test_every_system_and_process_metric_is_present_with_its_semconv_unit(telemetry):
    time.sleep(system._MIN_CPU_INTERVAL + 0.05)
    metrics = telemetry.metrics()
    assert {name: metrics[name].unit for name in EXPECTED if name in metrics} == EXPECTED


def test_memory_and_filesystem_values_are_consistent(telemetry):
    used = telemetry.point("system.memory.usage", **{"system.memory.state": "used"}).value
    free = telemetry.point("system.memory.usage", **{"system.memory.state": "free"}).value
    total = telemetry.point("system.memory.limit").value
    assert used + free == total
    ratio = telemetry.point("system.memory.utilization", **{"system.memory.state": "used"}).value
    assert ratio == pytest.approx(used / total)
    disk = telemetry.point("system.filesystem.utilization")
    assert 0 < disk.value < 1
    assert disk.attributes["system.filesystem.mountpoint"] == system.mountpoint_of(os.getcwd())


def test_process_gauges_describe_this_process(telemetry):
    rss = telemetry.point("process.memory.usage")
    assert rss.attributes["process.pid"] == os.getpid()
    import psutil

    assert abs(rss.value - psutil.Process().memory_info().rss) < 50 * 1024 * 1024
    assert telemetry.point("process.thread.count").value >= 1


def test_cpu_utilization_is_not_reported_as_a_bogus_zero_before_an_interval_has_passed():
    reading = system._Utilization(lambda: 0.0, 2)
    assert reading.get() is None  # nothing yet, rather than 0 %
    busy = {"s": 0.0}
    reading = system._Utilization(lambda: busy["s"], 1)
    reading._t0 -= 1.0  # pretend a second passed, half of it busy
    busy["s"] = 0.5
    assert reading.get() == pytest.approx(0.5, abs=0.05)


def test_psutil_is_not_called_per_request(monkeypatch, monitors):
    app, monitor = monitors.app(system_metrics=True)
    calls = []
    import psutil

    # which thread read memory: the periodic readers may (on a slow machine, during the loop), requests never
    monkeypatch.setattr(psutil, "virtual_memory", lambda: calls.append(threading.get_ident()))
    from otel_monitor.testing import closing_client

    client = closing_client(app)
    for _ in range(20):
        client.get("/")
    assert threading.get_ident() not in calls
