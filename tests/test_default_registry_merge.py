"""The merge of prometheus_client's default registry across workers (otel_monitor.metrics._default_registry)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from otel_monitor.metrics import _default_registry


def _worker(requests: int, in_flight: float) -> list[dict]:
    registry = CollectorRegistry()
    Counter("orders", "Orders", registry=registry).inc(requests)
    Gauge("in_flight", "In flight", registry=registry).set(in_flight)
    Histogram("latency_seconds", "Latency", buckets=(0.1, 1.0), registry=registry).observe(0.5)
    return _default_registry.collect(registry)


def _samples(entries: list[dict]) -> dict[tuple, float]:
    return {(name, tuple(sorted(labels.items()))): value for e in entries for name, labels, value in e["s"]}


def test_counters_and_histograms_add_up_over_live_workers_and_the_dead_workers_archive():
    merged = _default_registry.merge(_worker(3, 1), 101, [(102, _worker(4, 2))], archive=_worker(5, 9))
    samples = _samples(merged)
    assert samples[("orders_total", ())] == 12
    assert samples[("latency_seconds_bucket", (("le", "1.0"),))] == 3
    assert samples[("latency_seconds_count", ())] == 3


def test_gauges_keep_one_series_per_live_worker_and_a_dead_workers_gauges_go_with_it():
    merged = _default_registry.merge(_worker(3, 1), 101, [(102, _worker(4, 2))], archive=_worker(5, 9))
    gauges = {k: v for k, v in _samples(merged).items() if k[0] == "in_flight"}
    assert gauges == {("in_flight", (("pid", "101"),)): 1, ("in_flight", (("pid", "102"),)): 2}


def test_created_timestamps_keep_the_earliest_and_info_is_shown_once():
    early, late = _worker(1, 0), _worker(1, 0)
    for family in early:
        for sample in family["s"]:
            if sample[0].endswith("_created"):
                sample[2] = 1.0
    info = {"n": "python_info", "t": "gauge", "d": "", "u": "", "s": [["python_info", {"v": "3"}, 1.0]]}
    merged = _default_registry.merge([*late, info], 101, [(102, [*early, info])], [])
    samples = _samples(merged)
    assert samples[("orders_created", ())] == 1.0
    assert [k for k in samples if k[0] == "python_info"] == [("python_info", (("v", "3"),))]


def test_the_merged_families_are_valid_exposition():
    merged = _default_registry.merge(_worker(3, 1), 101, [(102, _worker(4, 2))], [])

    class Merged:
        def collect(self):
            return _default_registry.families(merged)

    text = generate_latest(Merged()).decode()
    assert "orders_total 7.0" in text and 'in_flight{pid="102"} 2.0' in text


def _cpu(seconds: float) -> list[dict]:
    registry = CollectorRegistry()
    Counter("cpu_seconds", "CPU", registry=registry).inc(seconds)
    return _default_registry.collect(registry)


def test_a_worker_moving_into_the_archive_never_changes_the_total_by_a_rounding_step():
    # 0.04 + 2.51 rounded first, then + 0.78, is one float step above the correctly rounded sum
    live = [(101, _cpu(0.04)), (102, _cpu(2.51)), (103, _cpu(0.78))]
    before = _samples(_default_registry.merge([], None, live, archive=[]))[("cpu_seconds_total", ())]
    # workers 101 and 102 die (a max_requests recycle), one after the other: folded into the archive
    archive = _default_registry.merge([], None, [], _cpu(0.04), exact=True)
    archive = _default_registry.merge([], None, [], archive + _cpu(2.51), exact=True)
    after = _samples(_default_registry.merge([], None, [(103, _cpu(0.78))], archive=archive))[("cpu_seconds_total", ())]
    assert before == after == math.fsum([0.04, 2.51, 0.78]) != 3.33
