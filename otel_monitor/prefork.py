"""Process groups: is this process a worker of a multi-process server, and of which master?

Only detection, the group's private directory and what it holds for the whole group (secrets,
one-time notices) live here; what the workers share through the directory is
:mod:`otel_monitor.metrics.multiprocess`.

A group is found from the server's own state, never from call stacks:

=========================  ======================================================================
declared                   ``OTEL_MONITOR_PROCESS_GROUP=<master pid>`` (``otel-monitor run`` sets
                           it to its own pid, then execs the server, which keeps that pid)
forked from a monitor      this process was forked after the monitor was built (``--preload``,
                           uWSGI without ``--lazy-apps``): the process that built it
uWSGI                      ``uwsgi.worker_id() > 0``: ``uwsgi.masterpid()``
gunicorn                   the worker object gunicorn installs as its signal handlers (``ppid``)
uvicorn / hypercorn        a ``--workers`` child started by :mod:`multiprocessing`: its parent
mod_wsgi                   a daemon process (``mod_wsgi.process_group``): the Apache parent
=========================  ======================================================================

The master itself is never a worker. The gunicorn arbiter and uWSGI's master are
:func:`is_master`: they serve no requests, so their separate metrics port shows the workers'
numbers. A declared master may be a single-process server that serves requests itself: it keeps
its own numbers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import time

import psutil

__all__ = [
    "GROUP_VARIABLE",
    "alive",
    "claim_once",
    "declared_group",
    "detect_group",
    "group_dir",
    "group_secret",
    "is_master",
    "parse_group",
]

_PREFIX = "otel_monitor-"
#: the environment variable that declares the group (the master's pid)
GROUP_VARIABLE = "OTEL_MONITOR_PROCESS_GROUP"


def parse_group(value: object) -> int | None:
    """The declared master pid (a positive integer), None when unset; ValueError otherwise."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if not text.isdigit() or int(text) <= 1:
        raise ValueError("expected the pid of the server's master process, e.g. OTEL_MONITOR_PROCESS_GROUP=$$")
    return int(text)


def declared_group() -> int | None:
    """``OTEL_MONITOR_PROCESS_GROUP`` (a bad value fails at start-up through the settings)."""
    try:
        return parse_group(os.environ.get(GROUP_VARIABLE))
    except ValueError:
        return None


def detect_group(forked_from: int | None) -> int | None:
    """The pid of the master this process is a worker of, or None when it is no worker."""
    if forked_from is not None:
        return forked_from
    declared = declared_group()
    if declared is not None:
        return None if declared == os.getpid() else declared
    for probe in (_uwsgi_master, _gunicorn_master, _spawning_server, _mod_wsgi_parent):
        try:
            master = probe()
        except Exception:  # noqa: BLE001 - a server's module in an unexpected state: not that server
            master = None
        if master is not None and master != os.getpid():
            return master
    return None


def is_master() -> bool:
    """True in a server's master process (it serves no requests; its metrics port shows the workers')."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None:
        with contextlib.suppress(Exception):
            return bool(uwsgi.worker_id() == 0 and uwsgi.masterpid() == os.getpid())
    arbiter = sys.modules.get("gunicorn.arbiter")
    if arbiter is not None:
        handler = getattr(signal.getsignal(signal.SIGCHLD), "__self__", None)
        return isinstance(handler, arbiter.Arbiter)
    return False


def _uwsgi_master() -> int | None:
    uwsgi = sys.modules.get("uwsgi")  # built into uWSGI's workers; no such module elsewhere
    if uwsgi is None or uwsgi.worker_id() <= 0:
        return None
    return int(uwsgi.masterpid()) or None


def _gunicorn_master() -> int | None:
    base = sys.modules.get("gunicorn.workers.base")
    if base is None:
        return None
    # A worker installs its own methods as signal handlers before it loads the app; the
    # master never does (it loads the app under --preload before any handler is set).
    worker = getattr(signal.getsignal(signal.SIGQUIT), "__self__", None)
    if isinstance(worker, base.Worker):
        return int(worker.ppid)
    return None


def _spawning_server() -> int | None:
    """uvicorn / hypercorn ``--workers N``: each worker is a multiprocessing child of the server."""
    if "uvicorn" not in sys.modules and "hypercorn" not in sys.modules:
        return None
    import multiprocessing

    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else None


def _mod_wsgi_parent() -> int | None:
    mod_wsgi = sys.modules.get("mod_wsgi")
    if mod_wsgi is None or not getattr(mod_wsgi, "process_group", ""):
        return None  # embedded mode: Apache's own processes, no group of ours
    return os.getppid()


def group_dir(master_pid: int, configured: str | None = None) -> str:
    """Create (or reuse) the group's directory, owned by us and private."""
    if configured:
        path = configured
    else:
        path = os.path.join(tempfile.gettempdir(), f"{_PREFIX}{os.getuid()}-{master_pid}")
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"otel_monitor: refusing multiprocess directory {path!r}: not a directory we own")
    if not configured:
        _remove_stale_groups()
    return path


def _remove_stale_groups() -> None:
    base = tempfile.gettempdir()
    mine = f"{_PREFIX}{os.getuid()}-"
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(mine):
            continue
        pid_text = name[len(mine) :]
        if pid_text.isdigit() and not alive(int(pid_text)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False
    except psutil.Error:
        return True


def _own_group_dir() -> str | None:
    master = detect_group(None)
    return group_dir(master) if master is not None else None


def group_secret(name: str, nbytes: int = 32) -> bytes | None:
    """A random secret shared by all workers of this group, or None when not in a group.

    The first worker to ask creates ``<dir>/secret-<name>`` (mode 0600, O_EXCL); the others read
    it. Generated analytics tokens and session keys are then the same whichever worker answers.
    """
    directory = _own_group_dir()
    if directory is None:
        return None
    path = os.path.join(directory, f"secret-{name}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # the creator may not have written it yet
            with open(path, "rb") as fh:
                value = fh.read()
            if len(value) == nbytes:
                return value
            time.sleep(0.01)
        return None
    value = secrets.token_bytes(nbytes)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


def claim_once(name: str) -> bool:
    """True for the first process of the group to ask (always True outside a group): a notice
    such as the login URL is logged once per group, not once per worker."""
    try:
        directory = _own_group_dir()
        if directory is None:
            return True
        fd = os.open(os.path.join(directory, f"once-{name}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except (OSError, RuntimeError):
        return True  # better twice than never
    os.close(fd)
    return True
