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
        self.instrumentation_scope, self.events = None, ()  # what a kept tree reads besides


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


# -- the plain request, counted in line (issue 26: the analytics' per-request cost) ---------------


def _request(route="/orders", method="GET", user=None, end=1_000_000, status=None, parent=None, trace_id=7):
    attributes = {"http.route": route, "http.request.method": method}
    if route is None:
        del attributes["http.route"]
    if user is not None:
        attributes["enduser.id"] = user
    span = _Ended(attributes=attributes, start=0, end=end, status=status)
    span.parent = parent
    span.context = trace.SpanContext(trace_id, 9, False)
    return span


def _users(clock):
    from otel_monitor.analytics.users import IdentityCounts

    return IdentityCounts("enduser.id", 10, (0.1, 1.0), clock, exclude_prefix=PREFIX)


def _by_minute(counts):
    return {
        b["t"]: (sorted(map(tuple, b["anonymous"])), sorted((r, m, sorted(e.items())) for r, m, _, e in b["endpoints"]))
        for b in counts.snapshot()
    }


def test_the_users_counts_through_the_processor_equal_those_of_the_count_on_its_own_whatever_the_requests():
    from otel_monitor.analytics.trace_store import TraceStore

    now = [600.0]
    alone, inline = _users(lambda: now[0]), _users(lambda: now[0])
    spans = AnalyticsSpans(RecentRequests(slow_ms=5, kept=10), TraceStore(5, 10), (inline,))
    script = [
        (600.0, _request()),  # the endpoint's first: tracked, then counted in line
        (601.0, _request()),
        (602.0, _request(user="ann")),
        (603.0, _request(status=Status(StatusCode.ERROR))),
        (604.0, _request(end=10_000_000)),  # slow
        (605.0, _request(route=None)),  # unmatched
        (606.0, _request(route=None)),
        (607.0, _request(route=PREFIX + "/api/users")),  # the analytics' own: never counted
        (608.0, _request(route="")),
        (660.0, _request()),  # the next minute
        (661.0, _request(method="POST")),
        (610.0, _request()),  # the clock set back
        (662.0, _request(route=5)),  # not a string
        (663.0, _request(route=5)),
    ]
    for t, span in script:
        now[0] = t
        alone.on_end(span)
        spans.on_end(span)
    assert (
        _by_minute(inline)
        == _by_minute(alone)
        == {
            600: (
                [("(unmatched)", "GET", 3), ("/orders", "GET", 5)],
                [("/orders", "GET", [("ann", [1, 0, 0, [[0, 1]]])])],
            ),
            660: ([("/orders", "GET", 1), ("/orders", "POST", 1), ("5", "GET", 2)], []),
        }
    )


def test_more_anonymous_requests_than_may_wait_are_all_counted_and_the_waiting_list_stays_bounded():
    from otel_monitor.analytics.spans import ANONYMOUS_BATCH

    counts = _users(lambda: 600.0)
    spans = AnalyticsSpans(RecentRequests(slow_ms=5, kept=10), counts=(counts,))
    n = 3 * ANONYMOUS_BATCH + 7
    for _ in range(n):
        spans.on_end(_request())
    since, until, waiting = counts.current
    assert (since, until) == (600.0, 660.0)
    assert 0 < len(waiting["/orders"]["GET"]) <= ANONYMOUS_BATCH
    assert _by_minute(counts) == {600: ([("/orders", "GET", n)], [])}
    assert waiting["/orders"]["GET"] == []  # read: all counted


