"""PromQL, as far as the doctor needs it: the metric names (and label matchers) that the
expressions of a Grafana dashboard or a Prometheus rules file use.

These are regular expressions, not a PromQL parser, and err on the side of finding too little rather
than inventing names. Rules files are read without PyYAML (not a dependency).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = [
    "PROMETHEUS_SERIES",
    "TARGET_LABELS",
    "promql_metric_names",
    "promql_selectors",
    "dashboard_expressions",
    "rules_expressions",
    "stack_files",
]

#: names in queries that are not the app's metrics: Prometheus' own series
PROMETHEUS_SERIES = frozenset(
    {
        "up",
        "ALERTS",
        "ALERTS_FOR_STATE",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)
#: labels Prometheus adds at scrape time, and the ones every selector may use
TARGET_LABELS = frozenset({"job", "instance", "__name__"})
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
            return str(json.loads(text))
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

    def walk(node: object, where: str) -> None:
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
            return str(json.loads(value))
        except ValueError:
            return value[1:-1]
    return value


def stack_files(stack_dir: Path) -> tuple[list[Path], Path | None]:
    """Dashboards and the alert-rules file under ``stack_dir`` (the repo root or collector-config)."""
    base = stack_dir / "collector-config" if (stack_dir / "collector-config").is_dir() else stack_dir
    dashboards = sorted((base / "grafana" / "dashboards").glob("*.json"))
    rules = base / "alert-rules.yml"
    return dashboards, (rules if rules.is_file() else None)
