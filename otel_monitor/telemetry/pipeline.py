"""Builds one process's OpenTelemetry pipeline from :class:`~otel_monitor.settings.Settings`.

Resource, TracerProvider (sampler, batch span processor, exporters), MeterProvider (one
cumulative pull reader that feeds ``/metrics``, OTLP push, the analytics and the worker merge),
the request instruments and the system gauges: all made here and nowhere else.
"""

from __future__ import annotations

# Before any MeterProvider exists: the SDK's MeterProvider re-detects its resource in a fork
# handler using a thread pool, and concurrent.futures' own fork handler (which releases its
# global lock in the child) must be registered first, or a worker forked after an exporter first
# imported concurrent.futures waits on that lock for ever.
import concurrent.futures.thread  # noqa: F401 - imported for its side effect (see above)
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, Tracer, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter

    from ..monitor import Monitor

from .. import __about__
from .._safe_log import log_internal_error
from ..metrics._reader import MonitorReader
from ..metrics._temporality import DeltaConverter
from ..metrics.metrics_view import Channel, LocalView, MetricsView
from ..request._propagation import build_propagator
from ..request._request_metrics import RequestMetrics
from ..request._request_path import ServingSignal, finish_unclosed
from ..request._server_span import ServerSpans, SpanProcessors
from ..settings import DURATION_BUCKETS_DEFAULT, Settings
from ._background import Scheduler
from ._export_accounting import ExportStatus, account, count_unexported_at_shutdown, sdk_internal_metrics, watch_metrics
from ._ids import id_generator

_logger = logging.getLogger("otel_monitor")

SCOPE = "otel_monitor"
#: the semantic-conventions version our attribute and metric names follow (stable HTTP conventions)
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
#: the default http.server.request.duration boundaries (``http_server_duration_buckets`` sets them)
DURATION_BUCKETS = DURATION_BUCKETS_DEFAULT
SIZE_BUCKETS = (0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)


def _sampler(settings: Settings) -> sampling.Sampler:
    name, ratio = settings.traces_sampler, settings.traces_sampler_arg
    root = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
    }
    if name.startswith("parentbased_"):
        return sampling.ParentBased(root[name[len("parentbased_") :]])
    return root[name]


def _exporter_names(configured: tuple[str, ...] | None, settings: Settings, endpoint: str | None) -> tuple[str, ...]:
    if configured is not None:
        return configured
    return ("otlp",) if (settings.otlp_endpoint or endpoint) else ()


def _otlp_target(settings: Settings, signal: str) -> tuple[str, str, dict[str, str]]:
    protocol = getattr(settings, f"otlp_{signal}_protocol") or settings.otlp_protocol
    endpoint = getattr(settings, f"otlp_{signal}_endpoint")
    # Per-signal headers replace the general ones (the specification): a per-signal endpoint at
    # another vendor must not receive the general credentials. gRPC metadata keys must be lower
    # case (HTTP/2), and HTTP header names are case-insensitive, so both get lower-case keys.
    headers = getattr(settings, f"otlp_{signal}_headers") or settings.otlp_headers
    headers = {key.lower(): value for key, value in headers.items()}
    if endpoint is None:
        base = settings.otlp_endpoint or ("http://localhost:4317" if protocol == "grpc" else "http://localhost:4318")
        endpoint = base if protocol == "grpc" else base.rstrip("/") + f"/v1/{signal}"
    return protocol, endpoint, headers


