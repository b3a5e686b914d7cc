"""The fleet source's domain logic over a fake Prometheus client (no HTTP): the client is a
constructor argument of FleetState, so its PromQL and its reading of the answers are tested alone.

tests/test_fleet_unit.py covers the HTTP client against a real HTTP server, tests/test_fleet_live.py
the whole against a real Prometheus."""

from __future__ import annotations

import pytest

from otel_monitor.analytics._prometheus_client import PromClient, PromSeries
from otel_monitor.analytics.prometheus_source import FleetState, FleetUnavailable, build_fleet
from otel_monitor.settings import resolve_settings

NOW = 1_800_000_000.0
ROUTE = {"http_route": "/users/<id>", "http_request_method": "GET", "http_response_status_code": "200"}


def _bucket(instance: str, le: str, value: float) -> PromSeries:
    return {"metric": {**ROUTE, "instance": instance, "le": le}, "value": [NOW, str(value)]}


class FakeClient:
    """Answers queries from canned rows by a word in the expression; records every call."""

    timeout = 2.0

    def __init__(self, answers: dict[str, list[PromSeries]], failing: bool = False) -> None:
        self.answers = answers
        self.failing = failing
        self.calls: list[tuple[str, float | None]] = []

    def query(self, expr: str, at: float, deadline: float | None = None) -> list[PromSeries]:
        self.calls.append((expr, deadline))
        if self.failing:
            raise FleetUnavailable("Prometheus at http://fake did not answer within 2 s")
        return next((rows for word, rows in self.answers.items() if word in expr), [])

    def query_range(
        self, expr: str, start: float, end: float, step: float, deadline: float | None = None
    ) -> list[PromSeries]:
        self.calls.append((expr, deadline))
        return []


def _fleet(client: FakeClient, cache: dict) -> FleetState:
    settings = resolve_settings(
        {"analytics_source": "prometheus", "analytics_prometheus_url": "http://fake:9090", "service_name": "shop"},
        environ={},
    )
    return FleetState(client, settings, local=lambda: None, clock=lambda: NOW, context=lambda: cache)


ANSWERS: dict[str, list[PromSeries]] = {
    "process_start_time_seconds": [{"metric": {}, "value": [NOW, str(NOW - 3600)]}],
    "_bucket": [
        _bucket("a:1", "0.1", 4),
        _bucket("a:1", "+Inf", 5),
        _bucket("a:1", "sum", 1.5),
        _bucket("b:1", "0.1", 1),
        _bucket("b:1", "+Inf", 1),
        _bucket("b:1", "sum", 0.05),
    ],
}


def test_a_window_adds_up_the_instances_answers_of_the_fake_client():
    fleet = _fleet(FakeClient(ANSWERS), {})
    window = fleet.window_by_instance("5m")
    key = ("/users/<id>", "GET", 200, "")
    assert window["instances"]["a:1"][key] == (5, 1.5, None, (4, 1))
    assert window["instances"]["b:1"][key] == (1, 0.05, 0.1, (1, 0))
    assert window["requests"][key] == (6, 1.55, None, (5, 1))
    assert (window["seconds"], window["available"], window["source"]) == (300.0, True, "prometheus")


def test_the_queries_of_one_request_share_one_deadline_and_each_expression_is_asked_once():
    client = FakeClient(ANSWERS)
    fleet = _fleet(client, {})
    fleet.window_by_instance("5m")
    fleet.window_by_instance("5m")
    assert fleet.started == NOW - 3600
    expressions = [expr for expr, _ in client.calls]
    assert len(expressions) == len(set(expressions)) == 2  # the start time and the histogram
    assert len({deadline for _, deadline in client.calls}) == 1
    assert all('job="shop"' in expr for expr in expressions)


def test_a_failing_client_reaches_the_caller_as_fleet_unavailable():
    fleet = _fleet(FakeClient(ANSWERS, failing=True), {})
    with pytest.raises(FleetUnavailable, match="did not answer"):
        fleet.window_by_instance("5m")


def test_build_fleet_uses_the_client_it_is_given_and_makes_a_prometheus_client_otherwise():
    settings = resolve_settings(
        {"analytics_source": "prometheus", "analytics_prometheus_url": "http://user:pw@127.0.0.1:9/"}, environ={}
    )
    fake = FakeClient(ANSWERS)
    given = build_fleet(settings, lambda: None, client=fake)
    assert given is not None and given.client is fake
    built = build_fleet(settings, lambda: None)
    assert built is not None and isinstance(built.client, PromClient)
    assert repr(built.client) == "PromClient('http://127.0.0.1:9')"  # the credentials never shown
    assert build_fleet(resolve_settings({}, environ={}), lambda: None) is None  # the in-process source
