"""An app that already has prometheus_client metrics keeps them: on our /metrics (the default registry),
and on its own /metrics route, which Monitor(app) does not take over (it says so at start-up)."""

from __future__ import annotations

import logging

from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry, Counter, make_wsgi_app
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from otel_monitor import Monitor
from otel_monitor.testing import closing_client


def shop() -> Flask:
    app = Flask("shop")

    @app.get("/orders")
    def orders():
        return "ok"

    return app


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otel_monitor" and "already serves" in r.getMessage()]


def test_an_existing_dispatcher_mount_keeps_the_metrics_path_and_start_up_names_the_setting(caplog):
    registry = CollectorRegistry()
    orders = Counter("shop_orders", "Orders placed", registry=registry)
    orders.inc(2)
    app = shop()
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app(registry)})
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        monitor = Monitor(app, system_metrics=False, analytics=False)
    try:
        (message,) = warnings(caplog)
        assert "metrics_path" in message and "OTEL_MONITOR_METRICS_PATH" in message
        client = closing_client(app)
        client.get("/orders")
        body = client.get("/metrics").get_data(as_text=True)
        assert "shop_orders_total 2.0" in body
        assert "http_server_request_duration_seconds" not in body
    finally:
        monitor.shutdown(timeout=2)


def test_both_endpoints_coexist_when_the_metrics_path_is_moved(caplog):
    registry = CollectorRegistry()
    Counter("shop_orders", "Orders placed", registry=registry).inc()
    app = shop()
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app(registry)})
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        monitor = Monitor(app, system_metrics=False, analytics=False, metrics_path="/otel-metrics")
    try:
        assert warnings(caplog) == []
        client = closing_client(app)
        client.get("/orders")
        assert "shop_orders_total" in client.get("/metrics").get_data(as_text=True)
        assert "http_server_request_duration_seconds_count" in client.get("/otel-metrics").get_data(as_text=True)
    finally:
        monitor.shutdown(timeout=2)


def test_a_metrics_route_registered_after_the_monitor_is_found_at_the_first_scrape(caplog):
    app = shop()
    monitor = Monitor(app, system_metrics=False, analytics=False)
    PrometheusMetrics(app, registry=CollectorRegistry())  # adds its /metrics view after us
    try:
        client = closing_client(app)
        client.get("/orders")
        with caplog.at_level(logging.WARNING, logger="otel_monitor"):
            body = client.get("/metrics").get_data(as_text=True)
            client.get("/metrics")
        assert "flask_http_request_duration_seconds_count" in body
        assert len(warnings(caplog)) == 1
    finally:
        monitor.shutdown(timeout=2)


def test_a_view_on_the_metrics_path_before_the_monitor_is_reported_at_start_up(caplog):
    app = shop()
    PrometheusMetrics(app, registry=CollectorRegistry())
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        monitor = Monitor(app, system_metrics=False, analytics=False)
    try:
        (message,) = warnings(caplog)
        assert "'prometheus_metrics'" in message
    finally:
        monitor.shutdown(timeout=2)


def test_the_apps_default_registry_metrics_and_the_usual_process_series_stay_on_our_metrics():
    orders = Counter("shop_checkouts", "Checkouts")
    try:
        orders.inc(4)
        app = shop()
        monitor = Monitor(app, system_metrics=False, analytics=False)
        body = closing_client(app).get("/metrics").get_data(as_text=True)
        assert "shop_checkouts_total 4.0" in body
        assert "\nprocess_cpu_seconds_total " in body and "\npython_info{" in body
        monitor.shutdown(timeout=2)
    finally:
        REGISTRY.unregister(orders)


def test_an_existing_metrics_mount_is_kept_under_the_contrib_flask_instrumentation_too(caplog):
    registry = CollectorRegistry()
    Counter("shop_orders", "Orders placed", registry=registry).inc(3)
    app = shop()
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app(registry)})
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        monitor = Monitor(app, system_metrics=False, analytics=False, flask_instrumentation="contrib")
    try:
        assert len(warnings(caplog)) == 1
        client = closing_client(app)
        assert client.get("/orders").status_code == 200
        response = client.get("/metrics")
        assert response.status_code == 200
        assert "shop_orders_total 3.0" in response.get_data(as_text=True)
    finally:
        monitor.shutdown(timeout=2)
