"""OTEL_PROPAGATORS chooses how trace context enters and leaves the process, as in the SDK."""

from __future__ import annotations

import pytest
from opentelemetry import propagate

from otel_monitor import SettingsError, resolve_settings
from otel_monitor.testing import Telemetry, closing_client

from .conftest import build_app

B3_TRACE = "463ac35c9f6413ad48485a3953bb6124"
B3_SPAN = "a2fb4a1d1a96d312"


def test_incoming_b3_multi_headers_continue_the_trace_when_b3multi_is_configured(monkeypatch):
    monkeypatch.setenv("OTEL_PROPAGATORS", "tracecontext,baggage,b3multi")
    app, monitor = build_app(analytics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/", headers={"X-B3-TraceId": B3_TRACE, "X-B3-SpanId": B3_SPAN, "X-B3-Sampled": "1"})
    (span,) = telemetry.spans()
    assert format(span.context.trace_id, "032x") == B3_TRACE
    assert format(span.parent.span_id, "016x") == B3_SPAN
    monitor.shutdown(1)


def test_b3_headers_are_ignored_with_the_default_propagators():
    app, monitor = build_app(analytics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/", headers={"X-B3-TraceId": B3_TRACE, "X-B3-SpanId": B3_SPAN, "X-B3-Sampled": "1"})
    (span,) = telemetry.spans()
    assert format(span.context.trace_id, "032x") != B3_TRACE and span.parent is None
    monitor.shutdown(1)


def test_none_propagates_nothing():
    app, monitor = build_app(analytics=False, propagators="none")
    telemetry = Telemetry(monitor)
    closing_client(app).get("/", headers={"traceparent": f"00-{B3_TRACE}-{B3_SPAN}-01"})
    (span,) = telemetry.spans()
    assert span.parent is None
    monitor.shutdown(1)


def test_an_unknown_propagator_is_a_start_up_error_naming_it(monkeypatch):
    monkeypatch.setenv("OTEL_PROPAGATORS", "tracecontext,zipkin-ish")
    with pytest.raises(SettingsError, match=r"propagators: .*OTEL_PROPAGATORS.*unknown propagator 'zipkin-ish'"):
        resolve_settings()


def test_the_size_guard_still_drops_an_oversized_traceparent_with_b3_configured():
    app, monitor = build_app(analytics=False, propagators="tracecontext,b3multi")
    telemetry = Telemetry(monitor)
    closing_client(app).get("/", headers={"traceparent": f"00-{B3_TRACE}-{B3_SPAN}-01" + "-x" * 100})
    (span,) = telemetry.spans()
    assert span.parent is None
    monitor.shutdown(1)


def test_the_configured_propagator_is_the_global_one_for_outgoing_calls(monkeypatch):
    """Contrib client instrumentations inject with the global textmap: inbound and outbound agree."""
    from otel_monitor.telemetry import _providers

    monkeypatch.setattr(_providers, "_order", [])  # this test's monitor serves the globals
    app, monitor = build_app(analytics=False, propagators="tracecontext,b3multi")
    outgoing: dict = {}

    @app.get("/call")
    def call():
        propagate.inject(outgoing)
        return "ok"

    telemetry = Telemetry(monitor)
    closing_client(app).get("/call")
    (span,) = telemetry.spans()
    assert outgoing["x-b3-traceid"] == format(span.context.trace_id, "032x")
    assert outgoing["traceparent"].split("-")[1] == outgoing["x-b3-traceid"]
    assert "baggage" not in propagate.get_global_textmap().fields
    monitor.shutdown(1)
