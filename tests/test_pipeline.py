"""What the pipeline builds from settings: exporters, endpoints, samplers."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from otel_monitor.settings import resolve_settings
from otel_monitor.telemetry.pipeline import _otlp_target, _sampler, metric_exporters, span_exporters


def test_no_endpoint_and_no_exporter_setting_means_no_push_exporters():
    settings = resolve_settings(environ={})
    assert span_exporters(settings) == [] and metric_exporters(settings) == []


def test_console_exporters_are_built_when_asked():
    settings = resolve_settings(environ={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"})
    assert [type(e) for e in span_exporters(settings)] == [ConsoleSpanExporter]
    assert [type(e) for e in metric_exporters(settings)] == [ConsoleMetricExporter]


def test_the_general_http_endpoint_gets_the_signal_path_and_per_signal_settings_win():
    settings = resolve_settings(
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=2",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9000/custom",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "b=3",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        }
    )
    assert _otlp_target(settings, "traces") == (
        "http/protobuf",
        "http://collector:4318/v1/traces",
        {"a": "1", "b": "2"},
    )
    # per-signal headers replace the general ones (OTLP exporter specification)
    assert _otlp_target(settings, "metrics") == ("grpc", "http://metrics:9000/custom", {"b": "3"})


def test_an_otlp_exporter_with_no_endpoint_uses_the_specification_default():
    settings = resolve_settings(environ={"OTEL_TRACES_EXPORTER": "otlp"})
    assert _otlp_target(settings, "traces")[1] == "http://localhost:4318/v1/traces"
    grpc = resolve_settings(environ={"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert _otlp_target(grpc, "traces")[1] == "http://localhost:4317"


def test_samplers_follow_the_standard_names():
    ratio = _sampler(
        resolve_settings(environ={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"})
    )
    assert isinstance(ratio, sampling.ParentBased)
    assert "0.1" in ratio.get_description()
    assert _sampler(resolve_settings(environ={"OTEL_TRACES_SAMPLER": "always_off"})) is sampling.ALWAYS_OFF
    assert isinstance(_sampler(resolve_settings(environ={})), sampling.ParentBased)  # the default


def test_delta_temporality_pushes_the_difference_since_the_last_export(monitors):
    from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, MetricExportResult

    from otel_monitor.testing import closing_client

    class Capture(MetricExporter):
        def __init__(self):
            super().__init__()
            self.exports = []

        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            self.exports.append(
                {m.name: m.data for rm in metrics_data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
            )
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            pass

    app, monitor = monitors.app(otlp_metrics_temporality="delta")
    capture = Capture()
    monitor.pipeline.metric_exporters = [capture]
    orders = monitor.counter("orders")
    client = closing_client(app)
    for _ in range(3):
        client.get("/")
    orders.add(5)
    monitor.pipeline.export_metrics()
    client.get("/")
    orders.add(2)
    monitor.pipeline.export_metrics()
    first, second = capture.exports
    assert first["orders"].data_points[0].value == 5 and second["orders"].data_points[0].value == 2
    assert second["orders"].aggregation_temporality is AggregationTemporality.DELTA
    duration = second["http.server.request.duration"]
    assert [p.count for p in duration.data_points] == [1]
    assert sum(duration.data_points[0].bucket_counts) == 1
    assert duration.aggregation_temporality is AggregationTemporality.DELTA
    assert second["http.server.active_requests"].aggregation_temporality is AggregationTemporality.CUMULATIVE


def test_the_view_is_chosen_while_the_pipeline_is_built_and_the_reader_gets_the_request_metrics():
    from otel_monitor.metrics.metrics_view import LocalView
    from otel_monitor.telemetry.pipeline import build_pipeline

    settings = resolve_settings({"traces_exporter": "none", "metrics_exporter": "none", "system_metrics": False})
    chosen = []

    def view_for(pipeline):
        view = LocalView(pipeline.reader.snapshot, pipeline.shared, own_only=True)
        chosen.append(view)
        return view

    seen_by_hooks = []
    pipeline = build_pipeline(settings, "svc", setup_hooks=(lambda p: seen_by_hooks.append(p.view),), view_for=view_for)
    try:
        assert len(chosen) == 1 and pipeline.view is chosen[0]
        assert seen_by_hooks == [chosen[0]]  # every setup hook already sees the chosen view
        assert pipeline.reader.extra_metrics == pipeline.request_metrics.collect  # given to the constructor
        default = build_pipeline(settings, "svc")
        assert isinstance(default.view, LocalView) and default.view is not chosen[0]
        default.shutdown(timeout=2)
    finally:
        pipeline.shutdown(timeout=2)
