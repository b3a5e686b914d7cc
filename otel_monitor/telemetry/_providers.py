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
from typing import TYPE_CHECKING, Generic, TypeVar

from opentelemetry import _logs as otel_logs
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry._logs._internal import ProxyLoggerProvider
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackT
from opentelemetry.metrics import _Gauge as APIGauge  # the API exports its Gauge under this name only
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import AnyValue, Attributes

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


def _pipeline_of(runtime: Runtime | None) -> Pipeline | None:
    if runtime is None:
        return None
    pipeline = runtime.current
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
        attributes: Attributes = None,
    ) -> None:
        self._target = target
        self._scope = (name, version, schema_url, attributes)
        self._cache: tuple[Pipeline | None, otel_trace.Tracer] = (None, _NOOP_TRACER)

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

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> otel_trace.Span:
        return self._tracer().start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=start_time,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        )

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[otel_trace.Span]:
        # Resolved on entry, not when called: ``@tracer.start_as_current_span("x")`` decorating a
        # function at import time must record once the pipeline exists (as the API's ProxyTracer).
        with self._tracer().start_as_current_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=start_time,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
            end_on_exit=end_on_exit,
        ) as span:
            yield span


class GlobalTracerProvider(otel_trace.TracerProvider):
    """The process's global tracer provider: tracers of the primary monitor's current pipeline."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> otel_trace.Tracer:
        return DelegatingTracer(
            primary_runtime, instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )

    def __getattr__(self, name: str) -> object:
        # SDK-only calls made on the global (add_span_processor, force_flush, resource, sampler)
        # reach the current pipeline's SDK provider.
        pipeline = _pipeline_of(primary_runtime())
        if pipeline is None:
            raise AttributeError(name)
        value: object = getattr(pipeline.tracer_provider, name)
        return value


# -- metrics ----------------------------------------------------------------------------------

_SynchronousT = TypeVar("_SynchronousT", bound=otel_metrics.Synchronous)
#: makes the instrument in a pipeline's SDK meter (the API call the user made, replayed)
_Create = Callable[[otel_metrics.Meter], _SynchronousT]


class _Synchronous(Generic[_SynchronousT]):
    """A counter/histogram/gauge whose measurements go to the current pipeline's instrument."""

    def __init__(self, meter: DelegatingMeter, name: str, create: _Create[_SynchronousT]) -> None:
        self._meter = meter
        self.name = name
        self._create = create
        self._cache: tuple[Pipeline | None, _SynchronousT | None] = (None, None)

    def _instrument(self) -> _SynchronousT | None:
        pipeline = _pipeline_of(self._meter._target())
        if pipeline is None:
            return None
        cached, instrument = self._cache
        if cached is not pipeline:
            instrument = self._create(self._meter._sdk_meter(pipeline))
            self._cache = (pipeline, instrument)
        return instrument


