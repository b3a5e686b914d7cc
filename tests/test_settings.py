"""Settings: precedence (argument > app.config > environment > default) and bad values at start-up."""

from __future__ import annotations

import pytest

from otel_monitor import Monitor, SettingsError, resolve_settings
from otel_monitor.settings import FIELDS, config_key

from .conftest import build_app


def test_keyword_argument_beats_app_config_beats_environment_beats_default():
    env = {
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_TRACES_SAMPLER_ARG": "0.3",
        "OTEL_MONITOR_METRICS_PATH": "/env-metrics",
    }
    config = {"OTEL_MONITOR_SERVICE_NAME": "from-config", "OTEL_MONITOR_TRACES_SAMPLER_ARG": "0.2"}
    settings = resolve_settings({"service_name": "from-arg"}, config, env)
    assert settings.service_name == "from-arg"
    assert settings.traces_sampler_arg == 0.2
    assert settings.metrics_path == "/env-metrics"
    assert settings.shutdown_timeout == 3.0
    assert settings.source_of("service_name") == "argument"
    assert settings.source_of("traces_sampler_arg") == "app.config['OTEL_MONITOR_TRACES_SAMPLER_ARG']"
    assert settings.source_of("metrics_path") == "environment variable OTEL_MONITOR_METRICS_PATH"
    assert settings.source_of("shutdown_timeout") == "default"


def test_standard_otel_variables_are_honoured():
    env = {
        "OTEL_SERVICE_NAME": "checkout",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=core%20api",
        "OTEL_TRACES_EXPORTER": "otlp,console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        "OTEL_SDK_DISABLED": "false",
        "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "healthz,ready",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
    }
    s = resolve_settings(environ=env)
    assert s.service_name == "checkout"
    assert s.resource_attributes == {"deployment.environment": "prod", "team": "core api"}
    assert s.traces_exporter == ("otlp", "console")
    assert s.metrics_exporter == ()
    assert (s.otlp_endpoint, s.otlp_protocol, s.otlp_headers) == ("http://127.0.0.1:4318", "grpc", {"api-key": "abc"})
    assert (s.traces_sampler, s.traces_sampler_arg) == ("parentbased_traceidratio", 0.25)
    assert s.metric_export_interval == 5000
    assert s.excluded_urls == ("healthz", "ready")
    assert s.otlp_timeout == 2.5


@pytest.mark.parametrize(
    "env, setting, accepts",
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "traces_sampler", "expected one of"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "traces_sampler_arg", "from 0 to 1"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "traces_exporter", "otlp, console, none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, "otlp_endpoint", "expected a URL"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:abc"}, "otlp_endpoint", "port is not a number"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "otlp_protocol", "grpc, http/protobuf"),
        ({"OTEL_SDK_DISABLED": "maybe"}, "sdk_disabled", "true or false"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "metric_export_interval", "expected a number"),
        ({"OTEL_PYTHON_FLASK_EXCLUDED_URLS": "(unclosed"}, "excluded_urls", "not a regular expression"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "resource_attributes", "key=value"),
        ({"OTEL_MONITOR_METRICS_PORT": "70000"}, "metrics_port", "from 1 to 65535"),
    ],
)
def test_a_bad_value_fails_at_start_up_naming_the_setting_its_source_and_what_it_accepts(
    monkeypatch, env, setting, accepts
):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        build_app()
    message = str(info.value)
    assert message.startswith(setting + ":")
    assert f"environment variable {next(iter(env))}" in message
    assert accepts in message


def test_a_bad_app_config_value_names_the_config_key():
    from flask import Flask

    app = Flask("x")
    app.config["OTEL_MONITOR_SHUTDOWN_TIMEOUT"] = "forever"
    with pytest.raises(SettingsError, match=r"shutdown_timeout: .*app.config\['OTEL_MONITOR_SHUTDOWN_TIMEOUT'\]"):
        Monitor(app)


def test_an_unknown_keyword_is_refused_rather_than_ignored():
    with pytest.raises(SettingsError, match="unknown setting.*servce_name"):
        Monitor(servce_name="typo")


def test_settings_are_read_at_init_app_not_at_construction(monkeypatch, monitors):
    monitor = monitors()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "set-later")
    from flask import Flask

    app = Flask("factory")
    monitor.init_app(app)
    assert monitor.settings.service_name == "set-later"


def test_every_setting_has_an_environment_variable_and_documentation():
    for f in FIELDS:
        assert f.metadata["env"], f.name
        assert f.metadata["doc"], f.name
        assert config_key(f.name) == "OTEL_MONITOR_" + f.name.upper()


def test_secrets_are_masked_in_the_printable_settings():
    s = resolve_settings({"otlp_headers": "api-key=topsecret", "metrics_token": "tok"})
    masked = s.masked()
    assert masked["otlp_headers"] == {"api-key": "***"} and masked["metrics_token"] == "***"
    assert "topsecret" not in repr(masked)
