"""Monitor lifecycle: app factories, init_app twice, two apps in one process, disabled, wrap(), get_monitor()."""

from __future__ import annotations

import json

from flask import Flask

import otel_monitor
from otel_monitor import Monitor, get_monitor
from otel_monitor.testing import Telemetry, closing_client

from .conftest import build_app


def test_init_app_twice_instruments_once():
    app, monitor = build_app()
    telemetry = Telemetry(monitor)
    monitor.init_app(app)
    Monitor(app, system_metrics=False)  # a second monitor on the same app is refused too
    closing_client(app).get("/")
    assert len(telemetry.spans()) == 1
    assert telemetry.point("http.server.request.duration").count == 1
    monitor.shutdown(1)


def test_two_apps_in_one_process_keep_separate_providers_and_readers():
    app1, m1 = build_app(service_name="one")
    app2, m2 = build_app(service_name="two")
    t1, t2 = Telemetry(m1), Telemetry(m2)
    closing_client(app1).get("/")
    closing_client(app1).get("/")
    closing_client(app2).get("/users/1")
    assert [s.name for s in t1.spans()] == ["GET /", "GET /"]
    assert [s.name for s in t2.spans()] == ["GET /users/<int:user_id>"]
    assert m1.pipeline.reader is not m2.pipeline.reader
    metrics1 = app1.test_client().get("/metrics").get_data(as_text=True)
    metrics2 = app2.test_client().get("/metrics").get_data(as_text=True)
    assert 'service_name="one"' in metrics1 and 'service_name="two"' not in metrics1
    assert 'http_route="/users/<int:user_id>"' in metrics2 and 'http_route="/"' not in metrics2
    m1.shutdown(1), m2.shutdown(1)


def test_app_factory_pattern_with_init_app():
    monitor = Monitor(system_metrics=False)

    def create_app():
        app = Flask("factory_app")
        app.add_url_rule("/", "index", lambda: "hi")
        monitor.init_app(app)
        return app

    app = create_app()
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    assert [s.name for s in telemetry.spans()] == ["GET /"]
    assert monitor.settings.service_name == "factory_app"
    monitor.shutdown(1)


def test_disabled_sdk_leaves_the_app_untouched(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    app = Flask("plain")
    app.add_url_rule("/", "index", lambda: "hi")
    monitor = Monitor(app)
    assert "wsgi_app" not in app.__dict__  # not wrapped
    assert not monitor.enabled
    assert app.test_client().get("/metrics").status_code == 404
    monitor.counter("ignored").add(1)  # a no-op, not an error
    assert monitor.shutdown() is True


def test_get_monitor_finds_the_apps_monitor_inside_and_outside_a_request():
    app, monitor = build_app()
    assert get_monitor(app) is monitor
    with app.test_request_context("/"):
        assert get_monitor() is monitor
    monitor.shutdown(1)


def test_wrap_monitors_any_wsgi_callable_with_the_same_pipeline():
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"path": environ["PATH_INFO"]}).encode()]

    wrapped = otel_monitor.wrap(application, service_name="plain-wsgi", system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    from werkzeug.test import Client

    client = Client(wrapped)
    response = client.get("/hello")
    response.close()
    assert response.get_json() == {"path": "/hello"}
    (span,) = telemetry.spans()
    assert span.name == "GET" and span.attributes["url.path"] == "/hello"
    assert telemetry.point("http.server.request.duration").count == 1
    metrics = client.get("/metrics")
    assert "http_server_request_duration_seconds_count" in metrics.get_data(as_text=True)
    assert otel_monitor.wrap(wrapped) is wrapped  # wrapping twice is harmless
    wrapped.monitor.shutdown(1)


def test_set_global_installs_the_providers_as_opentelemetry_globals(monkeypatch):
    from opentelemetry import trace

    calls = []
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: calls.append(provider))
    app, monitor = build_app(set_global=True)
    assert calls == [monitor.tracer_provider]
    monitor.shutdown(1)
