"""The trace details' own sampling (analytics.trace_store.TraceStore): one plain request in
``sample_every`` keeps its tree, each taking one turn of the store's ``sample_turns``; failed and slow
requests take none; ``keep_sampled`` keeps the tree of a request whose turn its caller took."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from otel_monitor.analytics.trace_store import TraceStore

ORDERS = {"http.route": "/orders", "http.request.method": "GET"}


def _span(trace_id, span_id=9, parent=None, kind=SpanKind.SERVER, end=1_000_000, status=None, attributes=ORDERS):
    return ReadableSpan(
        "GET /orders" if kind is SpanKind.SERVER else "SELECT orders",
        SpanContext(trace_id, span_id, False),
        parent=SpanContext(trace_id, parent, False) if parent is not None else None,
        kind=kind,
        attributes=attributes,
        status=status or Status(),
        start_time=0,
        end_time=end,
    )


def _turns(store, n):
    return [next(store.sample_turns) for _ in range(n)]


@pytest.mark.parametrize(
    ("sample_every", "every", "turns"),
    [(3, 3, [False, False, True] * 3), (1, 1, [True] * 9), (0, 1, [True] * 9), (-5, 1, [True] * 9)],
)
def test_the_sampling_turns_keep_every_sample_every_th_plain_request_the_sample_every_th_first(
    sample_every, every, turns
):
    store = TraceStore(5, 30, sample_every=sample_every)
    assert (store.sample_every, _turns(store, 9)) == (every, turns)


def test_the_sampling_turns_are_the_stores_own_and_cannot_be_replaced():
    first, second = TraceStore(5, 30, sample_every=2), TraceStore(5, 30, sample_every=2)
    assert _turns(first, 3) == [False, True, False]
    assert _turns(second, 2) == [False, True]  # another store's turns are apart
    with pytest.raises(AttributeError):
        first.sample_turns = iter([True])
    with pytest.raises(AttributeError):
        first.sample_every = 1  # would not change the turns: fixed when the store is made
    assert not hasattr(first, "until_sample")  # no countdown for anyone else to write


def test_plain_requests_ended_on_the_store_keep_one_tree_in_sample_every_each_taking_one_turn():
    store = TraceStore(5, 30, sample_every=3)
    for trace_id in range(1, 8):
        store.on_end(_span(trace_id))
    assert [(tree["trace_id"][-2:], tree["kind"]) for tree in store.sampled] == [("03", "sample"), ("06", "sample")]
    assert _turns(store, 3) == [False, True, False]  # seven turns taken, the ninth is the next kept


def test_failed_and_slow_requests_are_kept_and_take_no_turn():
    store = TraceStore(5, 30, sample_every=3)
    store.on_end(_span(1))
    store.on_end(_span(2, status=Status(StatusCode.ERROR, "boom")))
    store.on_end(_span(3, end=6_000_000))  # slower than 5 ms
    store.on_end(_span(4))
    assert [tree["trace_id"][-2:] for tree in store.failed] == ["02"]
    assert [tree["trace_id"][-2:] for tree in store.slow] == ["03"]
    assert list(store.sampled) == []
    assert _turns(store, 3) == [True, False, False]  # the two plain ones took the first two turns


def test_a_child_request_span_waits_for_its_root_and_takes_no_turn():
    store = TraceStore(5, 30, sample_every=2)
    store.on_end(_span(1, span_id=12, parent=9))  # a request this app made to itself, still inside the outer one
    assert list(store.pending) == [1] and list(store.sampled) == []
    assert _turns(store, 2) == [False, True]


def test_keep_sampled_keeps_the_plain_requests_tree_with_its_waiting_children_and_takes_no_turn():
    store = TraceStore(5, 30, sample_every=3)
    store.on_end(_span(1, span_id=10, parent=9, kind=SpanKind.CLIENT))
    store.keep_sampled(_span(1), ORDERS)
    [tree] = store.sampled
    assert (tree["kind"], [span["name"] for span in tree["spans"]]) == ("sample", ["GET /orders", "SELECT orders"])
    assert store.pending == {} and list(store.failed) == list(store.slow) == []
    assert _turns(store, 3) == [False, False, True]


def test_keep_sampled_leaves_out_the_analytics_own_requests_and_runs_the_annotators():
    seen = []
    store = TraceStore(5, 30, exclude_prefix="/otel-monitor/", annotators=(lambda span, tree: seen.append(span),))
    own = {"http.route": "/otel-monitor/api/summary", "http.request.method": "GET"}
    store.keep_sampled(_span(1, attributes=own), own)
    orders = _span(2)
    store.keep_sampled(orders, ORDERS)
    assert [tree["trace_id"][-2:] for tree in store.sampled] == ["02"]
    assert seen == [orders]
