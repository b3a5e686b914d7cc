"""Fork after set-up: the child gets its own pipeline, pid, instance id and psutil process; no inherited counts."""

from __future__ import annotations

import json
import os

import pytest

from otel_monitor.testing import Telemetry, closing_client

from .conftest import build_app


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exports_under_its_own_identity_and_inherits_no_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_MONITOR_MULTIPROCESS_DIR", "")  # detection decides (the child is a fork)
    app, monitor = build_app(system_metrics=True)
    client = closing_client(app)
    for _ in range(5):
        client.get("/")
    parent_instance = monitor.pipeline.instance_id
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            client.get("/")
            telemetry_points = Telemetry(monitor).points("http.server.request.duration")
            rss = [p for p in Telemetry(monitor).points("process.memory.usage")]
            report = {
                "pid": monitor.pipeline.pid,
                "instance": monitor.pipeline.instance_id,
                "resource_pid": monitor.pipeline.resource.attributes["process.pid"],
                "count": sum(p.count for p in telemetry_points),
                "rss_pids": [p.attributes["process.pid"] for p in rss],
            }
            os.write(write_fd, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        report = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    assert report["pid"] == pid and report["resource_pid"] == pid
    assert report["instance"] != parent_instance
    assert report["count"] == 1  # the parent's five requests are not the child's
    assert report["rss_pids"] == [pid]
    # the parent is untouched
    assert Telemetry(monitor).point("http.server.request.duration").count == 5
    monitor.shutdown(1)
