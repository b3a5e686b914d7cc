"""``otel-monitor doctor``: the effective settings, OTLP reachability, the alerts, and the metric
names of dashboards and alert rules against what a monitored app serves.

One module per job; :func:`run_doctor` runs them in order and prints one report:

* :mod:`._config` -- the app given with ``--app``, the settings it would run with and where each
  comes from (argument, app config, environment, default), the start-up checks, the table;
* :mod:`._otlp` -- each exported signal's OTLP endpoint (TCP connect, port against protocol);
* :mod:`._alerts` -- alert rules and destinations, ``--test-alert``;
* :mod:`._promql` and :mod:`._scrape` -- the metric names and labels that dashboards and rules
  query, against a throwaway monitored app's ``/metrics`` (read with prometheus_client's parser);
* :mod:`._report` -- the ``ok`` / ``warn`` / ``skip`` / ``FAIL`` lines; :mod:`._links` -- online docs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from ...settings import FIELDS, SettingsError
from ._alerts import check_alerts
from ._config import effective_settings, load_app, settings_table, startup_checks
from ._otlp import check_otlp, otlp_targets, tcp_check
from ._promql import dashboard_expressions, promql_metric_names, promql_selectors, rules_expressions, stack_files
from ._report import Report
from ._scrape import Served, check_dashboards, check_metric_names, parse_exposition, served_metrics

__all__ = [
    "run_doctor",
    "promql_metric_names",
    "promql_selectors",
    "dashboard_expressions",
    "rules_expressions",
    "stack_files",
    "Served",
    "parse_exposition",
    "served_metrics",
    "check_metric_names",
    "effective_settings",
    "load_app",
    "otlp_targets",
    "tcp_check",
]


def run_doctor(args: argparse.Namespace, chosen: dict[str, str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    report = Report(out)
    app = None
    if getattr(args, "app", None):
        # A Monitor(app) run by the app's own import must not export the doctor's process as a
        # phantom instance (nor start threads): it is disabled while loading; the settings shown
        # are resolved below from its arguments, app.config and the real environment.
        saved = os.environ.get("OTEL_SDK_DISABLED")
        os.environ["OTEL_SDK_DISABLED"] = "true"
        try:
            app = load_app(args.app)
        except SettingsError as exc:
            print(f"otel-monitor doctor: bad setting: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - whatever importing the user's module raised
            print(
                f"otel-monitor doctor: cannot load the app {args.app!r}: {type(exc).__name__}: {exc}", file=sys.stderr
            )
            return 2
        finally:
            if saved is None:
                os.environ.pop("OTEL_SDK_DISABLED", None)
            else:
                os.environ["OTEL_SDK_DISABLED"] = saved
    try:
        settings = effective_settings(app, chosen)  # a SettingsError reaches cli.main, which names it
        startup_checks(settings)
    except LookupError as exc:
        print(f"otel-monitor doctor: {exc}", file=sys.stderr)
        return 2

    show_all = bool(getattr(args, "all", False))
    if show_all:
        report.line("Effective settings (precedence: argument > app config > environment > default; secrets masked)")
    else:
        changed = sum(1 for f in FIELDS if settings.source_of(f.name) != "default")
        report.line(
            f"Effective settings: {changed} of {len(FIELDS)} differ from the defaults (--all lists every one; "
            "precedence: argument > app config > environment > default; secrets masked)"
        )
    for row in settings_table(settings, app is not None, show_all):
        report.line(row)
    report.line()
    report.line("Checks")
    report.ok("every setting has a usable value")
    if settings.sdk_disabled:
        report.warn(
            f"monitoring is disabled (sdk_disabled from {settings.source_of('sdk_disabled')}): the app runs unmonitored"
        )

    check_otlp(report, settings)
    check_alerts(report, settings, bool(getattr(args, "test_alert", False)))
    if getattr(args, "skip_metrics_check", False):
        report.skip("dashboard and alert-rule metric names (--skip-metrics-check)")
    else:
        stack_dir = getattr(args, "stack_dir", None)
        check_dashboards(report, settings, Path(stack_dir) if stack_dir else Path.cwd(), asked=bool(stack_dir))

    report.line()
    if report.problems:
        report.line(f"{report.problems} problem(s) found.")
        return 1
    report.line("all checks passed")
    return 0