class _Counter(_Synchronous[otel_metrics.Counter], otel_metrics.Counter):
    def add(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        instrument = self._instrument()
        if instrument is not None:
            instrument.add(amount, attributes, context)


class _UpDownCounter(_Synchronous[otel_metrics.UpDownCounter], otel_metrics.UpDownCounter):
    def add(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        instrument = self._instrument()
        if instrument is not None:
            instrument.add(amount, attributes, context)


class _Histogram(_Synchronous[otel_metrics.Histogram], otel_metrics.Histogram):
    def record(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        instrument = self._instrument()
        if instrument is not None:
            instrument.record(amount, attributes, context)


class _Gauge(_Synchronous[APIGauge], APIGauge):
    def set(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        instrument = self._instrument()
        if instrument is not None:
            instrument.set(amount, attributes, context)


class _Observable:
    """An observable instrument: created again in every new pipeline of its runtime (callbacks kept)."""

    def __init__(
        self, meter: DelegatingMeter, name: str, create: Callable[[otel_metrics.Meter], otel_metrics.Asynchronous]
    ) -> None:
        self._meter = meter
        self.name = name
        self._create = create
        self._registered_in: weakref.WeakSet[Pipeline] = weakref.WeakSet()

    def register(self, pipeline: Pipeline) -> None:
        if pipeline is None or pipeline in self._registered_in:
            return
        self._create(self._meter._sdk_meter(pipeline))
        self._registered_in.add(pipeline)


class _ObservableCounter(_Observable, otel_metrics.ObservableCounter):
    pass


class _ObservableUpDownCounter(_Observable, otel_metrics.ObservableUpDownCounter):
    pass


class _ObservableGauge(_Observable, otel_metrics.ObservableGauge):
    pass


_ObservableT = TypeVar("_ObservableT", bound=_Observable)


class DelegatingMeter(otel_metrics.Meter):
    """A meter of whatever pipeline the runtime has now; instruments may be created at import time."""

    def __init__(
        self,
        target: RuntimeGetter,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> None:
        super().__init__(name, version, schema_url)
        self._target = target
        self._scope_attributes = attributes

    def _sdk_meter(self, pipeline: Pipeline) -> otel_metrics.Meter:
        return pipeline.meter_provider.get_meter(self.name, self.version, self.schema_url, self._scope_attributes)

    def _observable(self, handle: _ObservableT) -> _ObservableT:
        _observables.append(handle)
        runtime = self._target()
        if runtime is not None and runtime.current is not None:
            handle.register(runtime.current)
        return handle

    def create_counter(self, name: str, unit: str = "", description: str = "") -> otel_metrics.Counter:
        return _Counter(self, name, lambda meter: meter.create_counter(name, unit=unit, description=description))

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> otel_metrics.UpDownCounter:
        return _UpDownCounter(
            self, name, lambda meter: meter.create_up_down_counter(name, unit=unit, description=description)
        )

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> otel_metrics.Histogram:
        return _Histogram(
            self,
            name,
            lambda meter: meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=explicit_bucket_boundaries_advisory,
            ),
        )

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> APIGauge:
        return _Gauge(self, name, lambda meter: meter.create_gauge(name, unit=unit, description=description))

    def create_observable_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> otel_metrics.ObservableCounter:
        return self._observable(
            _ObservableCounter(
                self,
                name,
                lambda meter: meter.create_observable_counter(
                    name, callbacks=callbacks, unit=unit, description=description
                ),
            )
        )

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> otel_metrics.ObservableUpDownCounter:
        return self._observable(
            _ObservableUpDownCounter(
                self,
                name,
                lambda meter: meter.create_observable_up_down_counter(
                    name, callbacks=callbacks, unit=unit, description=description
                ),
            )
        )

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> otel_metrics.ObservableGauge:
        return self._observable(
            _ObservableGauge(
                self,
                name,
                lambda meter: meter.create_observable_gauge(
                    name, callbacks=callbacks, unit=unit, description=description
                ),
            )
        )


class GlobalMeterProvider(otel_metrics.MeterProvider):
    """The process's global meter provider: meters of the primary monitor's current pipeline."""

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> otel_metrics.Meter:
        return DelegatingMeter(primary_runtime, name, version, schema_url, attributes)

    def __getattr__(self, name: str) -> object:
        pipeline = _pipeline_of(primary_runtime())
        if pipeline is None:
            raise AttributeError(name)
        value: object = getattr(pipeline.meter_provider, name)
        return value


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

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        return self._current().extract(carrier, context, getter)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        self._current().inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self._current().fields


_fallback: TextMapPropagator | None = None


# -- logs -------------------------------------------------------------------------------------


class DelegatingLogger(otel_logs.Logger):
    """An OpenTelemetry API logger of the primary monitor's current pipeline (no-op without logs)."""

    def __init__(
        self, name: str, version: str | None = None, schema_url: str | None = None, attributes: Attributes = None
    ) -> None:
        super().__init__(name, version, schema_url, attributes)
        self._cache: tuple[Pipeline | None, otel_logs.Logger | None] = (None, None)

    def _logger(self) -> otel_logs.Logger | None:
        runtime = primary_runtime()
        pipeline = runtime.current if runtime is not None else None
        if pipeline is None or pipeline.logger_provider is None:
            return None
        cached, logger = self._cache
        if cached is not pipeline:
            logger = pipeline.logger_provider.get_logger(self._name, self._version, self._schema_url, self._attributes)
            self._cache = (pipeline, logger)
        return logger

    def emit(
        self,
        record: LogRecord | None = None,
        *,
        timestamp: int | None = None,
        observed_timestamp: int | None = None,
        context: Context | None = None,
        severity_number: SeverityNumber | None = None,
        severity_text: str | None = None,
        body: AnyValue | None = None,
        attributes: Attributes = None,
        event_name: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        logger = self._logger()
        if logger is None:
            return
        if record is not None:
            logger.emit(record)
        else:
            logger.emit(
                timestamp=timestamp,
                observed_timestamp=observed_timestamp,
                context=context,
                severity_number=severity_number,
                severity_text=severity_text,
                body=body,
                attributes=attributes,
                event_name=event_name,
                exception=exception,
            )

    def enabled(
        self,
        *,
        context: Context | None = None,
        severity_number: SeverityNumber | None = None,
        event_name: str | None = None,
    ) -> bool:
        logger = self._logger()
        return logger is not None and logger.enabled(
            context=context, severity_number=severity_number, event_name=event_name
        )


class GlobalLoggerProvider(otel_logs.LoggerProvider):
    """The process's global OpenTelemetry logger provider (``opentelemetry._logs``), delegating."""

    def get_logger(
        self, name: str, version: str | None = None, schema_url: str | None = None, attributes: Attributes = None
    ) -> otel_logs.Logger:
        return DelegatingLogger(name, version, schema_url, attributes)


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
            _ProxyMeterProvider,
            otel_metrics.set_meter_provider,
            GlobalMeterProvider,
        )
        _installed["logs"] = _install(
            otel_logs.get_logger_provider(),
            ProxyLoggerProvider,
            otel_logs.set_logger_provider,
            GlobalLoggerProvider,
        )
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


_ProviderT = TypeVar("_ProviderT")


def _install(
    current: _ProviderT, proxy_class: type[_ProviderT], setter: Callable[[_ProviderT], None], ours: type[_ProviderT]
) -> str:
    """``ours`` unless the application set its own provider (``current`` is not the API's proxy)."""
    if isinstance(current, ours):
        return "ours"
    if not isinstance(current, proxy_class):
        return "theirs"
    setter(ours())
    return "ours"


def installed() -> dict[str, str]:
    """Which globals this process uses: signal -> ``"ours"`` or ``"theirs"`` (empty: not yet decided)."""
    return dict(_installed)
