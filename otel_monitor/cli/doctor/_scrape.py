"""The doctor's metric-name check: the names and labels a dashboard's or a rules file's queries use,
against what a throwaway monitored app serves on ``/metrics``.

The scrape is read with prometheus_client's own parser (``text_string_to_metric_families``), a
dependency already: the sample names, their label names and values, and each family's type.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ...settings import Settings
from ._promql import (
    PROMETHEUS_SERIES,
    TARGET_LABELS,
    dashboard_expressions,
    promql_metric_names,
    promql_selectors,
    rules_expressions,
    stack_files,
)
from ._report import Report, shown_path

__all__ = ["Served", "parse_exposition", "served_metrics", "check_metric_names", "check_dashboards"]


@dataclasses.dataclass
class Served:
    """Sample names of a /metrics scrape, their label names and values, and the families' types."""

    labels: dict[str, dict[str, set[str]]]
    types: dict[str, str]

    @property
    def names(self) -> set[str]:
        return set(self.labels)


def parse_exposition(text: str) -> Served:
    """The samples and types of a Prometheus text exposition (ValueError when it is not one)."""
    labels: dict[str, dict[str, set[str]]] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "unknown":  # a sample without its # TYPE line is untyped, not a family's
            types[family.name] = family.type
        for sample in family.samples:
            sample_labels = labels.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                sample_labels.setdefault(label, set()).add(value)
    return Served(labels, types)


def served_metrics() -> Served:
    """Build a throwaway monitored app, send it a templated and a failing request, scrape /metrics.

    Every setting that would change what is served is pinned, so the environment cannot hide
    metrics (an exclusion pattern, a token, OTEL_SDK_DISABLED) or start exporters and listeners.
    """
    import logging

    from flask import Flask

    from ...monitor import Monitor
    from ...testing import closing_client

    app = Flask("otel_monitor_doctor")
    app.logger.setLevel(logging.CRITICAL)  # the failing request is on purpose

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/fail")
    def fail() -> str:
        raise RuntimeError("doctor: a failing request on purpose")

    monitor = Monitor(
        app,
        system_metrics=True,
        traces_exporter="none",
        metrics_exporter="none",
        sdk_disabled=False,
        metrics_path="/metrics",
        metrics_token=None,
        metrics_port=None,
        excluded_urls=(),
        set_global=False,
        metrics_target_info=True,
        service_name="otel-monitor-doctor",
        # Not served to anyone: no analytics, so no credential checks of the user's settings and
        # no log line with a token URL for an app that is not listening.
        analytics=False,
    )
    try:
        client = closing_client(app)
        client.get("/items/1")
        client.get("/fail")
        client.get("/metrics")  # the first collection starts the CPU utilisation clocks
        time.sleep(0.25)
        response = client.get("/metrics")
        if response.status_code != 200:
            raise RuntimeError(f"/metrics of the throwaway app answered {response.status_code}")
        return parse_exposition(response.get_data(as_text=True))
    finally:
        monitor.shutdown(timeout=2)


def check_metric_names(queries: Iterable[tuple[str, str]], served: Served, ignore: set[str]) -> list[str]:
    """One message per metric name (or label matcher) a query uses that ``served`` does not have."""
    problems: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for where, expr in queries:
        for name in sorted(promql_metric_names(expr)):
            if name in ignore or name in PROMETHEUS_SERIES or name in served.labels or ("missing", name) in seen:
                continue
            seen.add(("missing", name))
            problems.append(f"{where}: metric {name} is not served on /metrics{_suggest(name, served)}")
        for name, matchers in promql_selectors(expr):
            sample = served.labels.get(name)
            if sample is None:
                continue
            for label, operator, value in matchers:
                if label in TARGET_LABELS or (name, label, operator, value) in seen:
                    continue
                if label not in sample:
                    seen.add((name, label, operator, value))
                    close = difflib.get_close_matches(label, list(sample), n=1)
                    hint = (
                        f" (did you mean {close[0]}?)" if close else f" (it has: {', '.join(sorted(sample)) or 'none'})"
                    )
                    problems.append(f"{where}: metric {name} has no label {label}{hint}")
                elif operator == "=" and "$" not in value and value not in sample[label]:
                    seen.add((name, label, operator, value))
                    problems.append(
                        f"{where}: metric {name} never has {label}={value!r} "
                        f"(served values: {', '.join(sorted(sample[label]))[:200]})"
                    )
    return problems


def _suggest(name: str, served: Served) -> str:
    kind = served.types.get(name)
    if kind == "histogram":
        return f" ({name} is a histogram: query {name}_bucket, {name}_sum or {name}_count)"
    if kind == "counter" and name + "_total" in served.labels:
        return f" (a counter: query {name}_total)"
    close = difflib.get_close_matches(name, sorted(served.labels), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def check_dashboards(report: Report, settings: Settings, stack_dir: Path, asked: bool = True) -> None:
    """The dashboards' and alert rules' metric names against a throwaway app's. Without --stack-dir
    and without collector-config/ in the current directory (an installed package, not a checkout)
    there is nothing to compare, and nothing is said about files the user never had."""
    dashboards, rules = stack_files(stack_dir)
    if not dashboards and rules is None:
        if not asked:
            return
        report.skip(
            f"dashboard and alert-rule metric names: no collector-config/grafana/dashboards/*.json or "
            f"collector-config/alert-rules.yml under {stack_dir} (pass --stack-dir)"
        )
        return
    sources: list[tuple[Path, list[tuple[str, str]]]] = []
    recorded: set[str] = set()
    for path in dashboards:
        try:
            sources.append((path, dashboard_expressions(path)))
        except (OSError, ValueError) as exc:
            report.fail(f"{shown_path(path)}: cannot read the dashboard: {exc}")
    if rules is not None:
        try:
            exprs, recorded = rules_expressions(rules)
            sources.append((rules, exprs))
        except (OSError, ValueError) as exc:
            report.fail(f"{shown_path(rules)}: cannot read the rules: {exc}")
    try:
        served = served_metrics()
    except Exception as exc:  # noqa: BLE001 - the doctor reports any failure as a finding
        report.fail(f"could not build and scrape a throwaway monitored app: {type(exc).__name__}: {exc}")
        return
    system_only = set()
    for path, queries in sources:
        problems = check_metric_names(queries, served, recorded)
        names = set().union(*(promql_metric_names(e) for _, e in queries)) - recorded - PROMETHEUS_SERIES
        system_only |= {n for n in names if n.startswith(("system_", "process_"))}
        if problems:
            for problem in problems:
                report.fail(f"{shown_path(path)}: {problem}")
        else:
            report.ok(f"{shown_path(path)}: the {len(names)} metric name(s) its {len(queries)} queries use are served")
    if system_only and not settings.system_metrics:
        report.warn(
            f"system_metrics is off (from {settings.source_of('system_metrics')}): "
            f"{', '.join(sorted(system_only))} stay empty"
        )
