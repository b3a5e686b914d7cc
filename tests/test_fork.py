"""Fork after set-up: the child gets its own pipeline, pid, instance id and psutil process; no inherited counts.

The fork happens in a fresh interpreter (not in pytest's, where earlier tests leave threads
behind), exactly as a pre-fork server forks its workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT

SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {root!r})
    from tests.conftest import build_app
    from otel_monitor.testing import Telemetry, closing_client

    app, monitor = build_app(system_metrics=True)
    client = closing_client(app)
    for _ in range(5):
        client.get("/")

    def report():
        client_telemetry = Telemetry(monitor)
        return {{
            "pid": os.getpid(),
            "pipeline_pid": monitor.pipeline.pid,
            "instance": monitor.pipeline.instance_id,
            "resource_pid": monitor.pipeline.resource.attributes["process.pid"],
            "count": sum(p.count for p in client_telemetry.points("http.server.request.duration")),
            "rss_pids": [p.attributes["process.pid"] for p in client_telemetry.points("process.memory.usage")],
        }}

    parent_before = report()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        client.get("/")
        os.write(write_fd, json.dumps(report()).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    print(json.dumps({{"parent": parent_before, "child": child, "parent_after": report()}}))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exports_under_its_own_identity_and_inherits_no_counts():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT))], capture_output=True, text=True, timeout=60, cwd=str(ROOT)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    parent, child, after = report["parent"], report["child"], report["parent_after"]
    assert child["pid"] != parent["pid"]
    assert child["pipeline_pid"] == child["pid"] == child["resource_pid"]
    assert child["instance"] != parent["instance"]
    assert child["count"] == 1  # the parent's five requests are not the child's
    assert child["rss_pids"] == [child["pid"]]
    assert after["count"] == 5 and after["instance"] == parent["instance"]
