"""``otel-monitor doctor``: effective settings, OTLP reachability, dashboard/alert metric names.

The PromQL helpers only need to find *metric names* (and the label matchers on them) in the
expressions of a Grafana dashboard or a Prometheus rules file; they are regular expressions,
not a PromQL parser, and err on the side of finding too little rather than inventing names.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..settings import FIELDS, Settings, SettingsError, resolve_settings

__all__ = [
    "run_doctor",
    "promql_metric_names",
    "promql_selectors",
    "dashboard_expressions",
    "rules_expressions",
    "served_metrics",
    "check_metric_names",
]

CONNECT_TIMEOUT = 2.0

#: names in queries that are not the app's metrics: Prometheus' own series
_PROMETHEUS_SERIES = {
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
#: labels Prometheus adds at scrape time, and the ones every selector may use
_TARGET_LABELS = {"job", "instance", "__name__"}
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "start",
    "end",
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_SELECTOR = re.compile(
    r"(?<![\w:.$])([a-zA-Z_:][\w:]*)\s*\{((?:\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`|[^}\"'`])*)\}"
)
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?!\s*\()(?![\w:])")


# -- PromQL ------------------------------------------------------------------------------------


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (Grafana ``$variables`` allowed)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+-?[\w$]+", " ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(1)
        if name not in _KEYWORDS and name.lower() not in ("inf", "nan"):
            names.add(name)
    names.update(m.group(1)[1:-1] for m in re.finditer(r'__name__\s*=\s*("[a-zA-Z_:][\w:]*")', expr))
    return names


def promql_selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """``[(metric, [(label, operator, value), ...]), ...]`` for each ``metric{...}`` in ``expr``."""
    result = []
    for match in _SELECTOR.finditer(expr):
        name, body = match.group(1), match.group(2)
        if name in _KEYWORDS:
            continue
        matchers = [(m.group(1), m.group(2), _unquote(m.group(3))) for m in _MATCHER.finditer(body)]
        result.append((name, matchers))
    return result


def _unquote(text: str) -> str:
    if text[:1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text[1:-1]


def _grafana_variable_query(query: str) -> str | None:
    """The PromQL part of a Grafana variable query (``label_values(expr, label)`` and friends)."""
    query = query.strip()
    match = re.fullmatch(r"label_values\((.*),\s*[a-zA-Z_]\w*\s*\)", query, re.S)
    if match:
        return match.group(1)
    if re.fullmatch(r"label_values\(\s*[a-zA-Z_]\w*\s*\)", query) or query.startswith(("metrics(", "label_names(")):
        return None
    match = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    return match.group(1) if match else query


def dashboard_expressions(path: Path) -> list[tuple[str, str]]:
    """``[(where, expr), ...]``: panel targets' ``expr`` and templating variables' queries."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            title = node.get("title") or node.get("name") or where
            for key, value in node.items():
                if key == "expr" and isinstance(value, str) and value.strip():
                    found.append((f"panel {title!r}", value))
                else:
                    walk(value, str(title))
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(data.get("panels", []), "dashboard")
    for rows in data.get("rows") or []:  # old dashboards
        walk(rows, "row")
    for variable in (data.get("templating") or {}).get("list", []):
        if not isinstance(variable, dict) or variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query.strip():
            expr = _grafana_variable_query(query)
            if expr:
                found.append((f"variable ${variable.get('name')}", expr))
    return found


def rules_expressions(path: Path) -> tuple[list[tuple[str, str]], set[str]]:
    """``([(rule name, expr), ...], recorded names)`` from a Prometheus rules file, without PyYAML."""
    exprs: list[tuple[str, str]] = []
    recorded: set[str] = set()
    lines = path.read_text(encoding="utf-8").splitlines()
    current = "rule"
    index = 0
    key_line = re.compile(r"^(\s*)(?:-\s+)?(record|alert|expr):\s*(.*?)\s*$")
    while index < len(lines):
        match = key_line.match(lines[index])
        index += 1
        if not match:
            continue
        indent, key, value = len(match.group(1)), match.group(2), match.group(3)
        if value and not value.startswith(("|", ">")):
            value = _yaml_scalar(value)
        elif value:  # a block scalar: the following lines indented deeper than the key
            block = []
            while index < len(lines) and (
                not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
            ):
                block.append(lines[index].strip())
                index += 1
            value = " ".join(line for line in block if line)
        if key == "record":
            recorded.add(value)
            current = f"record {value}"
        elif key == "alert":
            current = f"alert {value}"
        elif value:
            exprs.append((current, value))
    return exprs, recorded


