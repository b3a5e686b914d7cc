"""Start-up hook of ``otel-monitor run``: monitor every Flask app of this process, no code changes.

Python imports this module at start-up because ``otel-monitor run`` put its directory first on
``PYTHONPATH``. It

1. runs the ``sitecustomize`` this one shadows, if there is one further down ``sys.path``;
2. does nothing else unless ``OTEL_MONITOR_AUTOINSTRUMENT`` is ``1`` (so a leaked PYTHONPATH is
   harmless);
3. otherwise installs an import hook that patches ``flask.Flask.__call__`` when ``flask.app`` is
   imported (Flask is not imported here: commands that never use it pay nothing).

The patched ``__call__`` attaches ``Monitor().init_app(app)`` on the app's *first request*, so
``app.config`` set after construction (``OTEL_MONITOR_*`` keys) is honoured, exactly as it is for
``Monitor(app)``. An app that already has a monitor (it calls ``Monitor(app)`` itself) is left
alone. The first request is attached under a lock: concurrent first requests wait for it and
are all monitored. Under a pre-fork server (gunicorn, with or without ``--preload``) the first
request happens in a worker, and every worker builds its own pipeline.

Not covered: plain WSGI callables that are not Flask apps (use ``otel_monitor.wrap``), and
Flask subclasses whose ``__call__`` does not call ``super().__call__``.
"""

from __future__ import annotations

import _thread
import os
import sys

# Not ``typing.TYPE_CHECKING``: this runs at every start-up of the user's process, which must not
# pay for importing ``typing`` (mypy reads any constant of this name the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from flask import Flask

_HERE = os.path.dirname(os.path.abspath(__file__))
ENV_FLAG = "OTEL_MONITOR_AUTOINSTRUMENT"
ENV_QUIET = "OTEL_MONITOR_AUTOINSTRUMENT_QUIET"
#: app.extensions key: how auto-instrumentation dealt with the app ("attached", "own monitor", "failed")
STATUS_KEY = "otel_monitor.autoinstrument"
_TRUE = ("1", "true", "yes", "on")


def _say(message: str) -> None:
    if os.environ.get(ENV_QUIET, "").strip().lower() not in _TRUE:
        try:
            sys.stderr.write("otel-monitor: " + message + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a closed stderr must not break the app
            pass


def _chain_to_shadowed_sitecustomize() -> None:
    """Run the ``sitecustomize`` that would have been imported had we not come first."""
    import importlib.machinery
    import importlib.util

    def is_here(entry: str) -> bool:
        try:
            return os.path.abspath(entry or os.getcwd()) == _HERE
        except OSError:
            return False

    others = [entry for entry in sys.path if isinstance(entry, str) and not is_here(entry)]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    if spec.origin and os.path.abspath(spec.origin) == os.path.abspath(__file__):
        return
    ours = sys.modules.get("sitecustomize")
    if ours is not None:
        sys.modules["_otel_monitor_sitecustomize"] = ours  # keep our hooks' module alive
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # user code that imports sitecustomize sees theirs
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - what site.py does for a failing sitecustomize
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}\n")


# -- the Flask patch -------------------------------------------------------------------------

# threading.RLock is _thread's: made from it, the lock exists from the start without importing threading.
_lock = _thread.RLock()
_fork_hook_registered = False


def _reset_lock_after_fork() -> None:
    global _lock
    _lock = _thread.RLock()


def _attach(app: Flask) -> None:
    """Give ``app`` a monitor unless it has one; runs once per app (first request)."""
    with _lock:
        extensions = app.extensions
        if extensions.get(STATUS_KEY) is not None:
            return
        if extensions.get("otel_monitor") is not None:
            extensions[STATUS_KEY] = "own monitor"
            return
        try:
            from otel_monitor import Monitor
        except Exception as exc:  # noqa: BLE001 - a broken install must not break the app
            extensions[STATUS_KEY] = "failed"
            _say(f"cannot import otel_monitor in {sys.executable} ({exc}); Flask app {app.name!r} is not monitored")
            return
        try:
            monitor = Monitor()
            monitor.init_app(app)
        except Exception as exc:  # noqa: BLE001 - a bad setting must not turn every request into a 500
            extensions[STATUS_KEY] = "failed"
            _say(f"Flask app {app.name!r} is not monitored: {exc}")
            return
        extensions[STATUS_KEY] = "attached"
        settings = getattr(monitor, "settings", None)
        if settings is not None and settings.sdk_disabled:
            _say(f"monitoring of Flask app {app.name!r} is disabled (OTEL_SDK_DISABLED)")
        elif settings is not None:
            _say(f"monitoring Flask app {app.name!r} (pid {os.getpid()}); metrics at {settings.metrics_path}")


def patch_flask_class(flask_class: type[Flask]) -> None:
    """Patch ``Flask.__call__`` so that each app is monitored from its first request on."""
    global _fork_hook_registered
    if flask_class.__dict__.get("_otel_monitor_autoinstrumented"):
        return
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_lock_after_fork)
        _fork_hook_registered = True
    original = flask_class.__call__

    def __call__(self: Flask, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.extensions.get(STATUS_KEY) is None:
            _attach(self)
        return original(self, environ, start_response)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]  # mypy does not model function attributes
    __call__.__doc__ = original.__doc__
    flask_class.__call__ = __call__  # type: ignore[method-assign]  # the patch this module exists for
    flask_class._otel_monitor_autoinstrumented = True  # type: ignore[attr-defined]  # our marker on the class


def _patch_module(module: ModuleType) -> None:
    flask_class = getattr(module, "Flask", None)
    if isinstance(flask_class, type):
        try:
            patch_flask_class(flask_class)
        except Exception as exc:  # noqa: BLE001 - a failed patch must not break the import of flask
            _say(f"could not patch flask.Flask ({exc}); Flask apps are not monitored")


class _FlaskImportHook:
    """A ``sys.meta_path`` finder that lets the real finder find ``flask.app``, then patches it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "flask.app":
            return None
        try:
            finders = sys.meta_path[sys.meta_path.index(self) + 1 :]
        except ValueError:
            return None
        for finder in finders:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        # the import system's loader of flask.app, whatever its class: its exec_module is wrapped below
        loader: Any = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return None  # an old-style loader: let the normal machinery deal with it

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            _patch_module(module)

        try:
            loader.exec_module = exec_and_patch  # this loader instance loads flask.app only
        except (AttributeError, TypeError):
            return None
        return spec


def install() -> None:
    """Patch Flask now if it is already imported, else when ``flask.app`` is imported."""
    already = sys.modules.get("flask.app")
    if already is not None:
        _patch_module(already)
        return
    if not any(isinstance(finder, _FlaskImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FlaskImportHook())


def _main() -> None:
    try:
        _chain_to_shadowed_sitecustomize()
    finally:
        if os.environ.get(ENV_FLAG, "").strip().lower() in _TRUE:
            install()


_main()
