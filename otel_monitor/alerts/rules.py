"""Alert rules: the defaults, the ``alerts_rules`` setting (a file or inline JSON), validation.

A rule::

    {"name": "checkout slow", "metric": "p95_ms", "route": "/checkout", "method": "GET",
     "op": ">", "threshold": 500, "window": "5m", "for": "2m", "severity": "page",
     "labels": {"team": "shop"}}

``metric`` is one the analytics compute (:data:`REQUEST_METRICS`, :data:`SYSTEM_METRICS`) or
``custom:<instrument name>``; ``route``/``method`` narrow a request metric to one endpoint;
durations are ``"30s"``, ``"5m"``, ``"1h"`` (``"1h30m"`` too) or a number of seconds. A bad rule
raises :class:`RuleError` naming the rule and the field; the settings turn it into a
``SettingsError`` at start-up. No I/O but reading the rules file; nothing here imports the rest
of the package.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Rule",
    "RuleError",
    "DEFAULT_RULES",
    "REQUEST_METRICS",
    "SYSTEM_METRICS",
    "OPS",
    "parse_duration",
    "parse_rules",
    "load_rules",
    "rules_for",
]

#: request metrics over the rule's window (from the request-duration histogram)
REQUEST_METRICS = frozenset(
    {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "avg_ms", "error_rate_pct", "requests_per_s", "apdex"}
)
#: host and process gauges (``/health``'s system block), their latest reading
SYSTEM_METRICS = frozenset(
    {
        "cpu_pct",
        "memory_pct",
        "disk_pct",
        "process_cpu_pct",
        "process_rss_bytes",
        "process_rss_max_bytes",
        "process_threads",
    }
)
CUSTOM_PREFIX = "custom:"
OPS = (">", ">=", "<", "<=")
SEVERITIES_HINT = "any short word, e.g. page, warning, info"
_FIELDS = frozenset(
    {"name", "metric", "route", "method", "op", "threshold", "window", "for", "severity", "labels", "description"}
)
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_DURATION_S = 7 * 86400.0
MAX_RULES = 200


class RuleError(ValueError):
    """A rule we cannot use; the message names the rule and the field."""


@dataclass(frozen=True)
class Rule:
    """One alert rule (see the module docstring)."""

    name: str
    metric: str
    op: str
    threshold: float
    window_s: float
    for_s: float
    severity: str = "warning"
    route: str | None = None
    method: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    #: one of the built-in rules (``alerts_default_rules``)
    default: bool = False

    def over(self, value: float) -> bool:
        """Does ``value`` break the rule?"""
        if self.op == ">":
            return value > self.threshold
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<":
            return value < self.threshold
        return value <= self.threshold

    @property
    def is_custom(self) -> bool:
        return self.metric.startswith(CUSTOM_PREFIX)

    @property
    def is_request_metric(self) -> bool:
        return self.metric in REQUEST_METRICS

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "route": self.route,
            "method": self.method,
            "op": self.op,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "for_s": self.for_s,
            "severity": self.severity,
            "labels": dict(self.labels),
            "description": self.description,
            "default": self.default,
        }


def _default(name: str, metric: str, threshold: float, window: float, for_: float, description: str) -> Rule:
    return Rule(name, metric, ">", threshold, window, for_, "warning", description=description, default=True)


#: the seed's success metrics as rules: a blip does not page, a sustained breach does
DEFAULT_RULES: tuple[Rule, ...] = (
    _default("high average response time", "avg_ms", 100.0, 300.0, 120.0, "Average response time over 100 ms"),
    _default("high error rate", "error_rate_pct", 1.0, 300.0, 120.0, "More than 1 % of requests fail"),
    _default("high memory use", "memory_pct", 80.0, 300.0, 300.0, "Host memory over 80 % used"),
    _default("high CPU use", "cpu_pct", 70.0, 300.0, 300.0, "Host CPU over 70 % busy"),
    _default("disk almost full", "disk_pct", 90.0, 300.0, 300.0, "Disk over 90 % used"),
)


def parse_duration(value: object) -> float:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"1h30m"`` or a number of seconds -> seconds (raises ValueError)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.fullmatch(text)
            if not text or match is None or not any(match.groups()):
                raise ValueError("expected a duration such as 30s, 5m, 1h or a number of seconds") from None
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
    if math.isnan(seconds) or seconds < 0 or seconds > MAX_DURATION_S:
        raise ValueError("expected a duration from 0 to 7 days")
    return seconds


def _rule(raw: object, index: int) -> Rule:
    if not isinstance(raw, Mapping):
        raise RuleError(f"rule #{index + 1}: expected an object with name, metric, op, threshold")
    name = raw.get("name")
    label = f"rule #{index + 1}"
    if not isinstance(name, str) or not name.strip():
        raise RuleError(f"{label}: field 'name': expected a non-empty text")
    name = name.strip()
    label = f"rule {name!r}"

    def bad(field_name: str, message: str) -> RuleError:
        return RuleError(f"{label}: field {field_name!r}: {message}")

    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise bad(unknown[0], "unknown field; expected " + ", ".join(sorted(_FIELDS)))
    metric = raw.get("metric")
    if not isinstance(metric, str) or not (
        metric in REQUEST_METRICS
        or metric in SYSTEM_METRICS
        or (metric.startswith(CUSTOM_PREFIX) and len(metric) > len(CUSTOM_PREFIX))
    ):
        choices = ", ".join(sorted(REQUEST_METRICS | SYSTEM_METRICS))
        raise bad("metric", f"{metric!r} is not one of {choices}, or custom:<instrument name>")
    op = raw.get("op", ">")
    if op not in OPS:
        raise bad("op", f"{op!r} is not one of {', '.join(OPS)}")
    threshold = raw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise bad("threshold", f"{threshold!r} is not a number")
    durations = {}
    for key, default in (("window", 300.0), ("for", 0.0)):
        try:
            durations[key] = parse_duration(raw[key]) if key in raw else default
        except ValueError as exc:
            raise bad(key, f"{raw[key]!r}: {exc}") from None
    if durations["window"] <= 0:
        raise bad("window", "must be longer than 0 s")
    route, method = raw.get("route"), raw.get("method")
    for key, value in (("route", route), ("method", method)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad(key, "expected a non-empty text")
        if value is not None and metric not in REQUEST_METRICS:
            raise bad(key, f"only request metrics ({', '.join(sorted(REQUEST_METRICS))}) have a {key}")
    severity = raw.get("severity", "warning")
    if not isinstance(severity, str) or not _LABEL_NAME.fullmatch(severity):
        raise bad("severity", f"{severity!r}: expected {SEVERITIES_HINT}")
    labels = raw.get("labels", {})
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and _LABEL_NAME.fullmatch(k) and isinstance(v, (str, int, float)) for k, v in labels.items()
    ):
        raise bad("labels", "expected an object of label names to texts")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise bad("description", "expected a text")
    return Rule(
        name=name,
        metric=metric,
        op=op,
        threshold=float(threshold),
        window_s=durations["window"],
        for_s=durations["for"],
        severity=severity,
        route=route.strip() if route else None,
        method=method.strip().upper() if method else None,
        labels={str(k): str(v) for k, v in labels.items()},
        description=description,
    )


def parse_rules(text: str) -> tuple[Rule, ...]:
    """Rules from ``alerts_rules``: a path to a JSON file, or inline JSON (a list, or ``{"rules": [...]}``)."""
    stripped = text.strip()
    if not stripped.startswith(("[", "{")):
        path = os.path.expanduser(stripped)
        try:
            with open(path, encoding="utf-8") as fh:
                stripped = fh.read()
        except OSError as exc:
            raise RuleError(f"cannot read the rules file {stripped!r}: {exc.strerror or exc}") from None
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise RuleError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if isinstance(document, Mapping):
        if set(document) - {"rules"}:
            raise RuleError('expected a list of rules or {"rules": [...]}')
        document = document.get("rules", [])
    if not isinstance(document, list):
        raise RuleError('expected a list of rules or {"rules": [...]}')
    if len(document) > MAX_RULES:
        raise RuleError(f"at most {MAX_RULES} rules")
    rules = tuple(_rule(raw, i) for i, raw in enumerate(document))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError(f"rule {rule.name!r}: field 'name': two rules have this name")
        seen.add(rule.name)
    return rules


def load_rules(text: str | None, defaults: bool) -> tuple[Rule, ...]:
    """The rules in force: the defaults (unless ``defaults`` is False) and the custom ones.

    A custom rule named like a default one replaces it.
    """
    custom = parse_rules(text) if text else ()
    names = {r.name for r in custom}
    base = tuple(r for r in DEFAULT_RULES if r.name not in names) if defaults else ()
    return base + custom


class _SettingsLike(Protocol):
    @property
    def alerts_rules(self) -> str | None: ...

    @property
    def alerts_default_rules(self) -> bool: ...


def rules_for(settings: _SettingsLike) -> tuple[Rule, ...]:
    return load_rules(settings.alerts_rules, settings.alerts_default_rules)