def _yaml_scalar(value: str) -> str:
    value = re.sub(r"\s+#.*$", "", value) if not value.startswith(("'", '"')) else value
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


# -- what the app serves ---------------------------------------------------------------------------


@dataclasses.dataclass
class Served:
    """Sample names of a /metrics scrape, their label names and values, and the families' types."""

    labels: dict[str, dict[str, set[str]]]
    types: dict[str, str]

    @property
    def names(self) -> set[str]:
        return set(self.labels)


def parse_exposition(text: str) -> Served:
    labels: dict[str, dict[str, set[str]]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                types[parts[2]] = parts[3]
            continue
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][\w:]*)(\{(.*)\})?\s", line)
        if not match:
            continue
        sample = labels.setdefault(match.group(1), {})
        for label in re.finditer(r'([a-zA-Z_]\w*)="((?:\\.|[^"\\])*)"', match.group(3) or ""):
            sample.setdefault(label.group(1), set()).add(label.group(2).replace('\\"', '"').replace("\\\\", "\\"))
    return Served(labels, types)


def served_metrics() -> Served:
    """Build a throwaway monitored app, send it a templated and a failing request, scrape /metrics.

    Every setting that would change what is served is pinned, so the environment cannot hide
    metrics (an exclusion pattern, a token, OTEL_SDK_DISABLED) or start exporters and listeners.
    """
    import logging

    from flask import Flask

    from ..monitor import Monitor
    from ..testing import closing_client

    app = Flask("otel_monitor_doctor")
    app.logger.setLevel(logging.CRITICAL)  # the failing request is on purpose

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"id": item_id}

    @app.get("/fail")
    def fail() -> Any:
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
    seen: set[tuple] = set()
    for where, expr in queries:
        for name in sorted(promql_metric_names(expr)):
            if name in ignore or name in _PROMETHEUS_SERIES or name in served.labels or ("missing", name) in seen:
                continue
            seen.add(("missing", name))
            problems.append(f"{where}: metric {name} is not served on /metrics{_suggest(name, served)}")
        for name, matchers in promql_selectors(expr):
            sample = served.labels.get(name)
            if sample is None:
                continue
            for label, operator, value in matchers:
                if label in _TARGET_LABELS or (name, label, operator, value) in seen:
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


# -- settings ----------------------------------------------------------------------------------


def load_app(spec: str) -> Any:
    """``module:attr``, ``path/to/file.py:attr`` or ``module:factory()``; attr defaults to app."""
    import importlib
    import importlib.util

    target, _, attr = spec.partition(":")
    attr = attr.strip() or "app"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise LookupError(f"no such file: {target}")
        sys.path.insert(0, str(path.parent))
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:  # a file Python cannot import (no .py)
            raise LookupError(f"not a Python module: {target}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    call = attr.endswith("()")
    obj = getattr(module, attr[:-2] if call else attr, None)
    if obj is None:
        raise LookupError(f"{target} has no attribute {attr[:-2] if call else attr!r}")
    return obj() if call else obj


def effective_settings(app: Any, chosen: dict[str, str]) -> Settings:
    if app is None:
        return resolve_settings(chosen)
    extensions = getattr(app, "extensions", None)
    if isinstance(extensions, dict):
        own = extensions.get("otel_monitor")
        kwargs = {**(getattr(own, "_kwargs", None) or {}), **chosen}
        return resolve_settings(kwargs, app.config, defaults={"service_name": app.name})
    if callable(app):
        # A plain WSGI callable (loaded with monitoring disabled, wrap() hands it back unwrapped):
        # its settings are the environment's; arguments given to wrap() in code are not visible.
        from ..monitor import _wsgi_name

        monitor = getattr(app, "otel_monitor", None)
        kwargs = {**(getattr(monitor, "_kwargs", None) or {}), **chosen}
        return resolve_settings(kwargs, defaults={"service_name": _wsgi_name(app)})
    raise LookupError(f"{app!r} is neither a Flask app nor a WSGI callable")


def startup_checks(settings: Settings) -> None:
    """The checks ``Monitor(app)`` runs after resolving the settings, so doctor fails where start-up would."""
    if settings.sdk_disabled or not settings.analytics:
        return  # start-up skips them too: nothing is mounted
    from ..analytics.auth import validate_settings

    validate_settings(settings)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, dict):
        text = ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    elif isinstance(value, (tuple, list)):
        text = ",".join(str(v) for v in value) or "(none)"
    else:
        text = str(value)
    return text if len(text) <= 48 else text[:45] + "..."


