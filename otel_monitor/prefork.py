"""Pre-fork servers: is this process a worker of a pre-fork master (gunicorn, uWSGI-style), and of which?

Only detection and the group's private directory live here; what the workers share through it is
:mod:`otel_monitor.multiprocess`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import types

import psutil

__all__ = ["detect_group", "forked_a_gunicorn_worker", "group_dir", "group_secret", "alive"]

_PREFIX = "otel_monitor-"


def detect_group(forked_from: int | None) -> int | None:
    """The pid of the pre-fork master this process is a worker of, or None when not pre-forked.

    A worker is a process forked (not exec'd) from the master: either we saw the fork (the monitor
    was built before it: gunicorn ``--preload``), or the parent runs the same command line as we
    do, or this is a gunicorn worker (the master's title may differ when setproctitle is installed).
    """
    if forked_from is not None:
        return forked_from
    if _in_gunicorn_master_setup():
        return None  # gunicorn --preload importing the app: we are the master, whatever our parent runs
    try:
        me = psutil.Process()
        parent = me.parent()
        if parent is None or parent.pid <= 1:
            return None
        if parent.cmdline() == me.cmdline():
            return parent.pid
        if "gunicorn.workers.base" in sys.modules and any("gunicorn" in part for part in parent.cmdline()):
            return parent.pid
    except (psutil.Error, OSError):
        return None
    return None


def _arbiter_frames() -> set[str]:
    """Names of gunicorn ``Arbiter`` methods on the current stack (none outside gunicorn)."""
    if "gunicorn.arbiter" not in sys.modules:
        return set()
    arbiter = os.path.join("gunicorn", "arbiter.py")
    names = set()
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(arbiter):
            names.add(frame.f_code.co_name)
        frame = frame.f_back
    return names


def _in_gunicorn_master_setup() -> bool:
    """True in the gunicorn master while it loads the app (``--preload``): ``Arbiter.setup`` is on
    the stack and ``Arbiter.spawn_worker`` (under which a forked worker runs) is not.

    Without this, a master whose parent's command line mentions gunicorn (``timeout gunicorn ...``,
    a test runner, a supervisor) passed for a worker of that parent.
    """
    names = _arbiter_frames()
    return "setup" in names and "spawn_worker" not in names


def forked_a_gunicorn_worker() -> bool:
    """True in the gunicorn master right after it forked a worker (an ``after_in_parent`` hook)."""
    return "spawn_worker" in _arbiter_frames()


def group_dir(master_pid: int, configured: str | None = None) -> str:
    """Create (or reuse) the group's directory, owned by us and private."""
    if configured:
        path = configured
    else:
        path = os.path.join(tempfile.gettempdir(), f"{_PREFIX}{os.getuid()}-{master_pid}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass
    info = os.lstat(path)
    import stat

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
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False
    except psutil.Error:
        return True


def group_secret(name: str, nbytes: int = 32) -> bytes | None:
    """A random secret shared by all workers of this pre-fork group, or None when not pre-forked.

    The first worker to ask creates ``<dir>/secret-<name>`` (mode 0600, O_EXCL); the others read
    it. Generated analytics tokens and session keys are then the same whichever worker answers.
    """
    import secrets

    master = detect_group(None)
    if master is None:
        return None
    path = os.path.join(group_dir(master), f"secret-{name}")
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
