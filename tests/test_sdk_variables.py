"""The standard SDK variables for values we pass explicitly (OTEL_BSP_*, OTEL_BLRP_*) are honoured and checked."""

from __future__ import annotations

import pytest

from otel_monitor import SettingsError, resolve_settings
from otel_monitor.settings import FIELDS

from .conftest import build_app


def test_otel_bsp_variables_reach_the_batch_span_processor(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "1500")
    app, monitor = build_app(analytics=False, traces_exporter="console")
    processors = monitor.tracer_provider._active_span_processor._span_processors
    (batch,) = [p for p in processors if type(p).__name__ == "BatchSpanProcessor"]
    inner = batch._batch_processor
    assert (inner._max_queue_size, inner._schedule_delay, inner._max_export_batch_size) == (64, 0.25, 16)
    assert inner._export_timeout_millis == 1500
    monitor.shutdown(1)


@pytest.mark.parametrize(
    "variable, setting",
    [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "bsp_max_queue_size"),
        ("OTEL_BSP_SCHEDULE_DELAY", "bsp_schedule_delay"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "blrp_max_queue_size"),
        ("OTEL_BLRP_EXPORT_TIMEOUT", "blrp_export_timeout"),
    ],
)
def test_a_bad_standard_variable_is_a_start_up_error_naming_the_setting(variable, setting):
    with pytest.raises(SettingsError, match=rf"^{setting}: bad value 'lots' from environment variable {variable}"):
        resolve_settings(environ={variable: "lots"})


def test_every_batch_processor_variable_is_in_the_settings_table():
    variables = {v for f in FIELDS for v in f.metadata["env"]}
    for signal in ("BSP", "BLRP"):
        for name in ("SCHEDULE_DELAY", "MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE", "EXPORT_TIMEOUT"):
            assert f"OTEL_{signal}_{name}" in variables