#: shown even at its default: which service the rest of the report is about
_ALWAYS_SHOWN = ("service_name",)


def shown_settings(settings: Settings, show_all: bool) -> list[str]:
    """The settings the table lists: all of them, or those not at their default (and the service's name)."""
    return [f.name for f in FIELDS if show_all or f.name in _ALWAYS_SHOWN or settings.source_of(f.name) != "default"]


def settings_table(settings: Settings, app_given: bool, show_all: bool = True) -> list[str]:
    masked = settings.masked()
    rows = [("SETTING", "VALUE", "SOURCE")]
    names = set(shown_settings(settings, show_all))
    for f in FIELDS:
        if f.name not in names:
            continue
        value = _text(masked[f.name])
        if f.name == "service_name" and masked[f.name] is None and not app_given:
            value = "(the Flask app's import name)"
        elif f.name in ("traces_exporter", "metrics_exporter") and masked[f.name] is None:
            value = "(otlp if an endpoint is set)"
        rows.append((f.name, value, settings.source_of(f.name)))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"  {name:<{widths[0]}}  {value:<{widths[1]}}  {source}".rstrip() for name, value, source in rows]


# -- OTLP ----------------------------------------------------------------------------------------


def otlp_targets(settings: Settings) -> list[tuple[str, str, str]]:
    """``[(signal, protocol, endpoint URL), ...]`` for the signals exported over OTLP."""
    from ..telemetry.pipeline import _exporter_names, _otlp_target

    targets = []
    for signal in ("traces", "metrics"):
        configured = getattr(settings, f"{signal}_exporter")
        if "otlp" in _exporter_names(configured, settings, getattr(settings, f"otlp_{signal}_endpoint")):
            protocol, endpoint, _headers = _otlp_target(settings, signal)
            targets.append((signal, protocol, endpoint))
    return targets


