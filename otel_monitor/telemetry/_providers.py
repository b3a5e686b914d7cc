"""Tracers, meters and the OpenTelemetry global providers, delegating to the current process's pipeline.

A pipeline belongs to one process and is rebuilt after a fork (see ``_runtime``). Anything handed
out to user code — the global providers, ``trace.get_tracer(__name__)`` taken at import time,
``monitor.tracer`` taken before ``init_app`` — must therefore not hold a pipeline: it holds a way
to find the *runtime* and resolves that runtime's current pipeline when it is used (one attribute
read and one identity check per call once the pipeline exists).

The global providers are installed once per process, by the first monitor that builds a pipeline,
and delegate to the first monitor of the process that is still open (the next one takes over when
it is shut down, so a test suite creating many monitors keeps working). If the application set
its own SDK providers first, they are left in place and we say so once in the log.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.propagators.textmap import TextMapPropagator, default_getter, default_setter
from opentelemetry.util._decorator import _agnosticcontextmanager

if TYPE_CHECKING:
    from ._runtime import Runtime
    from .pipeline import Pipeline

_logger = logging.getLogger("otel_monitor")

#: -> the runtime whose pipeline a tracer or meter writes to (None: monitoring off or not attached)
RuntimeGetter = Callable[[], "Runtime | None"]

_NOOP_TRACER = otel_trace.NoOpTracer()
_NOOP_METER = otel_metrics.NoOpMeter("otel_monitor")

# Runtimes in the order their first pipeline was built; the first open one serves the globals.
_order: list[weakref.ref[Runtime]] = []
_order_lock = threading.Lock()
_installed: dict[str, str] = {}  # signal -> "ours" | "theirs", once per process (survives fork)
# Held strongly, as the SDK's meters hold their instruments: callers often drop the handle.
_observables: list[_Observable] = []


def register(runtime: Runtime) -> None:
    """Put ``runtime`` in line to serve the global providers (idempotent)."""
    with _order_lock:
        if not any(ref() is runtime for ref in _order):
            _order.append(weakref.ref(runtime))


def primary_runtime() -> Runtime | None:
    """The first registered runtime of this process that is still open."""
    for ref in list(_order):
        runtime = ref()
        if runtime is not None and not runtime.closed:
            return runtime
    return None


def _pipeline_of(runtime: Runtime | None) -> Any:
    if runtime is None:
        return None
    pipeline = runtime._pipeline
    return pipeline if pipeline is not None else runtime.pipeline()


# -- tracing ----------------------------------------------------------------------------------


class DelegatingTracer(otel_trace.Tracer):
    """A tracer of whatever pipeline the runtime has now: records after ``init_app`` and after a fork."""

    def __init__(
        self,
        target: RuntimeGetter,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> None:
        self._target = target
        self._scope = (name, version, schema_url, attributes)
        self._cache: tuple[Any, otel_trace.Tracer] = (None, _NOOP_TRACER)

    def _tracer(self) -> otel_trace.Tracer:
        pipeline = _pipeline_of(self._target())
        if pipeline is None:
            return _NOOP_TRACER
        cached, tracer = self._cache
        if cached is not pipeline:
            name, version, schema_url, attributes = self._scope
            tracer = pipeline.tracer_provider.get_tracer(name, version, schema_url, attributes)
            self._cache = (pipeline, tracer)
        return tracer

    def start_span(self, *args: Any, **kwargs: Any) -> otel_trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    @_agnosticcontextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[otel_trace.Span]:
        # Resolved on entry, not when called: ``@tracer.start_as_current_span("x")`` decorating a
        # function at import time must record once the pipeline exists (as the API's ProxyTracer).
        with self._tracer().start_as_current_span(*args, **kwargs) as span:
            yield span


class GlobalTracerProvider(otel_trace.TracerProvider):
    """The process's global tracer provider: tracers of the primary monitor's current pipeline."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> otel_trace.Tracer:
        return DelegatingTracer(
            primary_runtime, instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )

    def __getattr__(self, name: str) -> Any:
        # SDK-only calls made on the global (add_span_processor, force_flush, resource, sampler)
        # reach the current pipeline's SDK provider.
        pipeline = _pipeline_of(primary_runtime())
        if pipeline is None:
            raise AttributeError(name)
        return getattr(pipeline.tracer_provider, name)


# -- metrics ----------------------------------------------------------------------------------


