"""``Monitor``: the Flask extension, ``wrap()`` for any WSGI app, and ``get_monitor()``.

Usage::

    app = Flask(__name__)
    monitor = Monitor(app)            # or Monitor() ... monitor.init_app(app) in a factory

    application = otel_monitor.wrap(application)   # any WSGI callable
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any, Callable

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from ._frameworks import default_service_name, install_route_hooks
from ._request_path import EXCEPTION_KEY, ROUTE_KEY, RequestInstrumentation
from ._runtime import Runtime, request_pipeline
from .exposition import metrics_wsgi_app
from .instruments import Counter, Gauge, Histogram, UpDownCounter
from .settings import FIELDS, Settings, SettingsError, resolve_settings

__all__ = ["Monitor", "wrap", "get_monitor"]

_logger = logging.getLogger("otel_monitor")
EXTENSION_KEY = "otel_monitor"
_last_monitor: "weakref.ref[Monitor] | None" = None
_FIELD_NAMES = {f.name for f in FIELDS}


class Monitor:
    """One-line OpenTelemetry monitoring for a Flask app.

    Keyword arguments are settings (see :class:`~otel_monitor.settings.Settings`); they win over
    ``app.config["OTEL_MONITOR_<NAME>"]``, which wins over the environment, which wins over the
    defaults. A bad value raises :class:`~otel_monitor.settings.SettingsError` at ``init_app``.
    """

    def __init__(self, app: Any = None, **settings: Any) -> None:
        unknown = sorted(set(settings) - _FIELD_NAMES)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        self._kwargs = settings
        self._runtime: Runtime | None = None
        self._handles: list = []
        global _last_monitor
        _last_monitor = weakref.ref(self)
        if app is not None:
            self.init_app(app)

    # -- attaching ---------------------------------------------------------------------------

    def init_app(self, app: Any) -> None:
        """Attach to a Flask app. Calling it again for the same app does nothing."""
        existing = app.extensions.get(EXTENSION_KEY)
        if existing is not None:
            if existing is not self:
                _logger.warning("otel_monitor: %r is already monitored; not instrumenting it twice", app.name)
            return
        settings = resolve_settings(self._kwargs, app.config, defaults={"service_name": app.name})
        app.extensions[EXTENSION_KEY] = self
        if settings.sdk_disabled:
            self._runtime = None
            self.settings = settings
            return
        runtime = self._make_runtime(settings, settings.service_name or app.name)
        app.wsgi_app = RequestInstrumentation(
            app.wsgi_app, request_pipeline(runtime), settings, metrics_wsgi_app_for(runtime)
        )
        _install_flask_hooks(app)
        if settings.analytics:
            from .analytics import install

            install(self, app, runtime)
        runtime.pipeline()  # start exporting now; a forked child builds its own

    def _make_runtime(self, settings: Settings, service_name: str) -> Runtime:
        self.settings = settings
        self._runtime = Runtime(settings, service_name, setup_hooks=(self._on_pipeline,))
        return self._runtime

    def _on_pipeline(self, pipeline: Any) -> None:
        pipeline.extensions["monitor"] = self
        if pipeline.settings.set_global:
            _set_global(pipeline)
        if pipeline.settings.metrics_port:
            from ._metrics_server import start_metrics_server

            start_metrics_server(pipeline, metrics_wsgi_app(pipeline.registry, pipeline.settings.metrics_token))
        for handle in self._handles:
            if isinstance(handle, Gauge) and handle._callback is not None:
                handle.register(pipeline)

    # -- what users call ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._runtime is not None

    @property
    def pipeline(self) -> Any:
        """This process's pipeline (providers, reader, registry); None when disabled or not attached."""
        return self._current_pipeline()

    def _current_pipeline(self) -> Any:
        runtime = self._runtime
        return runtime.pipeline() if runtime is not None else None

    @property
    def tracer(self) -> otel_trace.Tracer:
        """A tracer of this monitor's provider (a no-op tracer when disabled). Don't keep it across a fork."""
        pipeline = self._current_pipeline()
        return pipeline.tracer if pipeline is not None else otel_trace.NoOpTracer()

    @property
    def meter(self) -> otel_metrics.Meter:
        """A meter of this monitor's provider (a no-op meter when disabled). Don't keep it across a fork;
        for instruments created at import time use :meth:`counter` and friends."""
        pipeline = self._current_pipeline()
        return pipeline.meter if pipeline is not None else otel_metrics.NoOpMeter("otel_monitor")

    @property
    def tracer_provider(self) -> Any:
        pipeline = self._current_pipeline()
        return pipeline.tracer_provider if pipeline is not None else None

    @property
    def meter_provider(self) -> Any:
        pipeline = self._current_pipeline()
        return pipeline.meter_provider if pipeline is not None else None

    def counter(self, name: str, description: str = "", unit: str = "1") -> Counter:
        return self._handle(Counter(self._current_pipeline, name, unit, description))

    def up_down_counter(self, name: str, description: str = "", unit: str = "1") -> UpDownCounter:
        return self._handle(UpDownCounter(self._current_pipeline, name, unit, description))

    def histogram(
        self, name: str, description: str = "", unit: str = "1", buckets: tuple[float, ...] | None = None
    ) -> Histogram:
        options = {"explicit_bucket_boundaries_advisory": tuple(buckets)} if buckets else {}
        return self._handle(Histogram(self._current_pipeline, name, unit, description, **options))

    def gauge(
        self, name: str, description: str = "", callback: Callable[[], Any] | None = None, unit: str = "1"
    ) -> Gauge:
        handle = self._handle(Gauge(self._current_pipeline, name, unit, description, callback=callback))
        if callback is not None and self._runtime is not None and self._runtime.built:
            handle.register(self._current_pipeline())
        return handle

    def _handle(self, handle: Any) -> Any:
        self._handles.append(handle)
        return handle

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop this process's telemetry within ``timeout`` seconds; never raises."""
        return self._runtime.shutdown(timeout) if self._runtime is not None else True


