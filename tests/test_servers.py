"""Every server a Flask team deploys with, started for real on 127.0.0.1: exact totals whichever worker answers."""

from __future__ import annotations

import re

import pytest

from .test_gunicorn import get, gunicorn, request_total, send  # noqa: F401 - gunicorn is a fixture

pytestmark = pytest.mark.integration

APP_COUNTER_RE = re.compile(r"^prefork_work_done_total ([0-9.e+]+)$", re.M)
#: every counter of prometheus_client's default registry: process_cpu_seconds_total, python_gc_*_total, ...
DEFAULT_COUNTER_RE = re.compile(r"^((?:process|python)_[a-z_]+_total)(\{[^}]*\})? ([0-9.e+]+)$", re.M)


def app_counter(body: str) -> float:
    (value,) = APP_COUNTER_RE.findall(body)
    return float(value)


def default_counters(body: str) -> dict[str, float]:
    return {name + labels: float(value) for name, labels, value in DEFAULT_COUNTER_RE.findall(body)}


def test_the_apps_own_and_the_default_registrys_counters_are_exact_and_monotonic_through_any_worker(gunicorn):  # noqa: F811 - gunicorn is the imported fixture
    base, _ = gunicorn(workers=4)
    n = 200
    send(base, 0, n)
    scrapes = [get(base + "/metrics") for _ in range(20)]
    assert [app_counter(body) for body in scrapes] == [n] * 20
    assert [request_total(body) for body in scrapes] == [n] * 20
    series = [default_counters(body) for body in scrapes]
    assert "process_cpu_seconds_total" in series[0] and any(k.startswith("python_gc_") for k in series[0])
    decreases = [(k, a[k], b[k]) for a, b in zip(series, series[1:], strict=False) for k in a if b.get(k, a[k]) < a[k]]
    assert decreases == []
