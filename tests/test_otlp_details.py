"""OTLP details the specification fixes: header keys, per-signal headers, the scope's schema URL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from otel_monitor import resolve_settings
from otel_monitor.telemetry.pipeline import SCHEMA_URL, _otlp_target
from otel_monitor.testing import Telemetry, closing_client

from .conftest import ROOT, build_app, wait_for_log


def test_header_keys_are_lower_cased_and_per_signal_headers_replace_the_general_ones():
    settings = resolve_settings(
        environ={
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,X-Tenant=acme",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "X-Api-Key=traces-only",
        }
    )
    assert _otlp_target(settings, "metrics")[2] == {"authorization": "Bearer abc", "x-tenant": "acme"}
    assert _otlp_target(settings, "traces")[2] == {"x-api-key": "traces-only"}


def test_our_spans_and_metrics_carry_the_semantic_conventions_schema_url():
    app, monitor = build_app(analytics=False)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    (span,) = telemetry.spans()
    assert span.instrumentation_scope.schema_url == SCHEMA_URL
    data = monitor.pipeline.reader.snapshot()
    scopes = {s.scope.name: s.scope.schema_url for r in data.resource_metrics for s in r.scope_metrics}
    assert scopes["otel_monitor"] == SCHEMA_URL
    monitor.shutdown(1)


@pytest.mark.integration
def test_grpc_export_with_upper_case_header_keys_reaches_the_collector(rotel):
    code = textwrap.dedent(
        """
        from flask import Flask
        from otel_monitor import Monitor
        app = Flask("grpc_headers")
        app.add_url_rule("/", "index", lambda: "ok")
        monitor = Monitor(app, analytics=False, system_metrics=False)
        app.test_client().get("/").close()
        assert monitor.shutdown(5)
        """
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rotel['grpc']}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,X-Api-Key=K1",
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Illegal header key" not in result.stderr
    wait_for_log(rotel["log"], [r"Name\s*: GET /", r"SchemaURL: https://opentelemetry.io/schemas/1.26.0"])
