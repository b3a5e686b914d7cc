"""otel_monitor is the process's OpenTelemetry set-up: user tracers and meters, taken at any time, record
into the current pipeline; the application's own SDK providers are respected; set_global=false opts out."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from flask import Flask
from opentelemetry import metrics, trace

from otel_monitor import Monitor
from otel_monitor.telemetry import _providers
from otel_monitor.testing import Telemetry, closing_client

from .conftest import ROOT


@pytest.fixture(autouse=True)
def _only_this_tests_monitors(monkeypatch):
    """Monitors other tests left open would otherwise serve the globals first; the observable
    instruments these tests create through the global meter are this test's only (they are kept
    for the process and follow every later primary monitor: a gauge without a description would
    reach the scrapes of the tests that run after this file)."""
    monkeypatch.setattr(_providers, "_order", [])
    monkeypatch.setattr(_providers, "_observables", [])


def _app_with_user_code(tracer, counter, monitor: Monitor | None = None, **settings) -> tuple[Flask, Monitor]:
    app = Flask("user_code")

    @app.get("/work")
    def work():
        with tracer.start_as_current_span("work") as span:
            span.set_attribute("user.attr", "x")
        counter.add(1, {"kind": "job"})
        return "done"

    settings.setdefault("system_metrics", False)
    settings.setdefault("analytics", False)
    if monitor is None:
        monitor = Monitor(app, **settings)
    else:
        monitor.init_app(app)
    return app, monitor


def test_a_tracer_and_a_counter_taken_at_import_time_record_into_the_monitors_pipeline():
    tracer = trace.get_tracer("user.module")  # before any monitor exists, as modules do at import
    counter = metrics.get_meter("user.module").create_counter("user.jobs")
    app, monitor = _app_with_user_code(tracer, counter)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/work")
    work, server = sorted(telemetry.spans(), key=lambda s: s.kind != trace.SpanKind.INTERNAL)
    assert (work.name, server.name) == ("work", "GET /work")
    assert work.parent.span_id == server.context.span_id
    assert work.context.trace_id == server.context.trace_id
    assert work.resource.attributes["service.instance.id"] == monitor.pipeline.instance_id
    assert telemetry.point("user.jobs", kind="job").value == 1
    monitor.shutdown(1)


def test_an_observable_gauge_created_before_the_monitor_is_read_at_collection():
    metrics.get_meter("user.module").create_observable_gauge(
        "user.queue.depth", callbacks=[lambda options: [metrics.Observation(7, {"queue": "q"})]]
    )
    app, monitor = _app_with_user_code(trace.get_tracer("u"), metrics.get_meter("u").create_counter("c"))
    assert Telemetry(monitor).point("user.queue.depth", queue="q").value == 7
    monitor.shutdown(1)


def test_monitor_tracer_and_meter_taken_before_init_app_record_after_it():
    monitor = Monitor(system_metrics=False, analytics=False)
    tracer, counter = monitor.tracer, monitor.meter.create_counter("factory.jobs")
    assert not tracer.start_span("before").is_recording()  # not attached yet: a no-op, not an error
    app, _ = _app_with_user_code(tracer, counter, monitor=monitor)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/work")
    assert sorted(s.name for s in telemetry.spans()) == ["GET /work", "work"]
    assert telemetry.point("factory.jobs", kind="job").value == 1
    monitor.shutdown(1)


def test_a_meters_instruments_are_the_apis_instrument_types_and_record_each_kind():
    monitor = Monitor(system_metrics=False, analytics=False)
    meter = monitor.meter
    counter = meter.create_counter("user.count")
    up_down = meter.create_up_down_counter("user.level")
    histogram = meter.create_histogram("user.size", explicit_bucket_boundaries_advisory=[10.0, 20.0])
    gauge = meter.create_gauge("user.temperature")
    observed = meter.create_observable_counter(
        "user.observed", callbacks=[lambda options: [metrics.Observation(3, {"k": "v"})]]
    )
    assert isinstance(counter, metrics.Counter) and isinstance(up_down, metrics.UpDownCounter)
    assert isinstance(histogram, metrics.Histogram) and isinstance(observed, metrics.ObservableCounter)
    assert isinstance(gauge, metrics._Gauge)  # the API's Gauge (exported under this name)
    _app_with_user_code(monitor.tracer, counter, monitor=monitor)
    counter.add(2, {"k": "v"})
    up_down.add(-1, {"k": "v"})
    histogram.record(15, {"k": "v"})
    gauge.set(21.5, {"k": "v"})
    telemetry = Telemetry(monitor)
    assert (telemetry.point("user.count", k="v").value, telemetry.point("user.level", k="v").value) == (2, -1)
    size = telemetry.point("user.size", k="v")
    assert (tuple(size.explicit_bounds), tuple(size.bucket_counts)) == ((10.0, 20.0), (0, 1, 0))
    assert telemetry.point("user.temperature", k="v").value == 21.5
    assert telemetry.point("user.observed", k="v").value == 3
    monitor.shutdown(1)


def test_a_function_decorated_at_import_time_records_once_the_monitor_exists():
    tracer = trace.get_tracer("user.module")

    @tracer.start_as_current_span("decorated")
    def job() -> None:
        pass

    app, monitor = _app_with_user_code(tracer, metrics.get_meter("u").create_counter("c"))
    telemetry = Telemetry(monitor)
    job()
    assert [s.name for s in telemetry.spans()] == ["decorated"]
    monitor.shutdown(1)


def test_the_next_open_monitor_serves_the_globals_once_the_first_is_shut_down():
    tracer = trace.get_tracer("user.module")
    counter = metrics.get_meter("user.module").create_counter("user.jobs")
    app1, first = _app_with_user_code(tracer, counter)
    app2, second = _app_with_user_code(tracer, counter)
    t1, t2 = Telemetry(first), Telemetry(second)
    with app1.app_context():
        with tracer.start_as_current_span("outside"):
            pass
    assert [s.name for s in t1.spans()] == ["outside"] and t2.spans() == []
    first.shutdown(1)
    with tracer.start_as_current_span("later"):
        pass
    assert [s.name for s in t2.spans()] == ["later"]
    second.shutdown(1)


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_set_global_false_leaves_the_opentelemetry_globals_unset():
    out = _run(
        """
        from flask import Flask
        from opentelemetry import metrics, trace
        from otel_monitor import Monitor
        Monitor(Flask("a"), set_global=False, analytics=False, system_metrics=False)
        print(type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__)
        """
    )
    assert "ProxyTracerProvider _ProxyMeterProvider" in out


def test_the_applications_own_sdk_providers_are_left_in_place_and_it_is_logged_once():
    out = _run(
        """
        import logging
        logging.basicConfig(level=logging.INFO)
        from flask import Flask
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from otel_monitor import Monitor
        theirs = TracerProvider()
        trace.set_tracer_provider(theirs)
        Monitor(Flask("a"), analytics=False, system_metrics=False)
        Monitor(Flask("b"), analytics=False, system_metrics=False)
        print("kept:", trace.get_tracer_provider() is theirs)
        """
    )
    assert "kept: True" in out
    assert out.count("the application set its own OpenTelemetry traces provider") == 1
    assert "Overriding of current TracerProvider is not allowed" not in out