class _Synchronous:
    """A counter/histogram/gauge whose measurements go to the current pipeline's instrument."""

    def __init__(self, meter: DelegatingMeter, create: str, name: str, kwargs: dict[str, Any]) -> None:
        self._meter = meter
        self._create = create
        self.name = name
        self._kwargs = kwargs
        self._cache: tuple[Any, Any] = (None, None)

    def _instrument(self) -> Any:
        pipeline = _pipeline_of(self._meter._target())
        if pipeline is None:
            return None
        cached, instrument = self._cache
        if cached is not pipeline:
            instrument = getattr(self._meter._sdk_meter(pipeline), self._create)(self.name, **self._kwargs)
            self._cache = (pipeline, instrument)
        return instrument

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        instrument = self._instrument()
        if instrument is not None:
            instrument.add(amount, attributes, context)

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        instrument = self._instrument()
        if instrument is not None:
            instrument.record(amount, attributes, context)

    def set(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        instrument = self._instrument()
        if instrument is not None:
            instrument.set(amount, attributes, context)


class _Observable:
    """An observable instrument: created again in every new pipeline of its runtime (callbacks kept)."""

    def __init__(self, meter: DelegatingMeter, create: str, name: str, kwargs: dict[str, Any]) -> None:
        self._meter = meter
        self._create = create
        self.name = name
        self._kwargs = kwargs
        self._registered_in: weakref.WeakSet[Pipeline] = weakref.WeakSet()

    def register(self, pipeline: Pipeline) -> None:
        if pipeline is None or pipeline in self._registered_in:
            return
        getattr(self._meter._sdk_meter(pipeline), self._create)(self.name, **self._kwargs)
        self._registered_in.add(pipeline)


class DelegatingMeter(otel_metrics.Meter):
    """A meter of whatever pipeline the runtime has now; instruments may be created at import time."""

    def __init__(
        self,
        target: RuntimeGetter,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> None:
        super().__init__(name, version, schema_url)
        self._target = target
        self._scope_attributes = attributes

    def _sdk_meter(self, pipeline: Pipeline) -> Any:
        return pipeline.meter_provider.get_meter(self.name, self.version, self.schema_url, self._scope_attributes)

    def _sync(self, create: str, name: str, **kwargs: Any) -> Any:
        return _Synchronous(self, create, name, kwargs)

    def _observable(self, create: str, name: str, **kwargs: Any) -> Any:
        handle = _Observable(self, create, name, kwargs)
        _observables.append(handle)
        runtime = self._target()
        if runtime is not None and runtime._pipeline is not None:
            handle.register(runtime._pipeline)
        return handle

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._sync("create_counter", name, unit=unit, description=description)

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._sync("create_up_down_counter", name, unit=unit, description=description)

    def create_histogram(self, name: str, unit: str = "", description: str = "", **advisory: Any) -> Any:
        return self._sync("create_histogram", name, unit=unit, description=description, **advisory)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._sync("create_gauge", name, unit=unit, description=description)

    def create_observable_counter(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> Any:
        return self._observable(
            "create_observable_counter", name, callbacks=callbacks, unit=unit, description=description
        )

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> Any:
        return self._observable(
            "create_observable_up_down_counter", name, callbacks=callbacks, unit=unit, description=description
        )

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> Any:
        return self._observable(
            "create_observable_gauge", name, callbacks=callbacks, unit=unit, description=description
        )


class GlobalMeterProvider(otel_metrics.MeterProvider):
    """The process's global meter provider: meters of the primary monitor's current pipeline."""

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> otel_metrics.Meter:
        return DelegatingMeter(primary_runtime, name, version, schema_url, attributes)

    def __getattr__(self, name: str) -> Any:
        pipeline = _pipeline_of(primary_runtime())
        if pipeline is None:
            raise AttributeError(name)
        return getattr(pipeline.meter_provider, name)


def on_pipeline(runtime: Runtime, pipeline: Pipeline) -> None:
    """A runtime built a pipeline (first time, or after a fork): observable instruments follow it.

    Runs inside ``Runtime.pipeline()`` (its lock held): nothing here may ask a runtime for its pipeline.
    """
    for handle in list(_observables):
        try:
            if handle._meter._target() is runtime:
                handle.register(pipeline)
        except Exception:  # a bad user callback spec must not stop the pipeline
            _logger.warning("otel_monitor: could not register observable instrument %r", handle.name, exc_info=True)


# -- propagation ------------------------------------------------------------------------------


class GlobalPropagator(TextMapPropagator):
    """The global textmap: the primary monitor's OTEL_PROPAGATORS, so outgoing calls made by contrib
    client instrumentations inject what incoming requests are read with."""

    def _current(self) -> TextMapPropagator:
        pipeline = _pipeline_of(primary_runtime())
        if pipeline is not None:
            propagator: TextMapPropagator = pipeline.propagator
            return propagator
        global _fallback
        if _fallback is None:
            from ..request._propagation import build_propagator

            _fallback = build_propagator(("tracecontext", "baggage"))
        return _fallback

    def extract(self, carrier: Any, context: Any = None, getter: Any = default_getter) -> Any:
        return self._current().extract(carrier, context, getter)

    def inject(self, carrier: Any, context: Any = None, setter: Any = default_setter) -> None:
        self._current().inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self._current().fields


_fallback: TextMapPropagator | None = None


# -- installing the globals -------------------------------------------------------------------


def install_globals() -> None:
    """Make otel_monitor the process's OpenTelemetry set-up, unless the application already has one.

    Once per process: the delegating providers keep serving the right pipeline after a fork.
    """
    with _order_lock:
        if _installed:
            return
        _installed["traces"] = _install(
            otel_trace.get_tracer_provider(),
            otel_trace.ProxyTracerProvider,
            otel_trace.set_tracer_provider,
            GlobalTracerProvider,
        )
        _installed["metrics"] = _install(
            otel_metrics.get_meter_provider(),
            _proxy_meter_provider_class(),
            otel_metrics.set_meter_provider,
            GlobalMeterProvider,
        )
        _installed["logs"] = _install_logger_provider()
    theirs = [signal for signal, who in _installed.items() if who == "theirs"]
    if theirs:
        _logger.info(
            "otel_monitor: the application set its own OpenTelemetry %s provider(s); leaving them in place "
            "(spans and metrics made through them go to the application's pipeline, not to otel_monitor's)",
            " and ".join(theirs),
        )
    if _installed.get("traces") == "ours":
        from opentelemetry import propagate

        propagate.set_global_textmap(GlobalPropagator())


def _install(current: Any, proxy_class: type, setter: Callable[[Any], None], ours: type) -> str:
    if isinstance(current, ours):
        return "ours"
    if not isinstance(current, proxy_class):
        return "theirs"
    setter(ours())
    return "ours"


class DelegatingLogger:
    """An OpenTelemetry API logger of the primary monitor's current pipeline (no-op without logs)."""

    def __init__(self, scope: tuple[Any, ...]) -> None:
        self._scope = scope
        self._cache: tuple[Any, Any] = (None, None)

    def _logger(self) -> Any:
        runtime = primary_runtime()
        pipeline = runtime._pipeline if runtime is not None else None
        if pipeline is None or pipeline.logger_provider is None:
            return None
        cached, logger = self._cache
        if cached is not pipeline:
            logger = pipeline.logger_provider.get_logger(*self._scope)
            self._cache = (pipeline, logger)
        return logger

    def emit(self, *args: Any, **kwargs: Any) -> None:
        logger = self._logger()
        if logger is not None:
            logger.emit(*args, **kwargs)

    def is_enabled(self, *args: Any, **kwargs: Any) -> bool:
        logger = self._logger()
        return bool(logger is not None and getattr(logger, "is_enabled", lambda *a, **k: True)(*args, **kwargs))


def global_logger_provider() -> Any:
    """The process's global OpenTelemetry logger provider (``opentelemetry._logs``), delegating."""
    from opentelemetry._logs import LoggerProvider as APILoggerProvider

    class GlobalLoggerProvider(APILoggerProvider):
        def get_logger(
            self, name: str, version: str | None = None, schema_url: str | None = None, attributes: Any = None
        ) -> Any:
            return DelegatingLogger((name, version, schema_url, attributes))

    return GlobalLoggerProvider()


def _install_logger_provider() -> str:
    from opentelemetry import _logs as otel_logs

    current = otel_logs.get_logger_provider()
    if type(current).__name__ == "GlobalLoggerProvider" and type(current).__module__ == __name__:
        return "ours"
    from opentelemetry._logs._internal import ProxyLoggerProvider

    if not isinstance(current, ProxyLoggerProvider):
        return "theirs"
    otel_logs.set_logger_provider(global_logger_provider())
    return "ours"


def _proxy_meter_provider_class() -> type:
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    return _ProxyMeterProvider


def installed() -> dict[str, str]:
    """Which globals this process uses: signal -> ``"ours"`` or ``"theirs"`` (empty: not yet decided)."""
    return dict(_installed)
