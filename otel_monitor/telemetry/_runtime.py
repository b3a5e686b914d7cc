"""The per-process life of one monitored app: build the pipeline, rebuild it after fork, flush at exit.

A pipeline belongs to the process that built it. After ``fork()`` the child must not export the
parent's counts nor use the parent's exporter threads, so every runtime drops its pipeline in
the child and builds a fresh one (new ``service.instance.id``, new ``psutil.Process``, new
threads) the first time it is used there.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from collections.abc import Callable

from .._safe_log import log_internal_error
from ..metrics.metrics_view import LocalView, MetricsView
from ..settings import Settings
from .pipeline import Pipeline, build_pipeline

_live: weakref.WeakSet[Runtime] = weakref.WeakSet()
_hooks_installed = False
_hooks_lock = threading.Lock()
#: the process whose runtimes were last reset after a fork (two hooks may report one fork)
_reset_in: list[int] = [os.getpid()]


def _install_process_hooks() -> None:
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child, after_in_parent=_after_fork_in_parent)
    _install_uwsgi_hook()
    atexit.register(_shutdown_all)


def _install_uwsgi_hook() -> None:
    """uWSGI forks its workers in C: Python's at-fork hooks do not run there (unless
    ``--py-call-osafterfork``), its own post-fork hook does."""
    if "uwsgi" not in sys.modules:
        return  # not inside uWSGI (the module exists only there)
    try:
        import importlib

        decorators = importlib.import_module("uwsgidecorators")  # chains with the app's own @postfork
        decorators.postfork(_after_fork_in_child)
    except Exception:  # noqa: BLE001 - uwsgidecorators missing: chain uwsgi.post_fork_hook ourselves
        uwsgi = sys.modules["uwsgi"]
        previous = getattr(uwsgi, "post_fork_hook", None)

        def hook() -> None:
            _after_fork_in_child()
            if callable(previous):
                previous()

        setattr(uwsgi, "post_fork_hook", hook)  # noqa: B010 - a module without stubs outside uWSGI


def _after_fork_in_child() -> None:
    if _reset_in[0] == os.getpid():
        return  # uWSGI with --py-call-osafterfork runs both hooks
    _reset_in[0] = os.getpid()
    for runtime in list(_live):
        runtime._forked()


def _after_fork_in_parent() -> None:
    for runtime in list(_live):
        runtime._forked_a_child()


def _shutdown_all() -> None:
    """At exit: flush every live pipeline in parallel, bounded by the largest shutdown_timeout."""
    pipelines = [r.current for r in list(_live) if r.current is not None and r.current.pid == os.getpid()]
    threads = []
    for pipeline in pipelines:
        thread = threading.Thread(target=pipeline.shutdown, name="otel_monitor-exit", daemon=True)
        thread.start()
        threads.append((thread, pipeline.settings.shutdown_timeout))
    for thread, timeout in threads:
        thread.join(timeout + 0.2)


def _check_process_group(settings: Settings) -> None:
    """``process_group`` is read by every process of the server from its environment (the
    workers, the token, the login throttle), so only the environment can declare it."""
    source = settings.source_of("process_group")
    if settings.process_group is not None and not source.startswith("environment"):
        from ..settings import SettingsError

        raise SettingsError(
            f"process_group: set OTEL_MONITOR_PROCESS_GROUP in the server's environment instead of {source}: "
            "every process of the server reads it there"
        )


class Runtime:
    """Settings plus this process's pipeline for one monitored app."""

    def __init__(
        self, settings: Settings, service_name: str, setup_hooks: tuple[Callable[[Pipeline], None], ...] = ()
    ) -> None:
        _check_process_group(settings)
        self.settings = settings
        self.service_name = service_name
        self.setup_hooks = list(setup_hooks)
        #: this process's pipeline once built (None before, and in a forked child until its first
        #: request): the request path reads it per request (request._request_path.PipelineSource)
        self.current: Pipeline | None = None
        self._lock = threading.Lock()
        self._abandoned: list[Pipeline] = []
        #: set when this process was forked from the one that created the runtime
        self.forked_from: int | None = None
        #: shut down by the user: the global providers move on to the next open runtime
        self.closed = False
        _install_process_hooks()
        _live.add(self)

    def pipeline(self) -> Pipeline:
        pipeline = self.current
        if pipeline is None:
            with self._lock:
                pipeline = self.current
                if pipeline is None:
                    pipeline = build_pipeline(
                        self.settings, self.service_name, setup_hooks=tuple(self.setup_hooks), view_for=self._view_for
                    )
                    self.current = pipeline
                    if self._abandoned:
                        self._retire_abandoned()
        return pipeline

    def _view_for(self, pipeline: Pipeline) -> MetricsView:
        """The new pipeline's view: the worker group's under a pre-fork server (metrics.multiprocess)."""
        from .. import prefork
        from ..metrics import multiprocess

        try:
            master = prefork.detect_group(self.forked_from)
            if master is None and prefork.is_master():
                # uWSGI's master loading the app: it serves no requests; its metrics port (if it
                # binds one) shows the workers'
                return multiprocess.master_view(
                    pipeline, prefork.group_dir(os.getpid(), self.settings.multiprocess_dir)
                )
            if master is None and not self.settings.multiprocess_dir:
                return LocalView(pipeline.reader.snapshot, pipeline.shared)
            directory = prefork.group_dir(master or os.getppid(), self.settings.multiprocess_dir)
            return multiprocess.worker_view(pipeline, directory)
        except Exception:  # noqa: BLE001 - without it each worker still reports its own numbers
            log_internal_error("setting up multiprocess metrics")
            return LocalView(pipeline.reader.snapshot, pipeline.shared, own_only=True)

    @property
    def built(self) -> bool:
        return self.current is not None

    def _forked(self) -> None:
        # Runs in the child right after fork: no locks, no I/O, no threads here.
        self._lock = threading.Lock()
        if self.current is not None:
            self._abandoned.append(self.current)
            self.forked_from = self.current.pid
        self.current = None

    def _forked_a_child(self) -> None:
        # The worker builds its own pipeline and joins the group of this process (see
        # otel_monitor.metrics.multiprocess). A separate metrics port bound here (gunicorn --preload: the
        # master) stays here, so from now on it serves the group's view instead of our own numbers.
        # Only in a server's master (prefork.is_master): any other process that forks goes on
        # serving requests, and its port must go on showing them.
        pipeline = self.current
        if (
            pipeline is None
            or pipeline.pid != os.getpid()
            or pipeline.metrics_server is None
            or not isinstance(pipeline.view, LocalView)
        ):
            return
        from .. import prefork
        from ..metrics import multiprocess

        try:
            if not prefork.is_master():
                return
            directory = prefork.group_dir(os.getpid(), self.settings.multiprocess_dir)
            pipeline.serve_group(multiprocess.master_view(pipeline, directory))
        except Exception:  # noqa: BLE001 - the port then keeps serving this process's numbers
            log_internal_error("serving the workers' metrics on the metrics port")

    def _retire_abandoned(self) -> None:
        """Stop the parent's providers in the child without exporting anything they hold."""
        abandoned, self._abandoned = self._abandoned, []

        def retire() -> None:
            for old in abandoned:
                try:
                    old.metric_exporters = []  # nothing counted in the parent leaves this process
                    old.shutdown_hooks = []  # nor touches the parent's files (multiprocess)
                    old.shutdown(timeout=2.0)
                except Exception:  # noqa: BLE001 - the child's new pipeline must start whatever the old one does
                    log_internal_error("retiring the pre-fork pipeline")

        threading.Thread(target=retire, name="otel_monitor-retire", daemon=True).start()

    def shutdown(self, timeout: float | None = None) -> bool:
        self.closed = True
        pipeline = self.current
        if pipeline is None or pipeline.pid != os.getpid():
            return True
        return pipeline.shutdown(timeout)