def tcp_check(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when ``host:port`` accepts a TCP connection within ``timeout``, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


# -- the command -------------------------------------------------------------------------------------


class _Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ok(self, text: str) -> None:
        self.line(f"  ok    {text}")

    def warn(self, text: str) -> None:
        self.line(f"  warn  {text}")

    def skip(self, text: str) -> None:
        self.line(f"  skip  {text}")

    def fail(self, text: str) -> None:
        self.problems += 1
        self.line(f"  FAIL  {text}")


def stack_files(stack_dir: Path) -> tuple[list[Path], Path | None]:
    """Dashboards and the alert-rules file under ``stack_dir`` (the repo root or collector-config)."""
    base = stack_dir / "collector-config" if (stack_dir / "collector-config").is_dir() else stack_dir
    dashboards = sorted((base / "grafana" / "dashboards").glob("*.json"))
    rules = base / "alert-rules.yml"
    return dashboards, (rules if rules.is_file() else None)


def run_doctor(args: Any, chosen: dict[str, str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    report = _Report(out)
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

    _check_otlp(report, settings)
    _check_alerts(report, settings, bool(getattr(args, "test_alert", False)))
    if getattr(args, "skip_metrics_check", False):
        report.skip("dashboard and alert-rule metric names (--skip-metrics-check)")
    else:
        stack_dir = getattr(args, "stack_dir", None)
        _check_dashboards(report, settings, Path(stack_dir) if stack_dir else Path.cwd(), asked=bool(stack_dir))

    report.line()
    if report.problems:
        report.line(f"{report.problems} problem(s) found.")
        return 1
    report.line("all checks passed")
    return 0


def _check_alerts(report: _Report, settings: Settings, send_test: bool) -> None:
    """The alert rules (already valid: a bad one failed the settings), the destinations (masked), a test notice."""
    from ..alerts import wiring as alerts

    setup = alerts.setup_for(settings, settings.service_name or "app")
    if alerts.enabled(settings) and not settings.analytics and not settings.sdk_disabled:
        report.warn("alerts are configured but analytics=false: the alerts read the analytics, nothing is evaluated")
    if settings.sdk_disabled or not settings.analytics or not alerts.enabled(settings):
        report.skip(f"alerts are off ({len(setup.rules)} rule(s) would apply; see docs/alerts.md)")
        if send_test and setup.destinations:
            report.warn("--test-alert: sending anyway to the configured destinations")
        elif send_test:
            report.fail("--test-alert: no alert destination is configured")
            return
        if not send_test:
            return
    else:
        names = ", ".join(r.name for r in setup.rules) or "(none)"
        report.ok(f"{len(setup.rules)} alert rule(s) valid: {names}")
        if not setup.destinations:
            report.warn("alerts are on but no destination is configured: they show only on the dashboard")
        for destination in setup.destinations:
            report.ok(f"alert destination {destination.name}: {destination.target}")
        report.ok(f"alert state: {setup.store.where}")
    if not send_test:
        return
    for result in alerts.send_test_notice(setup):
        if result.error is None:
            report.ok(f"test notification sent to {result.destination} ({result.target})")
        else:
            report.fail(f"test notification to {result.destination} failed: {result.error}")


def _check_otlp(report: _Report, settings: Settings) -> None:
    targets = otlp_targets(settings) if not settings.sdk_disabled else []
    if not targets:
        report.skip(
            "OTLP export is off (set OTEL_EXPORTER_OTLP_ENDPOINT or --otlp-endpoint to export "
            "traces and metrics; /metrics is served regardless)"
        )
        return
    checked: dict[tuple[str, int], str | None] = {}
    for signal, protocol, endpoint in targets:
        parts = urlsplit(endpoint)
        host = parts.hostname or "localhost"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if (host, port) not in checked:
            checked[(host, port)] = tcp_check(host, port)
        error = checked[(host, port)]
        what = f"OTLP {signal} endpoint {endpoint} ({protocol})"
        if error is None:
            report.ok(f"{what}: {host}:{port} accepts TCP connections")
        else:
            report.fail(f"{what}: cannot connect to {host}:{port}: {error}")
        if protocol == "grpc" and port == 4318:
            report.warn(f"{what}: 4318 is the usual OTLP/HTTP port, but the protocol is grpc")
        elif protocol == "http/protobuf" and port == 4317:
            report.warn(f"{what}: 4317 is the usual OTLP/gRPC port, but the protocol is http/protobuf")


def _check_dashboards(report: _Report, settings: Settings, stack_dir: Path, asked: bool = True) -> None:
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
            report.fail(f"{_show(path)}: cannot read the dashboard: {exc}")
    if rules is not None:
        try:
            exprs, recorded = rules_expressions(rules)
            sources.append((rules, exprs))
        except (OSError, ValueError) as exc:
            report.fail(f"{_show(rules)}: cannot read the rules: {exc}")
    try:
        served = served_metrics()
    except Exception as exc:  # noqa: BLE001 - the doctor reports any failure as a finding
        report.fail(f"could not build and scrape a throwaway monitored app: {type(exc).__name__}: {exc}")
        return
    system_only = set()
    for path, queries in sources:
        problems = check_metric_names(queries, served, recorded)
        names = set().union(*(promql_metric_names(e) for _, e in queries)) - recorded - _PROMETHEUS_SERIES
        system_only |= {n for n in names if n.startswith(("system_", "process_"))}
        if problems:
            for problem in problems:
                report.fail(f"{_show(path)}: {problem}")
        else:
            report.ok(f"{_show(path)}: the {len(names)} metric name(s) its {len(queries)} queries use are served")
    if system_only and not settings.system_metrics:
        report.warn(
            f"system_metrics is off (from {settings.source_of('system_metrics')}): "
            f"{', '.join(sorted(system_only))} stay empty"
        )


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
