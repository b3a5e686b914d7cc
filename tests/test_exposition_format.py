"""/metrics is valid Prometheus text and OpenMetrics (prometheus_client's parsers, promtool), with absent
labels left out, exemplars of sampled requests only in OpenMetrics, and the default registry appended."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
from prometheus_client import Counter
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from otel_monitor.metrics.exposition import OPENMETRICS, TEXT, TextWriter, labels_text, metric_name
from otel_monitor.testing import Telemetry, closing_client

from .conftest import build_app

OPENMETRICS_ACCEPT = {"Accept": "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"}


@pytest.fixture
def traffic():
    """An app after a handful of requests: 200s, a 404 without a route, a failing view."""
    app, monitor = build_app(system_metrics=True, service_name="shop")
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    for path in ("/", "/users/1", "/users/2", "/nope", "/fail"):
        client.get(path)
    yield app, monitor, telemetry, client
    monitor.shutdown(timeout=2)


def scrape(client, headers=None) -> tuple[str, str]:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200
    return response.headers["Content-Type"], response.get_data(as_text=True)


def samples(families, name):
    return [s for f in families for s in f.samples if s.name == name]


def test_plain_text_round_trips_through_prometheus_clients_parser_with_the_exact_counts(traffic):
    app, monitor, telemetry, client = traffic
    content_type, body = scrape(client)
    assert content_type == TEXT
    families = list(parse_text(body))
    counts = {
        (s.labels.get("http_route"), s.labels["http_response_status_code"]): s.value
        for s in samples(families, "http_server_request_duration_seconds_count")
    }
    assert counts == {("/", "200"): 1, ("/users/<int:user_id>", "200"): 2, (None, "404"): 1, ("/fail", "500"): 1}
    # the parser saw one family per name: no duplicate TYPE lines anywhere
    names = [f.name for f in families]
    assert len(names) == len(set(names))


def test_absent_attributes_are_absent_labels_not_empty_strings(traffic):
    app, monitor, telemetry, client = traffic
    _, body = scrape(client)
    assert 'error_type=""' not in body and 'http_route=""' not in body
    (ok,) = [
        s
        for s in samples(parse_text(body), "http_server_request_duration_seconds_count")
        if s.labels.get("http_route") == "/"
    ]
    assert set(ok.labels) == {"http_request_method", "http_response_status_code", "http_route", "url_scheme"}
    (not_found,) = [
        s
        for s in samples(parse_text(body), "http_server_request_duration_seconds_count")
        if s.labels["http_response_status_code"] == "404"
    ]
    assert "http_route" not in not_found.labels and "error_type" not in not_found.labels


def test_openmetrics_when_asked_parses_and_carries_the_trace_id_of_a_sampled_request(traffic):
    app, monitor, telemetry, client = traffic
    content_type, body = scrape(client, OPENMETRICS_ACCEPT)
    assert content_type == OPENMETRICS and body.endswith("# EOF\n")
    families = list(parse_openmetrics(body))
    spans = {format(s.context.trace_id, "032x"): s for s in telemetry.spans()}
    marked = [
        s
        for s in samples(families, "http_server_request_duration_seconds_bucket")
        if s.exemplar is not None and s.labels.get("http_route") == "/users/<int:user_id>"
    ]
    assert marked, "no exemplar on the /users/<int:user_id> buckets"
    for sample in marked:
        span = spans[sample.exemplar.labels["trace_id"]]
        assert span.name == "GET /users/<int:user_id>"
        assert format(span.context.span_id, "016x") == sample.exemplar.labels["span_id"]
    assert len(marked) <= 2  # at most the newest per bucket; two requests


def test_plain_text_has_no_exemplars(traffic):
    app, monitor, telemetry, client = traffic
    _, body = scrape(client)
    assert "trace_id" not in body and " # {" not in body


def test_unsampled_requests_leave_no_exemplar():
    app, monitor = build_app(traces_sampler="always_off")
    client = closing_client(app)
    client.get("/users/1")
    _, body = scrape(client, OPENMETRICS_ACCEPT)
    assert "http_server_request_duration_seconds_bucket" in body
    assert "trace_id" not in body
    monitor.shutdown(timeout=2)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_scrape(traffic):
    app, monitor, telemetry, client = traffic
    _, body = scrape(client)
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_registry_is_appended_with_the_apps_own_prometheus_client_metrics(traffic):
    app, monitor, telemetry, client = traffic
    orders = Counter("shop_orders", "Orders placed")
    try:
        orders.inc(3)
        _, body = scrape(client)
        families = {f.name: f for f in parse_text(body)}
        assert samples(families.values(), "shop_orders_total")[0].value == 3
        assert "python_gc_objects_collected" in families and "process_cpu_seconds" in families
        _, body = scrape(client, OPENMETRICS_ACCEPT)
        assert body.count("# EOF") == 1 and body.endswith("# EOF\n")
        assert samples(parse_openmetrics(body), "shop_orders_total")[0].value == 3
    finally:
        from prometheus_client import REGISTRY

        REGISTRY.unregister(orders)


def test_the_default_registry_stays_out_when_turned_off():
    app, monitor = build_app(metrics_default_registry=False)
    _, body = scrape(closing_client(app))
    assert "python_gc_objects_collected" not in body and "process_cpu_seconds" not in body
    monitor.shutdown(timeout=2)


def test_a_name_both_sides_use_is_shown_once_ours_and_the_clash_is_logged_naming_the_setting(traffic, caplog):
    app, monitor, telemetry, client = traffic
    clash = Counter("http_server_active_requests_x", "not a clash")  # a near name is no clash
    from prometheus_client import REGISTRY, Gauge

    same = Gauge("http_server_active_requests", "the app's own gauge of the same name")
    try:
        with caplog.at_level(logging.WARNING, logger="otel_monitor"):
            _, body = scrape(client)
        assert body.count("# TYPE http_server_active_requests gauge") == 1
        assert "the app's own gauge" not in body
        assert "http_server_active_requests_x_total" in body
        (warning,) = [r for r in caplog.records if "http_server_active_requests" in r.getMessage()]
        assert "metrics_default_registry" in warning.getMessage()
    finally:
        REGISTRY.unregister(clash)
        REGISTRY.unregister(same)


def test_process_gauges_reported_by_both_sides_are_shown_once_without_a_warning(traffic, caplog):
    app, monitor, telemetry, client = traffic
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        _, body = scrape(client)
    assert body.count("# TYPE process_open_fds gauge") == 1
    assert body.count("# TYPE process_start_time_seconds gauge") == 1
    assert not [r for r in caplog.records if "default registry" in r.getMessage()]


# -- the writer on its own --------------------------------------------------------------------------


def test_names_follow_the_opentelemetry_to_prometheus_rules():
    assert metric_name("http.server.request.duration", "s") == "http_server_request_duration_seconds"
    assert metric_name("system.memory.utilization", "1") == "system_memory_utilization"
    assert metric_name("queue.depth", "{item}") == "queue_depth"
    assert metric_name("net.rate", "By/s") == "net_rate_bytes_per_second"
    assert metric_name("process.thread.count", "{thread}") == "process_threads"
    assert metric_name("2xx.seen", "") == "_xx_seen"


def test_label_values_are_escaped_and_names_sanitised():
    text = labels_text({"a.b": 'say "hi"\\\n', "flag": True, "n": 3, "list": ("x", "y")})
    assert text == 'a_b="say \\"hi\\"\\\\\\n",flag="true",list="[\\"x\\", \\"y\\"]",n="3"'
    (sample,) = samples(parse_text(f"m{{{text}}} 1\n"), "m")
    assert sample.labels == {"a_b": 'say "hi"\\\n', "flag": "true", "n": "3", "list": '["x", "y"]'}


def test_the_label_cache_keeps_only_live_series():
    from opentelemetry.sdk.metrics.export import (
        Gauge,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    def data(*attribute_sets):
        points = [
            NumberDataPoint(attributes=a, start_time_unix_nano=0, time_unix_nano=0, value=1) for a in attribute_sets
        ]
        metric = Metric(name="g", description="", unit="", data=Gauge(data_points=points))
        scope = ScopeMetrics(scope=InstrumentationScope("s"), metrics=[metric], schema_url="")
        return MetricsData(
            resource_metrics=[ResourceMetrics(resource=Resource({}), scope_metrics=[scope], schema_url="")]
        )

    writer = TextWriter(target_info=False)
    a, b = {"k": "a"}, {"k": "b"}
    assert writer.render(data(a, b)) == '# HELP g \n# TYPE g gauge\ng{k="a"} 1\ng{k="b"} 1\n'
    writer.render(data(b))
    assert [entry[0] for entry in writer._labels.values()] == [b]
