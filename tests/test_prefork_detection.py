"""Who is a pre-fork worker (the gunicorn master loading the app never is), and who serves the group view."""

from __future__ import annotations

import sys
import types
from itertools import pairwise

import pytest

from otel_monitor import prefork


class _Process:
    def __init__(self, pid: int, cmdline: list[str], parent: _Process | None = None) -> None:
        self.pid, self._cmdline, self._parent = pid, cmdline, parent

    def parent(self) -> _Process | None:
        return self._parent

    def cmdline(self) -> list[str]:
        return self._cmdline


# A process (pid 1000) whose parent, `timeout`, mentions gunicorn on its command line.
_LAUNCHER = _Process(4242, ["/usr/bin/timeout", "60", "gunicorn", "--preload", "app:app"])


def _this_process() -> _Process:
    return _Process(1000, ["python", "-m", "gunicorn", "--preload", "app:app"], _LAUNCHER)


def _gunicorn_frames(*names: str):
    """Functions named like gunicorn's Arbiter methods, compiled as if in gunicorn/arbiter.py,
    each calling the next; the innermost calls detect_group."""
    source = "".join(f"def {name}():\n    return {nxt}()\n" for name, nxt in pairwise(names))
    source += f"def {names[-1]}():\n    return detect_group(None)\n"
    namespace = {"detect_group": prefork.detect_group}
    exec(compile(source, "/venv/site-packages/gunicorn/arbiter.py", "exec"), namespace)
    return namespace[names[0]]


@pytest.fixture
def inside_gunicorn(monkeypatch):
    for name in ("gunicorn.arbiter", "gunicorn.workers.base"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(prefork.psutil, "Process", _this_process)


def test_a_process_whose_parent_runs_gunicorn_is_a_worker_of_that_parent(inside_gunicorn):
    assert prefork.detect_group(None) == 4242


def test_the_master_loading_the_app_is_no_worker_whatever_its_parent_runs(inside_gunicorn):
    assert _gunicorn_frames("run", "setup")() is None


def test_a_worker_forked_by_the_master_is_a_worker(inside_gunicorn):
    # gunicorn forks inside Arbiter.spawn_worker; the child goes on running under those frames
    assert _gunicorn_frames("setup", "spawn_worker", "init_process")() == 4242


FORKING_APP = """
import os, sys, urllib.request
sys.path.insert(0, {root!r})
from tests.conftest import build_app
from otel_monitor.testing import closing_client

app, monitor = build_app(metrics_port={port})
client = closing_client(app)
client.get("/")
pid = os.fork()  # e.g. a multiprocessing pool: this process goes on serving
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
client.get("/")
body = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
print(sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
          if line.startswith("http_server_request_duration_seconds_count{{")))
"""


def test_a_process_that_forks_outside_gunicorn_keeps_its_own_numbers_on_the_metrics_port():
    import subprocess

    from .conftest import ROOT, free_port

    script = FORKING_APP.format(root=str(ROOT), port=free_port())
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) == 2
