"""Monitor lifecycle: app factories, init_app twice, two apps in one process, disabled, wrap(), get_monitor()."""

from __future__ import annotations

import json

from flask import Flask

import otel_monitor
from otel_monitor import get_monitor
from otel_monitor.testing import Telemetry, closing_client


def test_init_app_twice_instruments_once(monitors):
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    monitor.init_app(app)
    monitors(app, system_metrics=False)  # a second monitor on the same app is refused too
    closing_client(app).get("/")
    assert len(telemetry.spans()) == 1
    assert telemetry.point("http.server.request.duration").count == 1


def test_two_apps_in_one_process_keep_separate_providers_and_readers(monitors):
    app1, m1 = monitors.app(service_name="one")
    app2, m2 = monitors.app(service_name="two")
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


def test_app_factory_pattern_with_init_app(monitors):
    monitor = monitors(system_metrics=False)

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


def test_disabled_sdk_leaves_the_app_untouched(monkeypatch, monitors):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    app = Flask("plain")
    app.add_url_rule("/", "index", lambda: "hi")
    monitor = monitors(app)
    assert "wsgi_app" not in app.__dict__  # not wrapped
    assert not monitor.enabled
    assert app.test_client().get("/metrics").status_code == 404
    monitor.counter("ignored").add(1)  # a no-op, not an error
    assert monitor.shutdown() is True


def test_get_monitor_finds_the_apps_monitor_inside_and_outside_a_request(monitors):
    app, monitor = monitors.app()
    assert get_monitor(app) is monitor
    with app.test_request_context("/"):
        assert get_monitor() is monitor


def test_wrap_monitors_any_wsgi_callable_with_the_same_pipeline(monitors):
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"path": environ["PATH_INFO"]}).encode()]

    wrapped = monitors.wrap(application, service_name="plain-wsgi", system_metrics=False)
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


def test_wrap_of_a_flask_app_that_has_a_monitor_returns_it_unchanged(monitors):
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    assert otel_monitor.wrap(app) is app
    closing_client(app).get("/")
    assert [s.name for s in telemetry.spans()] == ["GET /"]


def test_a_monitored_app_wrapped_again_records_one_server_span_with_the_inner_route(monitors):
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client

    app, inner = monitors.app()
    inner_telemetry = Telemetry(inner)
    outer_app = monitors.wrap(DispatcherMiddleware(app), service_name="outer", system_metrics=False)
    outer_telemetry = Telemetry(outer_app.monitor)
    response = Client(outer_app).get("/users/3")
    response.close()
    assert [s.name for s in outer_telemetry.spans()] == ["GET /users/<int:user_id>"]
    assert inner_telemetry.spans() == []


def test_one_monitor_given_two_apps_keeps_per_app_settings_metrics_and_shuts_both_down(monitors):
    monitor = monitors(system_metrics=False, analytics=False)
    jobs = monitor.counter("jobs")
    apps = []
    for name in ("first", "second"):
        app = Flask(name)

        @app.get("/")
        def index():
            jobs.add(1)
            return "ok"

        app.config["OTEL_MONITOR_METRICS_PATH"] = f"/{name}-metrics"
        monitor.init_app(app)
        apps.append(app)
    first, second = apps
    closing_client(first).get("/")
    closing_client(second).get("/")
    closing_client(second).get("/")
    with first.app_context():
        assert monitor.settings.service_name == "first" and monitor.settings.metrics_path == "/first-metrics"
        first_pipeline = monitor.pipeline
    with second.app_context():
        assert monitor.settings.service_name == "second"
        second_pipeline = monitor.pipeline
    assert first_pipeline is not second_pipeline
    assert "\njobs_total 1\n" in closing_client(first).get("/first-metrics").get_data(as_text=True)
    assert "\njobs_total 2\n" in closing_client(second).get("/second-metrics").get_data(as_text=True)
    assert monitor.settings.service_name == "second"  # outside any app: the app attached last
    assert monitor.shutdown(1) is True
    assert first_pipeline._shutdown_done and second_pipeline._shutdown_done
