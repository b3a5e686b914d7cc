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
    # one table per view: the trivial JSON view and the realistic one (SQLite + Jinja)
    assert "## In-process: `GET /users/42`" in proc.stdout
    assert "## In-process: `GET /orders`" in proc.stdout
    assert "| stack | bare µs/req | stack µs/req | overhead µs |" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| `otel_monitor`")]
    assert len(rows) == 2
    for row in rows:
        assert "skipped" not in row and "ERROR" not in row, row
    assert output.read_text().count("| stack |") == 2


def run_smoke(tmp_path, stacks: str, fail: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            RUN,
            "--smoke",
            "--only",
            "in-process,scrape",
            "--stacks",
            stacks,
            "--python",
            sys.executable,
            "--output",
            str(tmp_path / "smoke.md"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={**os.environ, "BENCH_FAIL_STACKS": fail},
    )


def test_a_peer_failing_its_rows_is_reported_in_them_and_the_run_still_succeeds(tmp_path):
    proc = run_smoke(tmp_path, "bare,otel_monitor,pfe", fail="pfe")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    pfe_rows = [line for line in proc.stdout.splitlines() if line.startswith("| `pfe`")]
    # rows: the two in-process views and the scrape
    assert len(pfe_rows) == 3 and all("ERROR" in row and "BENCH_FAIL_STACKS" in row for row in pfe_rows), pfe_rows
    ours = [line for line in proc.stdout.splitlines() if line.startswith("| `otel_monitor`")]
    assert len(ours) == 3 and not any("ERROR" in row or "skipped" in row for row in ours), ours
    assert "Peer rows that failed (the run goes on):\n- in-process pfe:" in proc.stdout
    assert "\nErrors:" not in proc.stdout


def test_otel_monitor_failing_a_row_fails_the_run(tmp_path):
    proc = run_smoke(tmp_path, "bare,otel_monitor", fail="otel_monitor")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "Errors:\n- in-process otel_monitor:" in proc.stdout


def load_run_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_docs_show_exactly_the_latest_results_file_the_benchmark_wrote():
    run = load_run_module()
    with open(run.DOCS) as fh:
        docs = fh.read()
    with open(run.LATEST) as fh:
        latest = fh.read()
    assert docs.count(run.DOCS_START) == 1 and docs.count(run.DOCS_END) == 1
    assert docs == run.synced_docs(docs, latest), "run: python3 benchmarks/run.py --sync-docs"


def test_syncing_the_docs_replaces_only_the_results_block():
    run = load_run_module()
    docs = f"intro\n\n{run.DOCS_START}\n\n## old\n\n{run.DOCS_END}\n\nafter\n"
    synced = run.synced_docs(docs, "# title\n\n## Scrape\n\n| a | 54.0 |\n")
    assert synced == f"intro\n\n{run.DOCS_START}\n\n## title\n\n### Scrape\n\n| a | 54.0 |\n\n{run.DOCS_END}\n\nafter\n"
