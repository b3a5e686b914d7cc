"""``Monitor``: the Flask extension, ``wrap()`` for any WSGI app, and ``get_monitor()``.

Usage::

    app = Flask(__name__)
    monitor = Monitor(app)            # or Monitor() ... monitor.init_app(app) in a factory

    application = otel_monitor.wrap(application)   # any WSGI callable
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar, Union

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from . import __about__
from .metrics.exposition import metrics_app_for
from .metrics.instruments import Counter, Gauge, Histogram, UpDownCounter
from .request._enduser import Identity, IdentityLayer
from .request._enduser import install_flask_hooks as install_enduser_hooks
from .request._frameworks import default_service_name, install_route_hooks
from .request._request_path import EXCEPTION_KEY, RequestInstrumentation
from .settings import FIELDS, Settings, SettingsError, resolve_settings
from .telemetry import _providers
from .telemetry._providers import DelegatingMeter, DelegatingTracer
from .telemetry._runtime import Runtime
from .telemetry._version import module_root, with_version
from .telemetry.pipeline import SCHEMA_URL, SCOPE

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from flask import Blueprint, Flask
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

    from .analytics.auth import Auth
    from .telemetry.pipeline import Pipeline

__all__ = ["Monitor", "wrap", "get_monitor"]

_logger = logging.getLogger("otel_monitor")
EXTENSION_KEY = "otel_monitor"
#: app.extensions key of the app's own runtime (one monitor may serve several apps)
RUNTIME_KEY = "otel_monitor.runtime"
_last_monitor: weakref.ref[Monitor] | None = None
_FIELD_NAMES = {f.name for f in FIELDS}
#: what a gauge's callback returns: a number, or ``(value, attributes)`` pairs
GaugeReading = Union[float, "Iterable[tuple[float, Mapping[str, AttributeValue] | None]]"]
_H = TypeVar("_H", bound="Counter | Histogram | Gauge")


class Monitor:
    """One-line OpenTelemetry monitoring for a Flask app.

    Keyword arguments are settings (see :class:`~otel_monitor.settings.Settings`); they win over
    ``app.config["OTEL_MONITOR_<NAME>"]``, which wins over the environment, which wins over the
    defaults. A bad value raises :class:`~otel_monitor.settings.SettingsError` at ``init_app``.

    ``enduser_id``: a callable asked once per request, after the view, for the user it served
    (``lambda: current_user.get_id()`` with flask-login; return None for none). It goes on the
    SERVER span as ``enduser.id`` (hashed with ``enduser_id_hash``) and into ``<prefix>/users``;
    a view can also call :func:`otel_monitor.set_enduser`.
    """

    def __init__(
        self, app: Flask | None = None, *, enduser_id: Callable[[], object] | None = None, **settings: object
    ) -> None:
        if enduser_id is not None and not callable(enduser_id):
            raise SettingsError("enduser_id: expected a callable returning the request's user id (or None)")
        self._enduser_id = enduser_id
        unknown = sorted(set(settings) - _FIELD_NAMES)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        self._kwargs = settings
        #: the runtime of the app attached last: what the monitor serves outside a request
        self._runtime: Runtime | None = None
        self._settings: Settings | None = None
        #: every runtime this monitor made (one per app): all shut down by shutdown()
        self._runtimes: list[Runtime] = []
        self._handles: list[Counter | Histogram | Gauge] = []
        self._tracer: DelegatingTracer | None = None
        self._meter: DelegatingMeter | None = None
        #: the analytics' URL lines under a base URL, once they are mounted
        self._analytics_urls: Callable[[str], list[str]] | None = None
        global _last_monitor
        _last_monitor = weakref.ref(self)
        if app is not None:
            self.init_app(app)

    # -- attaching ---------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Attach to a Flask app. Calling it again for the same app does nothing.

        One monitor may serve several apps (an app factory called once per test, say): each app
        keeps its own settings and pipeline. Inside a request (or app context) the monitor's
        ``pipeline``, ``settings``, ``tracer`` and custom metrics are those of the current app;
        outside, those of the app attached last. ``shutdown()`` stops them all.
        """
        existing = app.extensions.get(EXTENSION_KEY)
        if existing is not None:
            if existing is not self:
                _logger.warning("otel_monitor: %r is already monitored; not instrumenting it twice", app.name)
            return
        settings = resolve_settings(self._kwargs, app.config, defaults={"service_name": app.name})
        app.extensions[EXTENSION_KEY] = self
        if settings.sdk_disabled:
            self._settings = settings
            return
        settings = with_version(settings, getattr(app, "root_path", None), getattr(app, "import_name", None))
        runtime = self._make_runtime(settings, settings.service_name or app.name)
        app.extensions[RUNTIME_KEY] = runtime
        from .metrics._metrics_route import guard_existing_metrics_route

        inner = app.wsgi_app
        metrics_app = guard_existing_metrics_route(app, inner, settings.metrics_path, metrics_wsgi_app_for(runtime))
        if settings.flask_instrumentation == "contrib":
            from .request import _contrib_flask

            _contrib_flask.instrument(app, lambda: runtime, settings, metrics_app)
        else:
            from .request._coexistence import claim_for_middleware

            claim_for_middleware(app)
            # the Flask way to add WSGI middleware (flask.Flask.wsgi_app's docstring)
            app.wsgi_app = RequestInstrumentation(  # type: ignore[method-assign]
                app.wsgi_app, runtime, settings, metrics_app
            )
            _install_flask_hooks(app)
        install_enduser_hooks(app, self._identity(settings, app))
        if settings.analytics:
            from .alerts import wiring as alerts
            from .analytics import install

            def add_alerts(blueprint: Blueprint, auth: Auth) -> None:
                alerts.attach(blueprint, runtime, settings, auth)  # the alerts read the analytics

            self._analytics_urls = install(self, app, runtime, add_alerts if alerts.enabled(settings) else None)
        runtime.pipeline()  # start exporting now; a forked child builds its own
        if settings.set_global and runtime.pipeline().logger_provider is not None:
            from .telemetry._logs import install_at_first_request

            # At the first request, once the app, Flask and the server have set up the console.
            install_at_first_request(app)

    def _identity(self, settings: Settings, app: Flask | None = None) -> Identity:
        """How this app's requests name their user (the hash key only matters when hashing)."""
        key: bytes | None = None
        if settings.enduser_id_hash:
            from .analytics.auth import resolve_secret_key

            given = settings.enduser_id_hash_key
            key = given.encode("utf-8") if given else resolve_secret_key(settings, app)
        return Identity(settings, self._enduser_id, key)

    def _make_runtime(self, settings: Settings, service_name: str) -> Runtime:
        self._settings = settings
        runtime = Runtime(settings, service_name)
        runtime.setup_hooks.append(functools.partial(self._on_pipeline, runtime))
        self._runtime = runtime
        self._runtimes.append(runtime)
        return runtime

    def _on_pipeline(self, runtime: Runtime, pipeline: Pipeline) -> None:
        pipeline.monitor = self
        if pipeline.settings.set_global:
            _providers.register(runtime)
            _providers.install_globals()
        _providers.on_pipeline(runtime, pipeline)
        if pipeline.settings.metrics_port:
            from .metrics._metrics_server import start_metrics_server

            start_metrics_server(pipeline, metrics_app_for(lambda: pipeline, pipeline.settings))
        for handle in self._handles:
            if isinstance(handle, Gauge) and handle._callback is not None:
                handle.register(pipeline)

    def _current_runtime(self) -> Runtime | None:
        """The current Flask app's runtime when this monitor serves several apps, else the only one."""
        if len(self._runtimes) > 1:
            try:
                from flask import current_app

                if current_app:
                    extensions = current_app.extensions
                    if extensions.get(EXTENSION_KEY) is self:
                        runtime: Runtime | None = extensions.get(RUNTIME_KEY)  # Flask's extensions: dict[str, Any]
                        return runtime
            except (ImportError, RuntimeError):
                pass
        return self._runtime

    # -- what users call ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._runtime is not None

    @property
    def settings(self) -> Settings:
        """The resolved settings (of the current app when this monitor serves several)."""
        runtime = self._current_runtime()
        if runtime is not None:
            return runtime.settings
        if self._settings is None:
            raise AttributeError("settings: the monitor is not attached to an app yet")
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value

    @property
    def pipeline(self) -> Pipeline | None:
        """This process's pipeline (providers, reader, registry); None when disabled or not attached."""
        return self._current_pipeline()

    def _current_pipeline(self) -> Pipeline | None:
        runtime = self._current_runtime()
        return runtime.pipeline() if runtime is not None else None

    @property
    def tracer(self) -> otel_trace.Tracer:
        """A tracer of this monitor's pipeline, safe to keep from import time on: it records once the
        monitor is attached, and in each worker after a fork (a no-op while disabled or unattached)."""
        if self._tracer is None:
            self._tracer = DelegatingTracer(self._current_runtime, SCOPE, __about__.__version__, SCHEMA_URL)
        return self._tracer

    @property
    def meter(self) -> otel_metrics.Meter:
        """A meter of this monitor's pipeline, safe to keep from import time on (like :attr:`tracer`);
        :meth:`counter` and friends add a cardinality bound."""
        if self._meter is None:
            self._meter = DelegatingMeter(self._current_runtime, SCOPE, __about__.__version__, SCHEMA_URL)
        return self._meter

    @property
    def tracer_provider(self) -> TracerProvider | None:
        pipeline = self._current_pipeline()
        return pipeline.tracer_provider if pipeline is not None else None

    @property
    def meter_provider(self) -> MeterProvider | None:
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
        self, name: str, description: str = "", callback: Callable[[], GaugeReading] | None = None, unit: str = "1"
    ) -> Gauge:
        handle = self._handle(Gauge(self._current_pipeline, name, unit, description, callback=callback))
        if callback is not None and self._runtime is not None and self._runtime.built:
            pipeline = self._current_pipeline()
            assert pipeline is not None  # built: _current_pipeline() returns the pipeline
            handle.register(pipeline)
        return handle

    def _handle(self, handle: _H) -> _H:
        self._handles.append(handle)
        return handle

    def describe_urls(self, base: str) -> list[str]:
        """What this monitor serves besides ``/metrics`` under ``base`` (``http://host:port``), one
        ``"name:  URL"`` line each: the analytics, ``/health`` and the dashboard (with the generated
        token when there is one); empty without analytics."""
        return self._analytics_urls(base) if self._analytics_urls is not None else []

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop this process's telemetry (every app's) within ``timeout`` seconds; never raises."""
        results = [runtime.shutdown(timeout) for runtime in self._runtimes]
        return all(results)


def wrap(
    application: WSGIApplication,
    monitor: Monitor | None = None,
    *,
    module: str | None = None,
    enduser_id: Callable[[], object] | None = None,
    **settings: object,
) -> WSGIApplication:
    """Monitor any WSGI callable: returns a WSGI callable with the same pipeline as ``Monitor``.

    The returned callable has a ``monitor`` attribute (for custom metrics, ``shutdown()``).
    Settings come from keyword arguments > environment > defaults. ``module``: the module that
    builds the app (``wrap(app, module=__name__)``, as Flask's ``import_name``): a Falcon, Bottle or
    Pyramid app's default ``service.name``, and where its checkout's version is looked for when the
    app object belongs to a framework's module.
    """
    if getattr(application, "otel_monitor", None) is not None:
        return application  # already wrapped
    extensions = getattr(application, "extensions", None)
    if isinstance(extensions, dict) and extensions.get(EXTENSION_KEY) is not None:
        # A Flask app with Monitor(app): its middleware already records each request once.
        _logger.info("otel_monitor: %r already has a Monitor; wrap() returns it unchanged", application)
        return application
    monitor = monitor or Monitor(None, enduser_id=enduser_id, **settings)
    # Django, Falcon and Bottle apps: their project's name, and their route templates (_frameworks).
    name = default_service_name(application, module) or _wsgi_name(application)
    resolved = resolve_settings(monitor._kwargs, defaults={"service_name": name})
    if resolved.sdk_disabled:
        monitor.settings = resolved
        return application
    app_module = getattr(application, "__module__", None)
    origin = app_module if app_module and app_module != "__main__" else (module or "__main__")
    resolved = with_version(resolved, module_root(origin) or module_root(module), origin)
    install_route_hooks(application)
    runtime = monitor._make_runtime(resolved, resolved.service_name or name)
    inner = IdentityLayer(application, monitor._identity(resolved), ask_at_return=True)
    wrapped = RequestInstrumentation(inner, runtime, resolved, metrics_wsgi_app_for(runtime))
    wrapped.monitor = monitor  # type: ignore[attr-defined]
    wrapped.otel_monitor = monitor  # type: ignore[attr-defined]
    if runtime.pipeline().logger_provider is not None and resolved.set_global:
        from .telemetry._logs import install_root_handler

        install_root_handler()  # the app is built (Django's LOGGING applied): its console is set up
    return wrapped


def get_monitor(app: object = None) -> Monitor | None:
    """The monitor of ``app``, else of the current Flask app, else the one created last."""
    if app is None:
        try:
            from flask import current_app

            # current_app is a werkzeug LocalProxy, which Flask's hints present as the Flask object
            app = current_app._get_current_object() if current_app else None  # type: ignore[attr-defined]
        except (ImportError, RuntimeError):
            app = None
    if app is not None and hasattr(app, "extensions"):
        found: Monitor | None = app.extensions.get(EXTENSION_KEY)
        if found is not None:
            return found
    return _last_monitor() if _last_monitor is not None else None


# -- helpers --------------------------------------------------------------------------------


def metrics_wsgi_app_for(runtime: Runtime) -> WSGIApplication:
    """/metrics for the pipeline of the current process (it changes after a fork)."""
    return metrics_app_for(runtime.pipeline, runtime.settings)


def _wsgi_name(application: object) -> str:
    module = getattr(application, "__module__", None) or "wsgi"
    return module if module != "__main__" else "wsgi_app"


def _install_flask_hooks(app: Flask) -> None:
    """Tell the middleware any exception the app handled.

    No hook runs per request for the route: the middleware reads the matched URL rule of Flask's
    request when the response starts (``request._request_path``). A before_request function or a
    URL value preprocessor would cost a Flask-level call per request (``ensure_sync``'s
    ``inspect.iscoroutinefunction``, or two ``request`` proxy look-ups).
    """
    from flask import got_request_exception, request

    def record_exception(sender: object, exception: BaseException, **extra: object) -> None:
        try:
            request.environ[EXCEPTION_KEY] = exception
        except Exception:  # noqa: BLE001 - the monitoring must never raise into the request
            pass

    got_request_exception.connect(record_exception, app, weak=False)