def wrap(application: Callable, monitor: Monitor | None = None, **settings: Any) -> Callable:
    """Monitor any WSGI callable: returns a WSGI callable with the same pipeline as ``Monitor``.

    The returned callable has a ``monitor`` attribute (for custom metrics, ``shutdown()``).
    Settings come from keyword arguments > environment > defaults.
    """
    if getattr(application, "otel_monitor", None) is not None:
        return application  # already wrapped
    monitor = monitor or Monitor(**settings)
    # Django, Falcon and Bottle apps: their project's name, and their route templates (_frameworks).
    name = default_service_name(application, sys._getframe(1).f_globals.get("__name__")) or _wsgi_name(application)
    resolved = resolve_settings(monitor._kwargs, defaults={"service_name": name})
    if resolved.sdk_disabled:
        monitor.settings = resolved
        return application
    install_route_hooks(application)
    runtime = monitor._make_runtime(resolved, resolved.service_name or name)
    wrapped = RequestInstrumentation(application, request_pipeline(runtime), resolved, metrics_wsgi_app_for(runtime))
    wrapped.monitor = monitor  # type: ignore[attr-defined]
    wrapped.otel_monitor = monitor  # type: ignore[attr-defined]
    runtime.pipeline()
    return wrapped


def get_monitor(app: Any = None) -> Monitor | None:
    """The monitor of ``app``, else of the current Flask app, else the one created last."""
    if app is None:
        try:
            from flask import current_app

            app = current_app._get_current_object() if current_app else None
        except (ImportError, RuntimeError):
            app = None
    if app is not None and hasattr(app, "extensions"):
        found = app.extensions.get(EXTENSION_KEY)
        if found is not None:
            return found
    return _last_monitor() if _last_monitor is not None else None


# -- helpers --------------------------------------------------------------------------------


def metrics_wsgi_app_for(runtime: Runtime) -> Callable:
    """/metrics for the pipeline of the current process (it changes after a fork)."""
    apps: dict[int, Callable] = {}

    def app(environ: dict, start_response: Callable) -> Any:
        pipeline = runtime.pipeline()
        served = apps.get(id(pipeline))
        if served is None:
            apps.clear()
            served = apps[id(pipeline)] = metrics_wsgi_app(pipeline.registry, runtime.settings.metrics_token)
        return served(environ, start_response)

    return app


def _wsgi_name(application: Callable) -> str:
    module = getattr(application, "__module__", None) or "wsgi"
    return module if module != "__main__" else "wsgi_app"


def _set_global(pipeline: Any) -> None:
    try:
        otel_trace.set_tracer_provider(pipeline.tracer_provider)
        otel_metrics.set_meter_provider(pipeline.meter_provider)
    except Exception:  # noqa: BLE001 - the API warns (and refuses) when set twice
        _logger.warning("otel_monitor: could not install the global providers", exc_info=True)


def _install_flask_hooks(app: Any) -> None:
    """Tell the middleware the matched route template and any exception the app handled."""
    from flask import got_request_exception, request

    def record_route() -> None:
        current = request._get_current_object()  # one context lookup instead of two
        rule = current.url_rule
        if rule is not None:
            current.environ[ROUTE_KEY] = rule.rule

    # First, so that an earlier before_request that raises still leaves the route known.
    app.before_request_funcs.setdefault(None, []).insert(0, record_route)

    def record_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
        try:
            request.environ[EXCEPTION_KEY] = exception
        except Exception:  # noqa: BLE001
            pass

    got_request_exception.connect(record_exception, app, weak=False)