def test_anonymous_counts_stay_exact_with_many_threads_ending_requests_and_reading_at_once():
    import sys
    import threading

    counts = _users(lambda: 600.0)
    spans = AnalyticsSpans(RecentRequests(slow_ms=5, kept=10), counts=(counts,))
    threads, per_thread, reads = 8, 8_000, []
    start = threading.Barrier(threads + 1)

    def serve(route):
        start.wait()
        for _ in range(per_thread):
            spans.on_end(_request(route=route))

    def read():
        start.wait()
        while any(worker.is_alive() for worker in workers) and len(reads) < 100_000:
            reads.append(counts.snapshot())

    workers = [threading.Thread(target=serve, args=(f"/r{i % 2}",)) for i in range(threads)]
    reader = threading.Thread(target=read)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a thread switch wherever one may happen
    try:
        for thread in (*workers, reader):
            thread.start()
        for thread in (*workers, reader):
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in (*workers, reader))
    total = threads * per_thread
    assert _by_minute(counts) == {600: ([("/r0", "GET", total // 2), ("/r1", "GET", total // 2)], [])}
    seen = [sum(n for _, _, n in bucket["anonymous"]) for snapshot in reads for bucket in snapshot]
    assert seen == sorted(seen) and all(0 <= n <= total for n in seen)  # counts only grow


def test_one_plain_request_in_sample_every_keeps_its_tree_through_the_processor_as_on_its_own():
    from otel_monitor.analytics.trace_store import TraceStore

    alone, inline = TraceStore(5, 30, sample_every=3), TraceStore(5, 30, sample_every=3)
    spans = AnalyticsSpans(RecentRequests(slow_ms=5, kept=10), inline, others=inline.other_ended)
    child_of_7 = _Ended(kind=SpanKind.INTERNAL)
    child_of_7.parent = trace.SpanContext(7, 9, False)
    child_of_7.context = trace.SpanContext(7, 11, False)
    script = [_request(trace_id=i) for i in range(1, 7)]
    script.insert(2, _request(trace_id=50, status=Status(StatusCode.ERROR)))  # failed: kept, not counted
    script.insert(5, child_of_7)  # trace 7's child waits: its request reaches the trace details
    script += [_request(trace_id=7), _request(trace_id=8), _request(trace_id=9)]
    for span in script:
        alone.on_end(span)
        spans.on_end(span)
    for store in (alone, inline):
        assert [tree["trace_id"][-2:] for tree in store.sampled] == ["03", "06", "09"]
        assert [tree["trace_id"][-2:] for tree in store.failed] == ["32"]
        assert store.pending == {}
    # nine plain requests each took one turn in both stores: the next kept is again the third
    next_turns = [[next(store.sample_turns) for _ in range(6)] for store in (inline, alone)]
    assert next_turns == [[False, False, True] * 2] * 2


def test_plain_requests_ended_on_many_threads_at_once_keep_exactly_one_tree_in_sample_every():
    import sys
    import threading

    from opentelemetry.sdk.trace import ReadableSpan

    from otel_monitor.analytics.trace_store import TraceStore

    threads, per_thread, every = 8, 21_000, 7
    total = threads * per_thread
    kept = []  # each kept tree's kind, counted as it is kept (the store itself holds only the last few)
    store = TraceStore(5, 10, sample_every=every, annotators=(lambda span, tree: kept.append(tree["kind"]),))
    spans = AnalyticsSpans(RecentRequests(slow_ms=5, kept=10), store, others=store.other_ended)
    attributes = {"http.route": "/orders", "http.request.method": "GET"}
    start = threading.Barrier(threads)

    def serve(trace_id):
        # A real ended span: its ``parent`` and ``status`` are properties (a Python call, where a
        # thread switch may happen), as in every request.
        span = ReadableSpan(
            "GET /orders",
            trace.SpanContext(trace_id, 9, False),
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=0,
            end_time=1_000_000,
        )
        start.wait()
        for _ in range(per_thread):
            spans.on_end(span)

    workers = [threading.Thread(target=serve, args=(i + 1,)) for i in range(threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a thread switch wherever one may happen
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in workers)
    assert (len(kept), set(kept)) == (total // every, {"sample"})
    assert [next(store.sample_turns) for _ in range(2 * every)] == ([False] * (every - 1) + [True]) * 2


class _ReadWhileOthersEnd(_Ended):
    """A plain request span whose ``parent``, when the processor first reads it, ends ``meanwhile``
    other requests first: the thread switch that may happen there (a property is a Python call),
    made certain."""

    def __init__(self, meanwhile, **kwargs):
        super().__init__(**kwargs)
        self._meanwhile = meanwhile

    @property
    def parent(self):
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return None

    @parent.setter
    def parent(self, value):  # _Ended sets it: this span is a local root whatever it is told
        pass


def test_requests_ended_while_another_requests_span_is_read_take_their_own_turns_and_it_its_own():
    from otel_monitor.analytics.trace_store import TraceStore

    store = TraceStore(5, 100, sample_every=7)
    spans = AnalyticsSpans(RecentRequests(slow_ms=5, kept=10), store, others=store.other_ended)

    def three_others():
        for trace_id in (2, 3, 4):
            spans.on_end(_request(trace_id=trace_id))

    attributes = {"http.route": "/orders", "http.request.method": "GET"}
    spans.on_end(_ReadWhileOthersEnd(three_others, attributes=attributes, start=0, end=1_000_000))
    for trace_id in (5, 6, 7):
        spans.on_end(_request(trace_id=trace_id))
    # seven plain requests, seven turns: the seventh to end is kept
    assert [tree["trace_id"][-2:] for tree in store.sampled] == ["07"]
    assert [next(store.sample_turns) for _ in range(7)] == [False] * 6 + [True]
