"""Trace and span ids come from a private generator: the app's ``random.seed`` cannot repeat them,
and a forked child never repeats its parent's sequence. ``OTEL_PYTHON_ID_GENERATOR`` chooses another."""

from __future__ import annotations

import os
import random

import pytest
from flask import Flask
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from otel_monitor import SettingsError, resolve_settings
from otel_monitor.telemetry._ids import PrivateIdGenerator
from otel_monitor.testing import Telemetry, closing_client


def test_an_app_that_seeds_random_still_gets_distinct_trace_and_span_ids(monitors):
    app = Flask("seeded")

    @app.get("/bytes")
    def seeded_bytes():  # what httpbin's /bytes?seed=1 does
        random.seed(1)
        # the monitor's tracer: the global API may belong to another provider an earlier test set
        with monitor.tracer.start_as_current_span("generate"):
            return bytes(random.getrandbits(8) for _ in range(8))

    monitor = monitors(app, system_metrics=False, analytics=False)
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    for _ in range(20):
        assert client.get("/bytes").status_code == 200
    spans = telemetry.spans()
    assert len(spans) == 40
    assert len({s.context.trace_id for s in spans}) == 20
    assert len({s.context.span_id for s in spans}) == 40


def test_the_pipeline_uses_the_private_generator_by_default(monitors):
    _, monitor = monitors.app(analytics=False)
    assert type(monitor.tracer_provider.id_generator) is PrivateIdGenerator


def test_a_forked_child_never_repeats_its_parents_ids():
    generator = PrivateIdGenerator()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        try:
            ids = [generator.generate_trace_id() for _ in range(4)] + [generator.generate_span_id() for _ in range(4)]
            os.write(write, ",".join(map(str, ids)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = [generator.generate_trace_id() for _ in range(4)] + [generator.generate_span_id() for _ in range(4)]
    with os.fdopen(read) as pipe:
        child = [int(i) for i in pipe.read().split(",")]
    os.waitpid(pid, 0)
    assert len(child) == 8 and not set(child) & set(parent)


def test_ids_are_never_zero_and_have_their_sizes():
    generator = PrivateIdGenerator()
    trace_ids = [generator.generate_trace_id() for _ in range(1000)]
    span_ids = [generator.generate_span_id() for _ in range(1000)]
    assert all(0 < t < 1 << 128 for t in trace_ids) and all(0 < s < 1 << 64 for s in span_ids)
    assert len(set(trace_ids)) == 1000 and len(set(span_ids)) == 1000
    assert generator.is_trace_id_random()


def test_otel_python_id_generator_chooses_an_installed_generator(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_PYTHON_ID_GENERATOR", "random")
    _, monitor = monitors.app(analytics=False)
    assert type(monitor.tracer_provider.id_generator) is RandomIdGenerator


def test_an_unknown_id_generator_is_a_start_up_error_naming_the_setting():
    with pytest.raises(SettingsError, match=r"^id_generator: bad value 'xray' from environment variable"):
        resolve_settings(environ={"OTEL_PYTHON_ID_GENERATOR": "xray"})
