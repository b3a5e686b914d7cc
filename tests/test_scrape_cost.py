"""What makes a scrape cheap changes nothing it shows: gzip when the client asks, exemplar objects
built again only for series with a new sampled request, and a histogram series' lines reused only
while its counts are unchanged."""

from __future__ import annotations

import gzip
import json

import pytest

import otel_monitor.request._request_metrics as request_metrics
from otel_monitor.metrics.exposition import TextWriter, accepts_gzip
from otel_monitor.testing import closing_client

from .conftest import build_app

OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


@pytest.fixture
def served():
    app, monitor = build_app(service_name="shop", metrics_default_registry=False)
    client = closing_client(app)
    for path in ("/", "/users/1", "/users/2", "/nope"):
        client.get(path)
    yield client, monitor
    monitor.shutdown(timeout=2)


def test_a_client_that_accepts_gzip_gets_the_same_exposition_gzipped(served):
    client, _ = served
    plain = client.get("/metrics")
    zipped = client.get("/metrics", headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == plain.headers["Vary"] == "Accept-Encoding"
    assert int(zipped.headers["Content-Length"]) == len(zipped.get_data())
    unzipped = gzip.decompress(zipped.get_data()).decode()
    # the same series and counts (the scrape-duration gauges of the two scrapes may differ)
    counts = [line for line in unzipped.splitlines() if line.startswith("http_server_request_duration_seconds_count")]
    assert counts == [
        line for line in plain.get_data(as_text=True).splitlines() if line.startswith(counts[0].split("{")[0])
    ]
    assert len(counts) == 3


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("GZIP;q=0.5, br", True),
        ("x-gzip", True),
        ("deflate, br", False),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("", False),
        ("*", False),  # identity is always acceptable: no reason to compress for a wildcard
    ],
)
def test_accept_encoding_is_read_with_its_quality_values(header, expected):
    assert accepts_gzip(header) is expected


def test_gzip_refused_with_q_zero_gets_the_plain_text(served):
    client, _ = served
    response = client.get("/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in response.headers
    assert "http_server_request_duration_seconds_count" in response.get_data(as_text=True)


class CountingExemplar(request_metrics.Exemplar):
    made = 0

    def __init__(self, *args, **kwargs):
        type(self).made += 1
        super().__init__(*args, **kwargs)


def test_exemplar_objects_are_built_again_only_for_a_series_with_a_new_sampled_request(served, monkeypatch):
    client, _ = served
    monkeypatch.setattr(request_metrics, "Exemplar", CountingExemplar)
    client.get("/metrics")
    made = CountingExemplar.made
    openmetrics = client.get("/metrics", headers={"Accept": OPENMETRICS_ACCEPT}).get_data(as_text=True)
    assert CountingExemplar.made == made  # nothing changed since the last collection: the same objects
    assert openmetrics.count('# {trace_id="') >= 3  # every series shows its exemplars all the same
    client.get("/users/3")
    openmetrics = client.get("/metrics", headers={"Accept": OPENMETRICS_ACCEPT}).get_data(as_text=True)
    users = [
        line
        for line in openmetrics.splitlines()
        if 'http_route="/users/<int:user_id>"' in line and '# {trace_id="' in line
    ]
    assert 1 <= len(users) <= 3
    assert CountingExemplar.made == made + len(users)  # only the changed series' exemplars were built


def test_reused_histogram_lines_equal_a_fresh_render_after_some_series_changed(served):
    client, monitor = served
    writer = TextWriter()
    first = writer.render(monitor.pipeline.reader.snapshot())
    client.get("/users/3")  # one series changes, the others do not
    data = monitor.pipeline.reader.snapshot()
    again = writer.render(data)
    assert again == TextWriter().render(data)
    assert again != first
    line = 'http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",'
    assert f'{line}http_route="/users/<int:user_id>",url_scheme="http"}} 3' in again
    assert f'{line}http_route="/",url_scheme="http"}} 1' in again


def test_the_worker_file_text_equals_the_entries_and_re_encodes_only_changed_series(monkeypatch):
    from otel_monitor.request._request_metrics import RequestMetrics
    from otel_monitor.telemetry.pipeline import DURATION_BUCKETS, SIZE_BUCKETS

    class Context:
        trace_id, span_id = 0xABC, 0xDEF

        class trace_flags:
            sampled = True

    metrics = RequestMetrics(DURATION_BUCKETS, SIZE_BUCKETS, body_sizes=True)
    assert metrics.entries_json("otel_monitor") == ""

    def same() -> None:
        text = metrics.entries_json("otel_monitor", "1.0")
        assert json.loads(f"[{text}]") == json.loads(json.dumps(metrics.as_entries("otel_monitor", "1.0")))

    for n in range(50):
        metrics.record(("GET", "http", f"/r{n}", 200, None), 0.003 * n, 10, 100 + n, Context())
    same()
    metrics.record(("GET", "http", "/r7", 200, None), 0.2, None, 5)  # one series changes
    metrics.record(("POST", "http", "/new", 201, None), 0.01, 1, 2)  # one series appears
    same()
    same()  # nothing changed: the same text

    encoded = []
    dumps = json.dumps
    monkeypatch.setattr(request_metrics.json, "dumps", lambda value, **kw: encoded.append(value) or dumps(value, **kw))
    metrics.entries_json("otel_monitor")
    assert [p for p in encoded if "buckets" in p] == []
    metrics.record(("GET", "http", "/r9", 200, None), 0.2, None, 5)  # duration and response size change
    metrics.entries_json("otel_monitor")
    assert [(p["a"]["http.route"], p["count"]) for p in encoded if "buckets" in p] == [("/r9", 2), ("/r9", 2)]


def histogram_entry(name: str, counts: dict[str, int]) -> dict:
    return {
        "scope": "otel_monitor",
        "version": None,
        "name": name,
        "description": "",
        "unit": "s",
        "kind": "histogram",
        "bounds": [1.0],
        "points": [
            {"a": {"route": route}, "start": 1, "count": n, "sum": float(n), "min": 0.5, "max": 0.5, "buckets": [n, 0]}
            for route, n in counts.items()
        ],
    }


def test_the_group_merge_redoes_only_metrics_whose_contributions_changed_and_equals_a_full_merge():
    from otel_monitor.metrics.multiprocess import MergeCache, merge

    cache = MergeCache()
    own = [histogram_entry("a", {"/x": 1}), histogram_entry("b", {"/y": 2})]
    peer = [histogram_entry("a", {"/x": 3, "/z": 1}), histogram_entry("b", {"/y": 4})]
    first = merge(own, 1, [(2, peer)], [], cache)
    assert first == merge(own, 1, [(2, peer)], [])
    again = merge(own, 1, [(2, peer)], [], cache)
    assert again[0] is first[0] and again[1] is first[1]  # nothing changed: the same merged entries
    changed_peer = [peer[0], histogram_entry("b", {"/y": 5})]  # one metric of one worker changed
    third = merge(own, 1, [(2, changed_peer)], [], cache)
    assert third[0] is first[0] and third[1] is not first[1]
    assert third == merge(own, 1, [(2, changed_peer)], [])
    assert [p["count"] for p in third[1]["points"]] == [7]
    archived = [histogram_entry("b", {"/y": 10})]  # a dead worker's counts join
    fourth = merge(own, 1, [(2, changed_peer)], archived, cache)
    assert fourth == merge(own, 1, [(2, changed_peer)], archived)
    assert [p["count"] for p in fourth[1]["points"]] == [17]