#: (signal, protocol or "console") -> (module, class): imported only when configured
_EXPORTERS = {
    ("traces", "console"): ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter"),
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("traces", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("metrics", "console"): ("opentelemetry.sdk.metrics.export", "ConsoleMetricExporter"),
    ("metrics", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    ("metrics", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ("logs", "console"): ("opentelemetry.sdk._logs.export", "ConsoleLogRecordExporter"),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
}

#: the same exporters serialising span batches with otel_monitor.telemetry._otlp_encode (setting otlp_traces_encoder)
_FAST_SPAN_EXPORTERS = {
    "grpc": ("otel_monitor.telemetry._otlp_grpc", "FastGrpcOTLPSpanExporter"),
    "http/protobuf": ("otel_monitor.telemetry._otlp_encode", "FastOTLPSpanExporter"),
}


def _exporters(settings: Settings, signal: str) -> list[Any]:
    import importlib

    configured = getattr(settings, f"{signal}_exporter")
    result = []
    for name in _exporter_names(configured, settings, getattr(settings, f"otlp_{signal}_endpoint")):
        kwargs: dict[str, Any] = {}
        if name == "otlp":
            name, endpoint, headers = _otlp_target(settings, signal)
            kwargs = {"endpoint": endpoint, "headers": headers, "timeout": settings.otlp_timeout}
            if name == "grpc":
                kwargs["insecure"] = endpoint.startswith("http://")
            else:  # the export accounting reads each response's status and Retry-After through it
                from ._export_session import export_session

                session = export_session(signal)
                if session is not None:
                    kwargs["session"] = session
        module, cls = _EXPORTERS[(signal, name)]
        if signal == "traces" and settings.otlp_traces_encoder == "fast":
            module, cls = _FAST_SPAN_EXPORTERS.get(name, (module, cls))
        result.append(getattr(importlib.import_module(module), cls)(**kwargs))
    return result


def span_exporters(settings: Settings) -> list[SpanExporter]:
    return _exporters(settings, "traces")


def metric_exporters(settings: Settings) -> list[MetricExporter]:
    return _exporters(settings, "metrics")


def log_exporters(settings: Settings) -> list[LogRecordExporter]:
    return _exporters(settings, "logs")


def build_resource(settings: Settings, service_name: str, instance_id: str) -> Resource:
    """Exactly the settings' precedence: nothing re-read from the environment here."""
    import platform

    attributes: dict[str, str | int] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": _sdk_version(),
        "telemetry.distro.name": "otel_monitor",
        "telemetry.distro.version": __about__.__version__,
        "process.runtime.name": platform.python_implementation().lower(),
        "process.runtime.version": platform.python_version(),
        **settings.resource_attributes,
        "service.name": service_name,
        "service.instance.id": instance_id,
        "process.pid": os.getpid(),
    }
    if "host.name" not in attributes:
        attributes["host.name"] = platform.node()
    if (
        settings.service_version
    ):  # resolved by the monitor (otel_monitor.telemetry._version): wins, as service_name does
        attributes["service.version"] = settings.service_version
    return Resource(attributes)


def _sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("opentelemetry-sdk")
    except Exception:  # noqa: BLE001 - any metadata failure reads as an unknown version
        return "unknown"


T = TypeVar("T")


@dataclass(eq=False)
class Pipeline:
    """One process's providers, reader, exporters and instruments. Build with :func:`build_pipeline`."""

    settings: Settings
    resource: Resource
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: MonitorReader
    scheduler: Scheduler
    #: the request histograms, aggregated in one step per request (the reader adds them to every collection)
    request_metrics: RequestMetrics
    metric_exporters: list[MetricExporter] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    #: requests recorded by this pipeline (a cheap "anything new?" signal for background jobs)
    requests_seen: int = 0
    #: key -> producer of a JSON-able value every worker publishes (see :meth:`share`)
    shared: dict[str, Callable[[], object]] = field(default_factory=dict)
    #: run at shutdown after the last export (the multiprocess support archives the worker's counts)
    shutdown_hooks: list[Callable[[], None]] = field(default_factory=list)
    #: the SDK LoggerProvider exporting Python logging records (None: no logs exporter configured)
    logger_provider: LoggerProvider | None = None
    #: what every consumer reads, chosen when the pipeline is built (see otel_monitor.metrics.metrics_view)
    view: MetricsView | None = None
    #: builds :attr:`view` for the new pipeline (a pre-fork worker's or master's); None: this process's own
    view_for: Callable[[Pipeline], MetricsView] | None = None
    #: the Monitor this pipeline belongs to (None for a bare wrap() without one)
    monitor: Monitor | None = None
    #: the separate metrics port's server, when this process opened it
    metrics_server: WSGIServer | None = None
    #: the SDK instruments behind the Monitor's counter()/histogram()/... handles, by name and kind
    instruments: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: how each signal's last export ended (``/health`` reports exports failing)
    exports: ExportStatus = field(default_factory=ExportStatus)
    #: starts the request spans in a light structure (see otel_monitor.request._server_span); None: the SDK's
    server_spans: ServerSpans | None = None

    def __post_init__(self) -> None:
        # the SDK's TracerProvider makes SDK tracers (the request path reads their sampler)
        self.tracer = cast(Tracer, self.tracer_provider.get_tracer(SCOPE, __about__.__version__, SCHEMA_URL))
        #: the sampler built from the settings: an SDK sampler that never reads span attributes
        self.settings_sampler = self.tracer_provider.sampler
        self.meter = self.meter_provider.get_meter(SCOPE, __about__.__version__, SCHEMA_URL)
        self.propagator = build_propagator(self.settings.propagators)
        #: WSGI environ keys of the propagators' headers: extraction runs only when one is present
        self.extract_keys = tuple(sorted({"HTTP_" + f.upper().replace("-", "_") for f in self.propagator.fields}))
        if self.view is None:
            self.view = (
                self.view_for(self) if self.view_for is not None else LocalView(self.reader.snapshot, self.shared)
            )
        # In-flight requests are counted by membership in a set (atomic under the GIL) and read
        # only when a reader collects: no SDK measurement per request for this instrument.
        self.active: set[Any] = set()
        self.active_keys: set[tuple[str, str]] = set()  # (method, scheme) seen: reported as 0 when idle
        #: thread ident -> the request that thread is serving now (read by the sampling profiler,
        #: otel_monitor.analytics.profiler; written by the request path at start and finish)
        self.serving: dict[int, Any] = {}
        #: cleared by the profiler when it goes idle, set by the next request to start: wakes it
        self.serving_started = ServingSignal()
        self.meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self._shutdown_done = False
        self._delta = DeltaConverter()

    def serve_group(self, view: MetricsView) -> None:
        """The one change of view after the build: a pre-fork master that bound the metrics port
        before its workers forked shows the group's numbers from then on (telemetry._runtime)."""
        self.view = view

    def _observe_active(self, options: CallbackOptions) -> list[Observation]:
        finish_unclosed(self.active)  # responses ended without close() count before this reading

        counts: dict[tuple[str, str], int] = dict.fromkeys(list(self.active_keys), 0)
        for request in list(self.active):
            key = (request.method, request.scheme)
            counts[key] = counts.get(key, 0) + 1
        return [
            Observation(count, {"http.request.method": key[0], "url.scheme": key[1]})
            for key, count in sorted(counts.items())
        ]

    # -- what the analytics and other in-process consumers read (all workers, when pre-forked) --

    def collect_all(self) -> MetricsData | None:
        """Cumulative metrics of the group (every worker, when pre-forked); never writes files."""
        assert self.view is not None
        return self.view.read()

    def share(self, channel: Channel[T], produce: Callable[[], T]) -> None:
        """Publish a JSON-able value on ``channel``; :meth:`gather` returns it from every worker."""
        self.shared[channel.name] = produce

    def gather(self, channel: Channel[T]) -> list[object]:
        """The values ``share``d on ``channel`` by every live worker (just this one when not pre-forked):
        the other workers' as JSON read back, so each reader checks what it gets."""
        assert self.view is not None
        return self.view.gather(channel.name)

    @property
    def instance_id(self) -> str:
        return str(self.resource.attributes["service.instance.id"])

    def export_metrics(self) -> None:
        """Push this process's metrics to the configured metric exporters (OTLP, console)."""
        if not self.metric_exporters:
            return
        data = self.reader.snapshot()
        if data is None:
            return
        if self.settings.otlp_metrics_temporality != "cumulative":
            data = self._delta.convert(data)
        # As the SDK's periodic reader does: an instrumented HTTP or gRPC client (RequestsInstrumentor,
        # say) must not turn our own export into a span or a metric.
        token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            for exporter in self.metric_exporters:
                try:
                    exporter.export(data, timeout_millis=self.settings.otlp_timeout * 1000)
                except Exception:  # noqa: BLE001 - a failing exporter must not stop the export loop
                    log_internal_error("exporting metrics")
        finally:
            otel_context.detach(token)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop, in at most ``timeout`` seconds (default: the shutdown_timeout setting).

        Never raises; returns False when the time ran out (the rest is abandoned: the work runs
        in a daemon thread, so it cannot hold the process open).
        """
        if self._shutdown_done:
            return True
        self._shutdown_done = True
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        worker = threading.Thread(target=self._shutdown, name="otel_monitor-shutdown", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            _logger.warning("otel_monitor: telemetry flush did not finish within %.1fs; the rest is dropped", timeout)
            return False
        return True

    def _shutdown(self) -> None:
        steps = (
            self.scheduler.stop,
            self.export_metrics,
            *self.shutdown_hooks,
            self.tracer_provider.shutdown,
            *((self.logger_provider.shutdown,) if self.logger_provider is not None else ()),
            self.meter_provider.shutdown,
        )
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - MeterProvider.shutdown raises on a second call
                log_internal_error("shutting down telemetry")
        for exporter in self.metric_exporters:
            try:
                exporter.shutdown(timeout_millis=1000)
            except Exception:  # noqa: BLE001 - shutdown goes on with the other exporters
                log_internal_error("shutting down a metric exporter")


def _batch_processor(
    exporter: SpanExporter, meter_provider: MeterProvider, settings: Settings, exports: ExportStatus | None = None
) -> BatchSpanProcessor:
    """A bounded batch processor whose drops are counted on our meter.

    The SDK reports ``otel.sdk.processor.span.processed`` (``error.type=queue_full`` for drops) and
    the queue size/capacity only when OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED is set when the
    processor is built; dropping spans silently is not acceptable, so we set it for that moment.
    """
    with sdk_internal_metrics():
        processor: BatchSpanProcessor = count_unexported_at_shutdown(
            BatchSpanProcessor(
                account(exporter, meter_provider, exports, timeout_s=settings.otlp_timeout),
                max_queue_size=settings.bsp_max_queue_size,
                schedule_delay_millis=settings.bsp_schedule_delay,
                max_export_batch_size=min(settings.bsp_max_export_batch_size, settings.bsp_max_queue_size),
                export_timeout_millis=settings.bsp_export_timeout,
                meter_provider=meter_provider,
            )
        )
    return processor


def request_metrics_for(settings: Settings, push: bool) -> RequestMetrics:
    """The request histograms, aggregated in one step per request (see _request_metrics)."""
    return RequestMetrics(
        tuple(settings.http_server_duration_buckets),
        SIZE_BUCKETS,
        all_exemplars=push,
        body_sizes=settings.metrics_body_size,
        exemplar_filter=settings.metrics_exemplar_filter or "trace_based",
    )


def build_pipeline(
    settings: Settings,
    service_name: str,
    *,
    setup_hooks: tuple[Callable[[Pipeline], None], ...] = (),
    view_for: Callable[[Pipeline], MetricsView] | None = None,
) -> Pipeline:
    """Build this process's pipeline. Call it in the process that will use it (after any fork).

    ``view_for`` builds the pipeline's view (a pre-fork worker's or master's) while the pipeline is
    built; without it the pipeline reads its own numbers (:class:`~otel_monitor.metrics.metrics_view.LocalView`)."""
    instance_id = str(uuid.uuid4())
    resource = build_resource(settings, service_name, instance_id)
    exports = ExportStatus()
    metric_push = [watch_metrics(exporter, exports) for exporter in metric_exporters(settings)]
    request_metrics = request_metrics_for(settings, bool(metric_push))
    reader = MonitorReader(resource, extra_metrics=request_metrics.collect, extra_scope=SCOPE)
    # Offering every measurement of the SDK's instruments to a reservoir costs more than all the
    # rest of their metric path, and /metrics shows exemplars only on the request histogram (kept
    # by otel_monitor.request._request_metrics): unless OTEL_METRICS_EXEMPLAR_FILTER says otherwise, the
    # SDK's filter is trace-based only for a push exporter.
    exemplar_filter = {
        "always_on": AlwaysOnExemplarFilter,
        "always_off": AlwaysOffExemplarFilter,
        "trace_based": TraceBasedExemplarFilter,
        None: TraceBasedExemplarFilter if metric_push else AlwaysOffExemplarFilter,
    }[settings.metrics_exemplar_filter]()
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader], shutdown_on_exit=False, exemplar_filter=exemplar_filter
    )
    # The provider's processors and limits, built here so the request spans share them (_server_span).
    processors = SpanProcessors()
    limits = SpanLimits()
    ids = id_generator(settings.id_generator)
    sampler = _sampler(settings)
    tracer_provider = TracerProvider(
        resource=resource,
        sampler=sampler,
        shutdown_on_exit=False,
        active_span_processor=processors,
        id_generator=ids,
        span_limits=limits,
    )
    for exporter in span_exporters(settings):
        tracer_provider.add_span_processor(_batch_processor(exporter, meter_provider, settings, exports))
    pipeline = Pipeline(
        settings=settings,
        resource=resource,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        reader=reader,
        scheduler=Scheduler(),
        metric_exporters=metric_push,
        exports=exports,
        request_metrics=request_metrics,
        view_for=view_for,
        server_spans=ServerSpans(
            processors,
            resource,
            ids,
            sampler,
            limits,
            InstrumentationScope(SCOPE, __about__.__version__, SCHEMA_URL),
            settings.traces_sampler,
            own_values_plain=not (settings.capture_headers_server_request or settings.capture_headers_server_response),
        ),
    )
    logs = log_exporters(settings)
    if logs:
        from ._logs import build_logger_provider

        pipeline.logger_provider = build_logger_provider(settings, resource, logs, meter_provider, exports)
    if settings.system_metrics:
        from ..metrics.system import register_system_metrics

        register_system_metrics(pipeline.meter)
    if pipeline.metric_exporters:
        pipeline.scheduler.every(settings.metric_export_interval / 1000, pipeline.export_metrics, "export metrics")
    for hook in setup_hooks:
        hook(pipeline)
    pipeline.scheduler.start()
    return pipeline
