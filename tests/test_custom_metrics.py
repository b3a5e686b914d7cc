"""Custom metrics in one line: counter, up/down counter, histogram, gauge (set or callback)."""

from __future__ import annotations

import re
import threading
import time

from otel_monitor.metrics import instruments
from otel_monitor.testing import Telemetry

from .conftest import HANG_S, completes


def test_counter_histogram_and_up_down_counter_record_with_attributes(monitors):
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    orders = monitor.counter("shop.orders", "Orders placed", unit="{order}")
    basket = monitor.histogram("shop.basket.value", "Basket value", unit="EUR", buckets=(10, 50, 100))
    queue = monitor.up_down_counter("shop.queue.depth", "Jobs waiting")
    orders.add(2, {"product": "book"})
    orders.add(1, {"product": "pen"})
    basket.record(42.5)
    queue.add(3)
    queue.add(-1)
    assert telemetry.point("shop.orders", product="book").value == 2
    assert telemetry.point("shop.orders", product="pen").value == 1
    assert telemetry.metrics()["shop.orders"].unit == "{order}"
    hist = telemetry.point("shop.basket.value")
    assert (hist.count, hist.sum, list(hist.explicit_bounds)) == (1, 42.5, [10, 50, 100])
    assert telemetry.point("shop.queue.depth").value == 2


def test_gauge_with_a_callback_is_read_at_collection_and_shows_on_metrics_endpoint(monitors):
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    level = {"value": 7}
    monitor.gauge("tank.level", "Water level", callback=lambda: level["value"], unit="l")
    assert telemetry.point("tank.level").value == 7
    level["value"] = 9
    assert telemetry.point("tank.level").value == 9
    body = app.test_client().get("/metrics").get_data(as_text=True)
    assert "\ntank_level_l 9\n" in body


def test_gauge_callback_may_return_several_labelled_values(monitors):
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    monitor.gauge("pool.size", callback=lambda: [(3, {"pool": "db"}), (5, {"pool": "cache"})])
    assert telemetry.point("pool.size", pool="db").value == 3
    assert telemetry.point("pool.size", pool="cache").value == 5


def test_gauge_set_records_the_last_value(monitors):
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    temperature = monitor.gauge("room.temperature", unit="Cel")
    temperature.set(20.5)
    temperature.set(21.0)
    assert telemetry.point("room.temperature").value == 21.0


def test_instruments_created_before_init_app_work_after_it(monitors):
    from flask import Flask

    monitor = monitors(system_metrics=False)
    hits = monitor.counter("early.hits")
    app = Flask("factory")
    monitor.init_app(app)
    telemetry = Telemetry(monitor)
    hits.add(5)
    assert telemetry.point("early.hits").value == 5


def test_a_custom_instrument_folds_attribute_sets_beyond_the_limit_into_one_overflow_series(monkeypatch, monitors):
    monkeypatch.setattr(instruments, "CARDINALITY_LIMIT", 100)
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)
    counter = monitor.counter("user.logins")
    for i in range(1000):
        counter.add(1, {"user": f"u{i}"})
    points = telemetry.points("user.logins")
    assert len(points) == 101
    overflow = telemetry.point("user.logins", **{"otel.metric.overflow": True})
    assert overflow.value == 900


def test_a_raising_gauge_callback_is_skipped_and_the_other_metrics_are_intact(caplog, monitors):
    app, monitor = monitors.app()
    telemetry = Telemetry(monitor)

    def broken():
        raise RuntimeError("sensor offline")

    monitor.gauge("broken.gauge", callback=broken)
    monitor.gauge("fine.gauge", callback=lambda: 1)
    client = app.test_client()
    for _ in range(3):
        response = client.get("/metrics")
        assert response.status_code == 200
        assert "fine_gauge" in response.get_data(as_text=True)
    assert telemetry.points("broken.gauge") == []


def test_a_gauge_callback_that_does_not_return_does_not_hold_up_the_metrics_endpoint(monitors, caplog):
    app, monitor = monitors.app()
    gate = threading.Event()
    monitor.gauge("slow.gauge", callback=lambda: gate.wait(HANG_S) and 7)
    client = app.test_client()

    def scrape() -> str:
        response = client.get("/metrics")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    with caplog.at_level("WARNING", logger="otel_monitor"):
        body = completes(scrape)  # the callback has not returned: the scrape answers anyway ...
    assert "slow_gauge" not in body  # ... with the previous value: none yet
    assert [r.getMessage() for r in caplog.records if "slow.gauge" in r.getMessage()] == [
        "otel_monitor: gauge 'slow.gauge' callback takes longer than 0.25s; serving its previous value"
    ]
    gate.set()  # it returns: a later scrape serves its value
    deadline = time.monotonic() + HANG_S
    while not re.search(r"^slow_gauge 7(\.0)?$", body := scrape(), re.M):
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_slow_gauge_callbacks_run_at_once_sharing_one_budget_per_read(monitors, monkeypatch):
    # Eight callbacks that can only return together (a barrier of eight): read one after another,
    # the first would wait alone and the scrape would serve none of them.
    monkeypatch.setattr(instruments, "CALLBACK_BUDGET", HANG_S)  # room for a busy machine: no race
    app, monitor = monitors.app()
    together = threading.Barrier(8)

    def reading(value: int):
        def callback() -> int:
            together.wait(HANG_S)  # returns once all eight callbacks are running
            return value

        return callback

    for i in range(8):
        monitor.gauge(f"together.gauge.{i}", callback=reading(i))
    body = completes(lambda: app.test_client().get("/metrics").get_data(as_text=True))
    values = {int(m[0]): float(m[1]) for m in re.findall(r"^together_gauge_(\d) (\S+)$", body, re.M)}
    assert values == {i: i for i in range(8)}, body
