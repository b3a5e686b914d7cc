"""Trace detail in process: whole span trees of failed, slow and sampled requests, grouped errors,
their endpoints (``/traces/<id>``, ``/errors``), redaction and the memory bounds."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.trace import SpanKind

from otel_monitor.analytics import analytics_of, trace_store
from otel_monitor.analytics import errors as errors_module
from otel_monitor.testing import closing_client

from .conftest import build_app

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/otel-monitor"


def make_app(**settings):
    settings.setdefault("analytics_token", TOKEN)
    app, monitor = build_app(**settings)
    tracer = monitor.tracer

    @app.get("/orders/<int:order_id>")
    def order(order_id: int):
        with tracer.start_as_current_span("load order") as span:
            span.set_attribute("order.id", order_id)
            with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as db:
                db.set_attribute("db.system.name", "sqlite")
                db.set_attribute("db.password", "hunter2")
        if order_id == 13:
            raise KeyError(f"order {order_id} is cursed")
        return {"id": order_id}

    @app.get("/slow")
    def slow():
        with tracer.start_as_current_span("sleep"):
            time.sleep(0.06)
        return "slow"

    monitor.pipeline.scheduler.stop()
    return app, monitor, analytics_of(monitor)


def get(client, path):
    return client.get(PREFIX + path, headers=AUTH)


@pytest.fixture
def shop():
    # never "slow" here (on a busy machine a plain request can take 50 ms): kept trees are failed or sampled
    app, monitor, state = make_app(analytics_slow_ms=3_600_000)
    yield app, monitor, state, closing_client(app)
    monitor.shutdown(timeout=2)


def test_a_failed_request_keeps_its_whole_span_tree_with_the_traceback(shop):
    app, monitor, state, client = shop
    assert client.get("/orders/13").status_code == 500
    listed = get(client, "/traces?kind=failed").get_json()["traces"]
    assert len(listed) == 1 and listed[0]["detail"] is True
    trace_id = listed[0]["trace_id"]
    assert len(trace_id) == 32

    tree = get(client, f"/traces/{trace_id}").get_json()
    assert tree["trace_id"] == trace_id and tree["kind"] == "failed"
    assert tree["route"] == "/orders/<int:order_id>" and tree["status_code"] == 500
    assert [(s["name"], s["depth"], s["kind"]) for s in tree["spans"]] == [
        ("GET /orders/<int:order_id>", 0, "server"),
        ("load order", 1, "internal"),
        ("SELECT orders", 2, "client"),
    ]
    root, load, select = tree["spans"]
    assert load["parent_id"] == root["span_id"] and select["parent_id"] == load["span_id"]
    assert 0 <= load["offset_ms"] <= select["offset_ms"] <= root["duration_ms"]
    assert load["attributes"]["order.id"] == 13
    assert select["attributes"] == {"db.system.name": "sqlite", "db.password": "REDACTED"}
    assert root["status"] == "error"
    [exception] = [e for e in root["events"] if e["name"] == "exception"]
    assert exception["attributes"]["exception.type"] == "KeyError"
    stack = exception["attributes"]["exception.stacktrace"]
    assert "Traceback (most recent call last)" in stack and 'raise KeyError(f"order {order_id} is cursed")' in stack
    assert tree["exception"]["exception.message"] == "'order 13 is cursed'"
    assert tree["link"] is None


def test_normal_requests_are_not_kept_except_one_in_sample_every(shop):
    app, monitor, state, client = shop
    for _ in range(trace_store.SAMPLE_EVERY * 2):
        assert client.get("/orders/1").status_code == 200
    kept = state.details.snapshot()
    assert [t["kind"] for t in kept] == ["sample", "sample"]
    assert all(len(t["spans"]) == 3 for t in kept)
    assert state.details.pending == {}


def test_slow_requests_are_kept_and_the_link_template_still_applies():
    app, monitor, state = make_app(analytics_slow_ms=50, trace_link_template="http://127.0.0.1:16686/trace/{trace_id}")
    client = closing_client(app)
    try:
        client.get("/slow")
        [entry] = get(client, "/traces?kind=slow").get_json()["traces"]
        tree = get(client, f"/traces/{entry['trace_id']}").get_json()
        assert tree["kind"] == "slow" and [s["name"] for s in tree["spans"]] == ["GET /slow", "sleep"]
        assert tree["spans"][1]["duration_ms"] >= 60
        assert tree["link"] == f"http://127.0.0.1:16686/trace/{entry['trace_id']}"
    finally:
        monitor.shutdown(timeout=2)


def test_trace_detail_answers_400_for_a_bad_id_and_404_for_one_not_kept(shop):
    app, monitor, state, client = shop
    assert get(client, "/traces/not-hex").status_code == 400
    assert get(client, "/traces/" + "0" * 31).status_code == 400
    response = get(client, "/traces/" + "ab" * 16)
    assert response.status_code == 404 and "not kept" in response.get_json()["error"]
    assert client.get(PREFIX + "/traces/" + "ab" * 16).status_code == 401  # credentials still needed


def test_errors_are_grouped_by_type_route_and_app_frame_with_count_and_examples(shop):
    app, monitor, state, client = shop
    for _ in range(7):
        client.get("/orders/13")
    for _ in range(3):
        client.get("/fail")
    body = get(client, "/errors").get_json()
    assert body["total"] == 10 and body["timeline_step_s"] == 60
    by_type = {g["exception_type"]: g for g in body["groups"]}
    assert set(by_type) == {"KeyError", "ValueError"}
    cursed = by_type["KeyError"]
    assert cursed["count"] == 7 and cursed["route"] == "/orders/<int:order_id>" and cursed["method"] == "GET"
    assert cursed["frame"].startswith("tests/test_trace_details.py:") and cursed["frame"].endswith(" in order")
    assert cursed["message"] == "'order 13 is cursed'" and cursed["status_code"] == 500
    assert cursed["first_seen"] <= cursed["last_seen"]
    assert len(cursed["examples"]) == errors_module.EXAMPLES and all(e["detail"] for e in cursed["examples"])
    assert len(cursed["timeline"]) == errors_module.TIMELINE_MINUTES and cursed["last_hour"] == 7
    assert sum(p["count"] for p in cursed["timeline"]) == 7
    assert by_type["ValueError"]["frame"].startswith("tests/conftest.py:")
    assert body["groups"][0]["exception_type"] == "ValueError"  # the latest seen first
    example = cursed["examples"][0]["trace_id"]
    assert get(client, f"/traces/{example}").get_json()["kind"] == "failed"


def test_a_plain_5xx_answer_is_grouped_with_its_reason_phrase_not_its_code_twice(shop):
    app, monitor, state, client = shop

    @app.get("/maintenance")
    def maintenance():
        return "down for maintenance", 503

    @app.get("/teapot-error")
    def odd():
        return "odd", 599

    assert client.get("/maintenance").status_code == 503
    assert client.get("/teapot-error").status_code == 599
    groups = {g["route"]: g for g in get(client, "/errors").get_json()["groups"]}
    plain = groups["/maintenance"]
    assert (plain["exception_type"], plain["message"], plain["status_code"]) == ("503", "Service Unavailable", 503)
    assert groups["/teapot-error"]["message"] == ""  # no standard phrase: the code alone, not "599: 599"


def test_errors_of_several_workers_merge_by_group_id():
    one, two = errors_module.ErrorGroups(), errors_module.ErrorGroups()
    tree = {
        "route": "/x",
        "method": "GET",
        "status_code": 500,
        "exception": {"exception.type": "OSError", "exception.message": "disk"},
    }
    one.add({**tree, "trace_id": "a" * 32, "time": 600.0})
    one.add({**tree, "trace_id": "b" * 32, "time": 700.0})
    two.add({**tree, "trace_id": "c" * 32, "time": 650.0})
    [group] = errors_module.merge([one.snapshot(), two.snapshot(), "junk"], now=720.0)
    assert group["count"] == 3 and group["first_seen"] == 600.0 and group["last_seen"] == 700.0
    assert [e["trace_id"] for e in group["examples"]] == ["b" * 32, "c" * 32, "a" * 32]
    assert {p["t"]: p["count"] for p in group["timeline"] if p["count"]} == {600: 2, 660: 1}


def test_the_innermost_app_frame_skips_library_and_standard_library_frames():
    import json

    import flask

    stack = (
        "Traceback (most recent call last):\n"
        f'  File "{flask.__file__}", line 1, in wsgi_app\n'
        '  File "/srv/app/views.py", line 10, in checkout\n'
        '  File "/srv/app/payment.py", line 42, in charge\n'
        f'  File "{json.__file__}", line 3, in loads\n'
        "ValueError: x\n"
    )
    assert errors_module.app_frame(stack) == "/srv/app/payment.py:42 in charge"
    assert errors_module.app_frame(f'  File "{flask.__file__}", line 1, in x\n') is None
    assert errors_module.app_frame(None) is None


def test_error_groups_are_bounded_and_drop_the_one_seen_longest_ago():
    groups = errors_module.ErrorGroups(max_groups=3)
    for i in range(5):
        groups.add({"route": f"/r{i}", "error_type": "500", "trace_id": str(i), "time": 100.0 + i})
    assert sorted(g["route"] for g in groups.snapshot()) == ["/r2", "/r3", "/r4"]


def test_the_error_groups_snapshot_is_kept_until_an_error_changes_a_group():
    groups = errors_module.ErrorGroups()
    groups.add({"route": "/a", "error_type": "500", "trace_id": "1", "time": 100.0})
    first = groups.snapshot()
    assert groups.snapshot() is first  # a worker shares it every publish: not rebuilt while unchanged
    groups.add({"route": "/a", "error_type": "500", "trace_id": "2", "time": 160.0})
    second = groups.snapshot()
    assert second is not first
    assert ([g["count"] for g in first], [g["count"] for g in second]) == ([1], [2])
    assert second[0]["timeline"] == [[60, 1], [120, 1]]


def test_child_spans_of_contrib_instrumentations_join_the_tree():
    """sqlite3 and requests instrumentations, given our tracer provider (as h12's work will do for all)."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    app, monitor, state = make_app()
    RequestsInstrumentor().instrument(tracer_provider=monitor.tracer_provider)
    try:
        import requests

        @app.get("/report")
        def report():
            connection = SQLite3Instrumentor().instrument_connection(
                sqlite3.connect(":memory:"), tracer_provider=monitor.tracer_provider
            )
            connection.cursor().execute("SELECT 1").fetchall()
            url = f"http://user:pw@127.0.0.1:{upstream.server_port}/quote?api_key=s3cret&x=1"
            requests.get(url, timeout=5).raise_for_status()
            return "never"

        client = closing_client(app)
        assert client.get("/report").status_code == 500
        [tree] = state.details.snapshot()
        names = [(s["name"], s["depth"], s["scope"]) for s in tree["spans"]]
        assert names[0] == ("GET /report", 0, "otel_monitor")
        assert ("SELECT", 1, "opentelemetry.instrumentation.sqlite3") in names
        assert ("GET", 1, "opentelemetry.instrumentation.requests") in names
        [http] = [s for s in tree["spans"] if s["scope"] == "opentelemetry.instrumentation.requests"]
        assert http["kind"] == "client" and http["status"] == "error"
        attrs = http["attributes"]  # old or new HTTP semantic conventions, whichever the contrib package uses
        assert attrs.get("http.response.status_code", attrs.get("http.status_code")) == 503
        url = attrs.get("url.full", attrs.get("http.url"))
        assert "s3cret" not in url and "pw" not in url and "api_key=REDACTED" in url and "x=1" in url
        assert tree["exception"]["exception.type"] == "requests.exceptions.HTTPError"
        text = tree["exception"]["exception.message"] + tree["exception"]["exception.stacktrace"] + tree["error"]
        assert "api_key=REDACTED" in text and "s3cret" not in text and "user:pw" not in text
    finally:
        RequestsInstrumentor().uninstrument()
        upstream.shutdown()
        monitor.shutdown(timeout=2)


def test_a_call_the_app_makes_to_itself_keeps_each_request_tree_apart():
    """Two local roots in one trace: the inner request must not take the outer one's children."""
    from opentelemetry import context as otel_context
    from opentelemetry.propagate import inject

    app, monitor, state = make_app(analytics_slow_ms=1)  # every request is "slow": both are kept
    client = closing_client(app)

    @app.get("/outer")
    def outer():
        with monitor.tracer.start_as_current_span("before"):
            pass
        headers: dict = {}
        inject(headers)
        token = otel_context.attach(otel_context.Context())  # the inner request runs "elsewhere"
        try:
            client.get("/slow", headers=headers)
        finally:
            otel_context.detach(token)
        time.sleep(0.002)
        return "ok"

    try:
        client.get("/outer")
        trees = {t["name"]: t for t in state.details.snapshot()}
        assert trees["GET /outer"]["trace_id"] == trees["GET /slow"]["trace_id"]
        assert [s["name"] for s in trees["GET /outer"]["spans"]] == ["GET /outer", "before"]
        assert [s["name"] for s in trees["GET /slow"]["spans"]] == ["GET /slow", "sleep"]
    finally:
        monitor.shutdown(timeout=2)


def test_spans_outside_any_request_wait_in_a_bounded_buffer():
    from opentelemetry import trace

    app, monitor, state = make_app()
    tracer = monitor.tracer
    try:
        with tracer.start_as_current_span("job"):
            for i in range(trace_store.MAX_SPANS + 10):
                tracer.start_span(f"step {i}").end()
        # the job's root ended and took its children with it (no request: nothing kept)
        assert state.details.pending == {} and state.details.snapshot() == []

        for _ in range(trace_store.MAX_PENDING + 50):  # roots that never end
            with trace.use_span(tracer.start_span("never ends"), end_on_exit=False):
                tracer.start_span("child").end()
        assert len(state.details.pending) == trace_store.MAX_PENDING and state.details.dropped_pending == 50

        with trace.use_span(tracer.start_span("never ends either"), end_on_exit=False) as big:
            for _ in range(trace_store.MAX_SPANS + 5):
                tracer.start_span("child").end()
        waiting = state.details.pending[big.get_span_context().trace_id]
        assert len(waiting) == trace_store.MAX_SPANS + 1 and waiting[0] == 5  # [dropped count, spans...]
    finally:
        monitor.shutdown(timeout=2)


def test_setting_zero_keeps_no_trees_and_no_error_groups():
    app, monitor, state = make_app(analytics_trace_details=0)
    client = closing_client(app)
    try:
        client.get("/orders/13")
        assert state.details.snapshot() == []
        assert get(client, "/errors").get_json() == {"groups": [], "total": 0, "timeline_step_s": 60}
        assert get(client, "/traces").get_json()["traces"][0]["detail"] is False
    finally:
        monitor.shutdown(timeout=2)


#: requests per measured batch; the kept trees, rings and error examples are full before the first
BATCH = 300
#: what the second batch may add to otel_monitor's allocations: less than one small object (an
#: empty dict is 64 bytes) per request. Measured: noise (regex matches, a dict resize) 1-6 KiB; a
#: leak of one 40-byte bytearray per request adds ~29 KiB, past the 19 KiB bound
LEAK_BYTES_PER_REQUEST = 64


def test_memory_stays_flat_over_two_equal_batches_of_failing_requests():
    app, monitor, state = make_app(analytics_trace_details=20)
    app.logger.disabled = True  # Flask's own traceback log is not what is measured
    client = closing_client(app)

    def batch(n: int) -> None:
        for _ in range(n):
            assert client.get("/orders/13").status_code == 500

    try:
        warm_up = monitor.settings.analytics_traces_kept + 100
        batch(warm_up)  # imports, caches, every ring full
        gc.collect()
        tracemalloc.start()
        try:
            batch(BATCH)  # allocations settle
            gc.collect()
            first = tracemalloc.take_snapshot()
            batch(BATCH)  # the same again: whatever it keeps per request shows here
            gc.collect()
            second = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = {
            str(s.traceback): s.size_diff
            for s in second.compare_to(first, "filename")
            if "otel_monitor" in str(s.traceback) and s.size_diff > 0
        }
        assert sum(grown.values()) < BATCH * LEAK_BYTES_PER_REQUEST, f"otel_monitor's allocations grew: {grown}"
        assert len(state.details.failed) == 20 and state.details.pending == {}
        [group] = get(client, "/errors").get_json()["groups"]
        assert group["count"] == warm_up + 2 * BATCH and len(group["examples"]) == errors_module.EXAMPLES
    finally:
        monitor.shutdown(timeout=2)


def test_custom_metrics_are_sampled_into_series_over_the_window():
    from otel_monitor.analytics.custom_series import CustomSeries

    series = CustomSeries(size=4)
    for i, t in enumerate((100.0, 110.0, 120.0, 130.0, 140.0)):
        series.add(
            t,
            [
                {"name": "shop.orders", "type": "counter", "points": [{"value": 10 * i}, {"value": 5 * i}]},
                {"name": "shop.queue", "type": "gauge", "unit": "{job}", "points": [{"value": 7 - i}]},
                {"name": "shop.latency", "type": "histogram", "points": [{"count": 2 * i, "sum": 1.0}]},
                {"name": "http.server.request.duration", "type": "histogram", "points": [{"count": 9}]},
            ],
        )
    body = series.window(now=140.0, length=60.0)
    assert set(body["series"]) == {"shop.orders", "shop.queue", "shop.latency"}  # built-ins are left out
    orders = body["series"]["shop.orders"]
    assert orders["t"] == [120.0, 130.0, 140.0] and orders["values"] == [1.5, 1.5, 1.5]  # 15 per 10 s
    assert body["series"]["shop.queue"]["values"] == [5, 4, 3] and body["series"]["shop.queue"]["label"] == "value"
    assert body["series"]["shop.latency"]["values"] == [0.2, 0.2, 0.2]
    # the ring holds 4 samples (110..140): 30 s of a 60 s window, and says so
    assert body["window_available"] is False and body["covered_s"] == 30.0 and body["step_s"] == 10.0
    series.add(150.0, [{"name": "shop.orders", "type": "counter", "points": [{"value": 3}]}])  # a reset
    assert series.window(now=150.0, length=15.0)["series"]["shop.orders"]["values"] == [None]


def test_metrics_series_endpoint_charts_a_custom_counter():
    app, monitor, state = make_app()
    orders = monitor.counter("shop.orders.created", "Orders", unit="{order}")
    client = closing_client(app)
    try:
        clock = [1000.0]
        state.use_clock(lambda: clock[0])
        for _ in range(3):
            orders.add(20)
            state.sample()
            clock[0] += 10
        body = get(client, "/metrics/series?window=1m").get_json()
        assert body["window"] == "1m" and body["window_available"] is False
        assert body["series"]["shop.orders.created"]["values"] == [2.0, 2.0]
        assert get(client, "/metrics/series?window=nope").status_code == 400
    finally:
        monitor.shutdown(timeout=2)
