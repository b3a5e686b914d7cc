"""The analytics' one span processor (analytics.spans.AnalyticsSpans): an ended request span is read
once and its parts handed to the recent requests, the trace details and the users' counts."""

from __future__ import annotations

from flask import Flask, request
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_monitor.analytics import analytics_of
from otel_monitor.analytics.spans import AnalyticsSpans, RecentRequests, request_parts
from otel_monitor.testing import closing_client

PREFIX = "/otel-monitor"
TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class _Ended:
    """An ended span as the processors see it (only the fields they read)."""

    def __init__(self, kind=SpanKind.SERVER, attributes=None, start=1_000, end=1_000_000_000, status=None):
        self.kind = kind
        self.attributes = attributes
        self.start_time, self.end_time = start, end
        self.status = status or Status()
        self.name = "GET /orders"
        self.parent = None
        self.context = trace.SpanContext(7, 9, False)


class _Consumer:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def request_ended(self, span, attributes, duration, failed):
        self.calls.append((self.name, span, attributes, duration, failed))


def test_a_request_span_is_handed_once_to_each_consumer_in_order_with_its_duration_and_failure():
    calls, others = [], []
    recent = RecentRequests(slow_ms=5_000, kept=10)
    spans = AnalyticsSpans(
        recent, consumers=(_Consumer("details", calls), _Consumer("users", calls)), others=others.append
    )
    attributes = {"http.route": "/orders", "http.request.method": "GET"}
    ok = _Ended(attributes=attributes)
    spans.on_end(ok)
    assert calls == [("details", ok, attributes, 999_999_000, False), ("users", ok, attributes, 999_999_000, False)]
    failed = _Ended(attributes=None, status=Status(StatusCode.ERROR), end=None)
    spans.on_end(failed)
    assert calls[2:] == [("details", failed, {}, 0, True), ("users", failed, {}, 0, True)]
    assert others == []


def test_only_a_slow_or_failed_request_span_reaches_the_recent_requests():
    recent = RecentRequests(slow_ms=1, kept=10)
    spans = AnalyticsSpans(recent)
    attributes = {"http.route": "/orders", "http.request.method": "GET", "http.response.status_code": 200}
    spans.on_end(_Ended(attributes=attributes, start=0, end=999_999))  # under 1 ms: neither
    assert (list(recent.slow), list(recent.failed)) == ([], [])
    spans.on_end(_Ended(attributes=attributes, start=0, end=2_000_000))
    spans.on_end(_Ended(attributes=attributes, start=0, end=10, status=Status(StatusCode.ERROR, "boom")))
    assert [(e[3], e[6]) for e in recent.slow] == [("/orders", 2_000_000)]
    assert [(e[3], e[6], e[8]) for e in recent.failed] == [("/orders", 10, "boom")]


def test_a_span_that_is_not_a_request_span_goes_only_to_the_others():
    calls, others = [], []
    recent = RecentRequests(slow_ms=0, kept=10)
    spans = AnalyticsSpans(recent, consumers=(_Consumer("details", calls),), others=others.append)
    child = _Ended(kind=SpanKind.INTERNAL, status=Status(StatusCode.ERROR))
    spans.on_end(child)
    assert (others, calls, list(recent.failed)) == ([child], [], [])
    AnalyticsSpans(recent, consumers=(_Consumer("details", calls),)).on_end(child)  # no others: dropped quietly
    assert calls == []


def test_the_monitor_adds_one_analytics_processor_that_keeps_the_light_span_and_feeds_every_part(monitors):
    app = Flask("orders")

    @app.get("/boom")
    def boom():
        with monitor.tracer.start_as_current_span("db"):  # the monitor's own tracer, not the global one
            pass
        raise RuntimeError("boom")

    monitor = monitors(
        app,
        analytics_token=TOKEN,
        system_metrics=False,
        enduser_id=lambda: request.headers.get("X-User"),
    )
    state = analytics_of(monitor)
    chain = monitor.pipeline.tracer_provider._active_span_processor
    ours = [p for p in chain._span_processors if type(p).__module__.startswith("otel_monitor.analytics")]
    assert ours == [state.request_spans]
    assert chain.read_at_end_only is True  # the request path's light span stays available
    client = closing_client(app)
    for _ in range(2):
        assert client.get("/boom", headers={"X-User": "bob"}).status_code == 500
    users = client.get(PREFIX + "/users?window=15m", headers=AUTH).get_json()["users"]
    assert [(u["id"], u["requests"], u["errors"]) for u in users] == [("bob", 2, 2)]
    assert [(e[3], e[5]) for e in state.recent.failed] == [("/boom", 500), ("/boom", 500)]
    assert [[s["name"] for s in tree["spans"]] for tree in state.details.failed] == [["GET /boom", "db"]] * 2
    assert state.details.pending == {}  # each request's child span left with its request span


def test_a_request_span_sharing_an_unset_status_object_is_not_failed_and_an_error_after_it_is():
    calls = []
    spans = AnalyticsSpans(RecentRequests(slow_ms=5_000, kept=10), consumers=(_Consumer("users", calls),))
    unset = Status()
    for status in (unset, unset, Status(StatusCode.ERROR), unset, Status(StatusCode.OK), Status(StatusCode.ERROR)):
        spans.on_end(_Ended(attributes={}, status=status))
    assert [failed for *_, failed in calls] == [False, False, True, False, False, True]


def test_a_part_used_as_a_processor_on_its_own_reads_the_same_parts_as_the_analytics_processor():
    calls = []
    failed = _Ended(attributes={"http.route": "/boom"}, start=10, end=510, status=Status(StatusCode.ERROR))
    AnalyticsSpans(RecentRequests(slow_ms=5_000, kept=10), consumers=(_Consumer("part", calls),)).on_end(failed)
    assert request_parts(failed) == ({"http.route": "/boom"}, 500, True) == calls[0][2:]
    assert request_parts(_Ended(attributes=None, end=None)) == ({}, 0, False)
