"""The benchmark script still runs: a tiny in-process measurement of bare Flask and otel_monitor.

Runs with this interpreter (``--python``), so it needs no benchmark virtualenv and no network.
Deselect with ``-m "not benchmark_smoke"``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.benchmark_smoke

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "benchmarks", "run.py")


def test_benchmark_smoke_in_process(tmp_path):
    output = tmp_path / "smoke.md"
    proc = subprocess.run(
        [
            sys.executable,
            RUN,
            "--smoke",
            "--only",
            "in-process",
            "--stacks",
            "bare,otel_monitor",
            "--python",
            sys.executable,
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    assert "## In-process" in proc.stdout
    assert "| stack | bare µs/req | stack µs/req | overhead µs |" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| `otel_monitor`"))
    assert "skipped" not in row and "ERROR" not in row, row
    assert output.read_text().count("| stack |") == 1
