"""Who is a worker of which server's master (from the servers' own state, never call stacks), and who is a master."""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path

import pytest

from otel_monitor import prefork


@pytest.fixture(autouse=True)
def no_declared_group(monkeypatch):
    monkeypatch.delenv(prefork.GROUP_VARIABLE, raising=False)


def test_a_declared_group_makes_every_other_process_a_worker_of_the_declared_master(monkeypatch):
    monkeypatch.setenv(prefork.GROUP_VARIABLE, "4242")
    assert prefork.detect_group(None) == 4242


def test_the_declared_master_itself_is_no_worker_and_keeps_its_own_numbers(monkeypatch):
    # a single-process server started by `otel-monitor run` is the declared master and serves requests
    monkeypatch.setenv(prefork.GROUP_VARIABLE, str(os.getpid()))
    assert prefork.detect_group(None) is None
    assert prefork.is_master() is False


@pytest.mark.parametrize("value", ["0", "1", "-5", "abc", "12x"])
def test_a_declared_group_that_is_not_a_pid_fails_at_start_up_naming_the_variable(monkeypatch, value):
    from otel_monitor.settings import SettingsError, resolve_settings

    with pytest.raises(SettingsError, match="process_group.*OTEL_MONITOR_PROCESS_GROUP"):
        resolve_settings(environ={prefork.GROUP_VARIABLE: value})


def test_a_process_group_given_as_an_argument_fails_at_start_up_pointing_at_the_environment():
    from flask import Flask

    from otel_monitor import Monitor
    from otel_monitor.settings import SettingsError

    with pytest.raises(
        SettingsError, match="process_group: set OTEL_MONITOR_PROCESS_GROUP in the server's environment"
    ):
        Monitor(Flask("declared"), process_group=4242)


def test_a_notice_is_claimed_once_per_group_and_always_outside_one(monkeypatch, tmp_path):
    monkeypatch.setattr(prefork.tempfile, "gettempdir", lambda: str(tmp_path))
    assert prefork.claim_once("login-url") and prefork.claim_once("login-url")  # no group: every time
    import subprocess

    master = subprocess.Popen(["sleep", "60"])  # a live "master" whose worker this process declares itself
    try:
        monkeypatch.setenv(prefork.GROUP_VARIABLE, str(master.pid))
        assert [prefork.claim_once("login-url") for _ in range(3)] == [True, False, False]
        assert prefork.group_secret("token") == prefork.group_secret("token") != prefork.group_secret("other")
    finally:
        master.kill()
        master.wait()


class _Uwsgi(types.ModuleType):
    def __init__(self, worker_id: int, master: int) -> None:
        super().__init__("uwsgi")
        self._worker_id, self._master = worker_id, master

    def worker_id(self) -> int:
        return self._worker_id

    def masterpid(self) -> int:
        return self._master


def test_a_uwsgi_worker_belongs_to_uwsgis_master_and_the_master_is_no_worker(monkeypatch):
    monkeypatch.setitem(sys.modules, "uwsgi", _Uwsgi(worker_id=2, master=4242))
    assert prefork.detect_group(None) == 4242
    monkeypatch.setitem(sys.modules, "uwsgi", _Uwsgi(worker_id=0, master=os.getpid()))
    assert prefork.detect_group(None) is None
    assert prefork.is_master() is True


def test_a_gunicorn_worker_is_known_by_the_signal_handlers_gunicorn_installs(monkeypatch):
    from gunicorn.workers.base import Worker

    worker = Worker.__new__(Worker)
    worker.ppid = 4242
    previous = signal.getsignal(signal.SIGQUIT)
    signal.signal(signal.SIGQUIT, worker.handle_quit)
    try:
        assert prefork.detect_group(None) == 4242
    finally:
        signal.signal(signal.SIGQUIT, previous)


def test_the_gunicorn_master_is_no_worker_and_is_the_master_once_its_arbiter_handles_signals():
    import gunicorn.workers.base  # noqa: F401 - loaded in the master too (the worker class)
    from gunicorn.arbiter import Arbiter

    # loading the app under --preload: no handler of gunicorn's yet
    assert prefork.detect_group(None) is None and prefork.is_master() is False
    arbiter = Arbiter.__new__(Arbiter)
    previous = signal.getsignal(signal.SIGCHLD)
    signal.signal(signal.SIGCHLD, arbiter.signal_chld)
    try:
        assert prefork.detect_group(None) is None and prefork.is_master() is True
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_no_stack_frames_are_inspected():
    source = Path(prefork.__file__).read_text()
    assert "_getframe" not in source and "inspect" not in source


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
