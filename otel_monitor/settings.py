"""Settings: one frozen object, resolved once when a monitor is attached to an app.

Precedence for every setting: keyword argument > Flask ``app.config`` key >
environment variable > default. Nothing is read at import time.

Each row of :data:`FIELDS` names the setting, its ``app.config`` key, the
environment variables it honours (standard ``OTEL_*`` ones first), its default
and how its text is parsed. The README's settings table and
``otel-monitor doctor`` are generated from the same rows.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Settings", "SettingsError", "FIELDS", "resolve_settings"]

_T = TypeVar("_T")


class SettingsError(ValueError):
    """A setting has a value we cannot use. The message names the setting."""


# -- parsers: text (from config or environment) -> value; raise ValueError with what is accepted


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _str(value: object) -> str:
    return str(value).strip()


def _opt_str(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return text

    return parse


def _exporters(value: object) -> tuple[str, ...]:
    """OTEL_*_EXPORTER: a comma-separated list of otlp, console, none (prometheus accepted)."""
    if isinstance(value, (list, tuple)):
        items = [str(v).strip().lower() for v in value]
    else:
        items = [v.strip().lower() for v in str(value).split(",") if v.strip()]
    allowed = ("otlp", "console", "none", "prometheus")
    for item in items:
        if item not in allowed:
            raise ValueError("expected a comma-separated list of otlp, console, none")
    return tuple(i for i in items if i not in ("none", "prometheus"))


def _number(low: float, high: float, integer: bool = False) -> Callable[[object], float]:
    def parse(value: object) -> float:
        try:
            number = int(str(value).strip()) if integer else float(str(value).strip())
        except ValueError:
            raise ValueError(f"expected a number from {low:g} to {high:g}") from None
        if math.isnan(number) or not (low <= number <= high):
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return number

    return parse


def _opt_port(value: object) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    return int(_number(1, 65535, integer=True)(value))


def _key_values(value: object) -> dict[str, str]:
    """``k1=v1,k2=v2`` (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS), percent-decoded."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    from urllib.parse import unquote

    result: dict[str, str] = {}
    for item in str(value).split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError("expected comma-separated key=value pairs")
        result[unquote(key.strip())] = unquote(val.strip())
    return result


def _patterns(value: object) -> tuple[str, ...]:
    """Comma-separated regular expressions (OTEL_PYTHON_FLASK_EXCLUDED_URLS); each must compile."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    result = tuple(str(v).strip() for v in items if str(v).strip())
    for pattern in result:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
    return result


def _names(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(v).strip().lower() for v in items if str(v).strip())


def _propagators(value: object) -> tuple[str, ...]:
    """OTEL_PROPAGATORS: comma-separated names of installed propagators, or ``none``."""
    from .request._propagation import check_propagator_names

    names = _names(value)
    if not names:
        raise ValueError("expected a comma-separated list such as tracecontext,baggage (or none)")
    return check_propagator_names(names)


def _networks(value: object) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8,::1``), normalized."""
    import ipaddress

    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    result = []
    for item in (str(v).strip() for v in items):
        if not item:
            continue
        try:
            result.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(result)


def _id_generator(value: object) -> str | None:
    from .telemetry._ids import check_id_generator_name

    return check_id_generator_name(str(value))


#: RFC 9110 ``token`` characters: what an HTTP method name is made of
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _methods(value: object) -> tuple[str, ...]:
    """OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS: comma-separated, case-sensitive method names."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    result = tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))
    for method in result:
        if not _TOKEN.fullmatch(method) or method == "_OTHER":
            raise ValueError(f"{method!r} is not an HTTP method name (expected e.g. GET,POST,PROPFIND)")
    if not result:
        raise ValueError("expected a comma-separated list of HTTP methods such as GET,POST,PROPFIND")
    return result


def _buckets(value: object) -> tuple[float, ...]:
    """Comma-separated histogram boundaries in seconds, increasing."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        result = tuple(float(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        raise ValueError("expected comma-separated numbers of seconds such as 0.005,0.01,0.1,1") from None
    if not result or any(not math.isfinite(b) or b < 0 for b in result):
        raise ValueError("expected comma-separated non-negative numbers of seconds such as 0.005,0.01,0.1,1")
    if any(b >= c for b, c in zip(result, result[1:], strict=False)):
        raise ValueError("the boundaries must increase")
    return result


def _process_group(value: object) -> int | None:
    from .prefork import parse_group

    return parse_group(value)


def _path(value: object) -> str:
    text = str(value).strip()
    if not text.startswith("/") or any(c in text for c in "?# \t\r\n"):
        raise ValueError("expected a URL path starting with '/'")
    return text.rstrip("/") or "/"


def _endpoint(value: object) -> str | None:
    text = _opt_str(value)
    if text is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected a URL such as http://collector:4318")
    try:
        _ = parts.port  # the property parses the port: ValueError when it is not a number
    except ValueError:
        raise ValueError("expected a URL such as http://collector:4318 (the port is not a number)") from None
    return text


def _alert_rules(value: object) -> str | None:
    """Inline JSON or a file path; every rule is checked now, so a bad one stops the start."""
    from .alerts.rules import parse_rules

    text = _opt_str(value)
    if text is not None:
        parse_rules(text)  # RuleError (a ValueError) names the rule and the field
    return text


def _report_schedule(value: object) -> str | None:
    from .alerts.schedule import parse_schedule

    text = _opt_str(value)
    if text is not None:
        parse_schedule(text)
    return text


def _emails(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    result = tuple(str(v).strip() for v in items if str(v).strip())
    for item in result:
        if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+", item):
            raise ValueError(f"{item!r} is not an e-mail address")
    return result


def _opt_email(value: object) -> str | None:
    """One address (a sender): no comma, no line break can reach a header."""
    text = _opt_str(value)
    if text is None:
        return None
    found = _emails(text)
    if len(found) != 1:
        raise ValueError("expected one e-mail address")
    return found[0]


_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\\n]|\\.)*"\s*'


def _selector(value: object) -> str | None:
    """PromQL label matchers (``job="shop",env!="dev"``), nothing else: they are pasted into queries."""
    import re

    text = _opt_str(value)
    if text is None:
        return None
    text = text.strip().strip("{}").strip()
    if not re.fullmatch(f"{_MATCHER}(?:,{_MATCHER})*,?\\s*", text):
        raise ValueError('expected PromQL label matchers such as job="shop" or job="shop",env=~"prod|staging"')
    return text


_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)

#: HTTP methods known by default (the semantic conventions' list, RFC 9110, RFC 5789 and QUERY):
#: any other becomes ``_OTHER``, with ``http.request.method_original`` on the span
_KNOWN_METHODS_DEFAULT = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
#: http.server.request.duration boundaries (seconds): the semantic conventions' advisory ones,
#: plus two finer ones at the bottom (most Flask endpoints answer in single milliseconds)
DURATION_BUCKETS_DEFAULT = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

#: query parameters redacted by default (compared percent-decoded, case-insensitively; see
#: docs/request-path.md): passwords, OAuth 2.0 / OpenID Connect secrets and tokens, API keys,
#: sessions, and the signatures and tokens of signed cloud-storage URLs.
_SENSITIVE_DEFAULT = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "client_secret",
    "client_assertion",
    "token",
    "access_token",
    "access-token",
    "refresh_token",
    "id_token",
    "auth_token",
    "private_token",
    "private-token",
    "jwt",
    "api_key",
    "api-key",
    "apikey",
    "x-api-key",
    "x_api_key",
    "key",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "session_id",
    "signature",
    "sig",
    "code",
    "x-amz-signature",
    "x-amz-security-token",
    "x-amz-credential",
    "x-goog-signature",
    "x-goog-credential",
)


#: How a setting's text (or a value given in code) becomes its value; ValueError says what is accepted.
Parser = Callable[[object], object]


def _setting(
    default: _T,
    parse: Parser,
    env: tuple[str, ...] = (),
    doc: str = "",
    secret: bool = False,
) -> _T:
    """A :class:`Settings` field (typed as its default, as :func:`dataclasses.field` is) with its row's metadata."""
    metadata = {"parse": parse, "env": env, "doc": doc, "secret": secret}
    return field(default=default, metadata=metadata)


def _mapping_setting(parse: Parser, env: tuple[str, ...] = (), doc: str = "", secret: bool = False) -> dict[str, str]:
    """A mutable (``dict``) :class:`Settings` field: a fresh ``{}`` by default."""
    metadata = {"parse": parse, "env": env, "doc": doc, "secret": secret}
    return field(default_factory=dict, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Everything a monitor needs to know, resolved once. Build it with :func:`resolve_settings`."""

    #: ``service.name`` of the resource. Default: the Flask app's import name, else ``unknown_service``.
    service_name: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_SERVICE_NAME",),
        "Service name (resource `service.name`); default: the Flask app's import name",
    )
    #: ``service.version`` of the resource. Default: ``service.version`` of the resource attributes,
    #: else detected (the app's git commit, else its distribution's version, else ``unknown``).
    service_version: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_SERVICE_VERSION",),
        "The app's version (resource `service.version`); default: `service.version` from `OTEL_RESOURCE_ATTRIBUTES`, "
        "else the app's git commit when it runs from a checkout, else its distribution's version, else `unknown`",
    )
    #: Extra resource attributes.
    resource_attributes: dict[str, str] = _mapping_setting(
        _key_values, ("OTEL_RESOURCE_ATTRIBUTES",), "Extra resource attributes, `k=v,k2=v2`"
    )
    #: Turn everything off: the app runs untouched.
    sdk_disabled: bool = _setting(
        False, _bool, ("OTEL_SDK_DISABLED",), "Disable all monitoring (the app runs untouched)"
    )
    #: Span exporters. Default: ``otlp`` when an OTLP endpoint is configured, else none.
    traces_exporter: tuple[str, ...] | None = _setting(
        None,
        _exporters,
        ("OTEL_TRACES_EXPORTER",),
        "Span exporters: `otlp`, `console`, `none`; default `otlp` when an endpoint is set, else `none`",
    )
    #: Metric push exporters (the Prometheus endpoint is always served).
    metrics_exporter: tuple[str, ...] | None = _setting(
        None,
        _exporters,
        ("OTEL_METRICS_EXPORTER",),
        "Metric push exporters: `otlp`, `console`, `none` (`/metrics` is served regardless); default as for traces",
    )
    logs_exporter: tuple[str, ...] | None = _setting(
        None,
        _exporters,
        ("OTEL_LOGS_EXPORTER",),
        "Log record exporters for Python `logging`: `otlp`, `console`, `none`; default as for traces",
    )
    otlp_endpoint: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_EXPORTER_OTLP_ENDPOINT",),
        "OTLP endpoint, e.g. `http://127.0.0.1:4318` (HTTP) or `http://127.0.0.1:4317` (gRPC)",
    )
    otlp_traces_endpoint: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",),
        "OTLP endpoint for traces only (a full URL, used as is)",
    )
    otlp_metrics_endpoint: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",),
        "OTLP endpoint for metrics only (a full URL, used as is)",
    )
    otlp_logs_endpoint: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",),
        "OTLP endpoint for logs only (a full URL, used as is)",
    )
    otlp_protocol: str = _setting(
        "http/protobuf",
        _choice("grpc", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL",),
        "OTLP protocol: `grpc` or `http/protobuf`",
    )
    otlp_traces_protocol: str | None = _setting(
        None, _choice("grpc", "http/protobuf"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",), "OTLP protocol for traces only"
    )
    otlp_metrics_protocol: str | None = _setting(
        None,
        _choice("grpc", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",),
        "OTLP protocol for metrics only",
    )
    otlp_logs_protocol: str | None = _setting(
        None, _choice("grpc", "http/protobuf"), ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",), "OTLP protocol for logs only"
    )
    otlp_headers: dict[str, str] = _mapping_setting(
        _key_values,
        ("OTEL_EXPORTER_OTLP_HEADERS",),
        "Headers sent with every OTLP export, `k=v,k2=v2` (values are masked in `doctor`)",
        secret=True,
    )
    otlp_traces_headers: dict[str, str] = _mapping_setting(
        _key_values,
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS",),
        "Headers for trace export only",
        secret=True,
    )
    otlp_metrics_headers: dict[str, str] = _mapping_setting(
        _key_values,
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS",),
        "Headers for metric export only",
        secret=True,
    )
    otlp_logs_headers: dict[str, str] = _mapping_setting(
        _key_values,
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS",),
        "Headers for log export only",
        secret=True,
    )
    otlp_metrics_temporality: str = _setting(
        "cumulative",
        _choice("cumulative", "delta", "lowmemory"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",),
        "Temporality of pushed metrics: `cumulative`, or `delta`/`lowmemory` (counters and histograms as deltas)",
    )
    otlp_traces_encoder: str = _setting(
        "fast",
        _choice("fast", "official"),
        ("OTEL_MONITOR_OTLP_TRACES_ENCODER",),
        "How OTLP span batches are serialised: `fast` (bytes written directly, the official transport) "
        "or `official` (the exporter's own protobuf encoder)",
    )
    otlp_timeout: float = _setting(
        5.0,
        _number(0.1, 60),
        ("OTEL_MONITOR_OTLP_TIMEOUT",),
        "Seconds one OTLP export may take (the standard `OTEL_EXPORTER_OTLP_TIMEOUT`, in ms, is honoured too)",
    )
    blrp_schedule_delay: int = _setting(
        1000,
        _number(1, 3_600_000, integer=True),
        ("OTEL_BLRP_SCHEDULE_DELAY",),
        "Milliseconds between two log exports of the batch processor",
    )
    blrp_max_queue_size: int = _setting(
        2048,
        _number(1, 10_000_000, integer=True),
        ("OTEL_BLRP_MAX_QUEUE_SIZE",),
        "Log records the batch processor queues before it drops (and counts) them",
    )
    blrp_max_export_batch_size: int = _setting(
        512,
        _number(1, 10_000_000, integer=True),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",),
        "Log records per export (at most the queue size)",
    )
    blrp_export_timeout: int = _setting(
        30000,
        _number(1, 3_600_000, integer=True),
        ("OTEL_BLRP_EXPORT_TIMEOUT",),
        "Milliseconds the batch processor waits for one log export",
    )
    traces_sampler: str = _setting(
        "parentbased_always_on",
        _choice(*_SAMPLERS),
        ("OTEL_TRACES_SAMPLER",),
        "Sampler: " + ", ".join(f"`{s}`" for s in _SAMPLERS),
    )
    traces_sampler_arg: float = _setting(
        1.0, _number(0.0, 1.0), ("OTEL_TRACES_SAMPLER_ARG",), "Sampling ratio for the `traceidratio` samplers, 0 to 1"
    )
    id_generator: str | None = _setting(
        None,
        _id_generator,
        ("OTEL_PYTHON_ID_GENERATOR",),
        "Trace and span id generator: an installed `opentelemetry_id_generator` entry point (`random`: the SDK's, "
        "which the app's `random.seed` resets); default: a private generator, reseeded from `os.urandom` after fork",
    )
    metric_export_interval: float = _setting(
        60000, _number(100, 86_400_000), ("OTEL_METRIC_EXPORT_INTERVAL",), "Milliseconds between OTLP metric exports"
    )
    excluded_urls: tuple[str, ...] = _setting(
        (),
        _patterns,
        ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"),
        "Comma-separated regular expressions searched in the request path; matches get no span and no metrics",
    )
    metrics_path: str = _setting(
        "/metrics", _path, ("OTEL_MONITOR_METRICS_PATH",), "Path of the Prometheus endpoint on the app's port"
    )
    metrics_port: int | None = _setting(
        None,
        _opt_port,
        ("OTEL_MONITOR_METRICS_PORT",),
        "Also serve `/metrics` on this port (a separate listener on `metrics_host`)",
    )
    metrics_host: str = _setting(
        "127.0.0.1", _str, ("OTEL_MONITOR_METRICS_HOST",), "Address the separate metrics port binds to"
    )
    metrics_token: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_METRICS_TOKEN",),
        "If set, `/metrics` requires `Authorization: Bearer <token>`",
        secret=True,
    )
    metrics_target_info: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_METRICS_TARGET_INFO",),
        "Expose the `target_info` series (resource attributes) on `/metrics`",
    )
    metrics_default_registry: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_METRICS_DEFAULT_REGISTRY",),
        "Append prometheus_client's default registry (`process_*`, `python_*`, the app's own metrics) to `/metrics`",
    )
    metrics_body_size: bool = _setting(
        False,
        _bool,
        ("OTEL_MONITOR_METRICS_BODY_SIZE",),
        "Also record `http.server.request.body.size` and `http.server.response.body.size` (not yet stable in the "
        "semantic conventions; two more histograms per series)",
    )
    system_metrics: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_SYSTEM_METRICS",),
        "Observable `system.*` and `process.*` gauges (read only when collected)",
    )
    set_global: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_SET_GLOBAL",),
        "Be the process's OpenTelemetry set-up: the first monitor installs global tracer/meter/logger providers "
        "(fork-aware; the app's own SDK providers are left in place) and the global propagator",
    )
    flask_instrumentation: str = _setting(
        "otel_monitor",
        _choice("otel_monitor", "contrib"),
        ("OTEL_MONITOR_FLASK_INSTRUMENTATION",),
        "What records Flask requests: `otel_monitor` (the lean middleware) or `contrib` (opentelemetry-"
        "instrumentation-flask's FlaskInstrumentor, for its hooks; see docs/opentelemetry.md). The other is kept off",
    )
    propagators: tuple[str, ...] = _setting(
        ("tracecontext", "baggage"),
        _propagators,
        ("OTEL_PROPAGATORS",),
        "Propagators for incoming and outgoing requests: `tracecontext`, `baggage`, `b3`, `b3multi`, `jaeger`, "
        "... (installed entry points), or `none`",
    )
    bsp_schedule_delay: int = _setting(
        1000,
        _number(1, 3_600_000, integer=True),
        ("OTEL_BSP_SCHEDULE_DELAY",),
        "Milliseconds between two span exports of the batch processor",
    )
    bsp_max_queue_size: int = _setting(
        2048,
        _number(1, 10_000_000, integer=True),
        ("OTEL_BSP_MAX_QUEUE_SIZE",),
        "Spans the batch processor queues before it drops (and counts) them",
    )
    bsp_max_export_batch_size: int = _setting(
        512,
        _number(1, 10_000_000, integer=True),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",),
        "Spans per export (at most the queue size)",
    )
    bsp_export_timeout: int = _setting(
        30000,
        _number(1, 3_600_000, integer=True),
        ("OTEL_BSP_EXPORT_TIMEOUT",),
        "Milliseconds the batch processor waits for one span export",
    )
    shutdown_timeout: float = _setting(
        3.0,
        _number(0.0, 120),
        ("OTEL_MONITOR_SHUTDOWN_TIMEOUT",),
        "Seconds flushing at exit may take before the process exits anyway",
    )
    sensitive_query_params: tuple[str, ...] = _setting(
        _SENSITIVE_DEFAULT,
        _names,
        ("OTEL_MONITOR_SENSITIVE_QUERY_PARAMS",),
        "Query parameters whose values are replaced by `REDACTED` in spans",
    )
    enduser_id_hash: bool = _setting(
        False,
        _bool,
        ("OTEL_MONITOR_ENDUSER_ID_HASH",),
        "Record `enduser.id` (spans, `/users`) as a keyed hash (HMAC-SHA256 with `enduser_id_hash_key`, 16 hex "
        "digits) instead of the id itself",
    )
    enduser_id_hash_key: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_ENDUSER_ID_HASH_KEY",),
        "Key of the `enduser.id` hash; default: `analytics_secret_key`, else the Flask app's `secret_key`, else a "
        "random key shared by the workers of one server (hashes then change at a restart)",
        secret=True,
    )
    trusted_proxies: tuple[str, ...] = _setting(
        (),
        _networks,
        ("OTEL_MONITOR_TRUSTED_PROXIES",),
        "Addresses or CIDR networks of your reverse proxies: only a request from one of them has its "
        "`X-Forwarded-For` read (right to left, skipping trusted hops) for `client.address`",
    )
    capture_user_agent: bool = _setting(
        True, _bool, ("OTEL_MONITOR_CAPTURE_USER_AGENT",), "Record `user_agent.original` on spans"
    )
    capture_headers_server_request: tuple[str, ...] = _setting(
        (),
        _patterns,
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",),
        "Request headers recorded on the request span as `http.request.header.<name>` (lists of strings): "
        "comma-separated regular expressions matching whole header names, case-insensitively",
    )
    capture_headers_server_response: tuple[str, ...] = _setting(
        (),
        _patterns,
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",),
        "Response headers recorded on the request span as `http.response.header.<name>`, as above",
    )
    capture_headers_sanitize_fields: tuple[str, ...] = _setting(
        (),
        _patterns,
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",),
        "Captured headers whose values are recorded as `[REDACTED]` (regular expressions searched in the name, "
        "case-insensitively); `Authorization`, `Proxy-Authorization`, `Cookie` and `Set-Cookie` always are",
    )
    http_known_methods: tuple[str, ...] = _setting(
        _KNOWN_METHODS_DEFAULT,
        _methods,
        ("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS",),
        "HTTP methods recorded as themselves (case-sensitive; replaces the default list); any other is `_OTHER`, "
        "with `http.request.method_original` on the span",
    )
    metrics_exemplar_filter: str | None = _setting(
        None,
        _choice("always_on", "always_off", "trace_based"),
        ("OTEL_METRICS_EXEMPLAR_FILTER",),
        "Which measurements may become exemplars: `always_on`, `always_off`, `trace_based`; default: trace-based "
        "for the request histograms, and for the other instruments only with a push exporter",
    )
    http_server_duration_buckets: tuple[float, ...] = _setting(
        DURATION_BUCKETS_DEFAULT,
        _buckets,
        ("OTEL_MONITOR_HTTP_SERVER_DURATION_BUCKETS",),
        "Boundaries (seconds, increasing) of the `http.server.request.duration` histogram; default: the semantic "
        "conventions' advisory ones plus 0.001 and 0.0025",
    )
    multiprocess_dir: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_MULTIPROCESS_DIR",),
        "Directory shared by the workers of one pre-fork server; default: detected automatically",
    )
    process_group: int | None = _setting(
        None,
        _process_group,
        ("OTEL_MONITOR_PROCESS_GROUP",),
        "Pid of the server's master whose workers share metrics, tokens and budgets (environment only; "
        "`otel-monitor run` sets it); default: detected from the server (gunicorn, uWSGI, uvicorn, "
        "hypercorn, mod_wsgi)",
    )

    # -- analytics: the JSON API and dashboard (otel_monitor.analytics) ----------------------
    analytics: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_ANALYTICS",),
        "Serve the analytics JSON API and dashboard under `analytics_prefix` (Flask apps)",
    )
    analytics_prefix: str = _setting(
        "/otel-monitor", _path, ("OTEL_MONITOR_ANALYTICS_PREFIX",), "URL prefix of the analytics API and dashboard"
    )
    analytics_username: str | None = _setting(
        None,
        _opt_str,
        ("MONITORING_USERNAME",),
        "Analytics login user name (HTTP Basic and the dashboard form); needs `analytics_password`",
    )
    analytics_password: str | None = _setting(
        None, _opt_str, ("MONITORING_PASSWORD",), "Analytics login password; needs `analytics_username`", secret=True
    )
    analytics_token: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_ANALYTICS_TOKEN",),
        "Analytics access token (`Authorization: Bearer`, `?token=`); "
        "with no credentials at all one is generated and logged once",
        secret=True,
    )
    analytics_auth: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_ANALYTICS_AUTH",),
        "Require credentials for the analytics; `off` opens it to anyone who can reach the app",
    )
    analytics_public_health: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_ANALYTICS_PUBLIC_HEALTH",),
        "Serve `<prefix>/health` without credentials (without the system details)",
    )
    analytics_secret_key: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_SECRET_KEY",),
        "Key signing the dashboard session cookie; default: the Flask app's `secret_key`, else random per process",
        secret=True,
    )
    analytics_db: str | None = _setting(
        None,
        _opt_str,
        ("MONITORING_DB",),
        "SQLite file for per-minute history (windows beyond 15 min, survives restarts); default: none",
    )
    analytics_retention_days: float = _setting(
        7.0, _number(0.01, 3650), ("OTEL_MONITOR_ANALYTICS_RETENTION_DAYS",), "Days of history kept in `analytics_db`"
    )
    apdex_t_ms: float = _setting(
        100.0, _number(1, 600_000), ("OTEL_MONITOR_APDEX_T_MS",), "Apdex target T in milliseconds (tolerated up to 4 T)"
    )
    analytics_slow_ms: float = _setting(
        500.0,
        _number(1, 3_600_000),
        ("OTEL_MONITOR_ANALYTICS_SLOW_MS",),
        "Requests slower than this many milliseconds are listed in `<prefix>/traces?kind=slow`",
    )
    analytics_traces_kept: int = _setting(
        200,
        _number(1, 100_000, integer=True),
        ("OTEL_MONITOR_ANALYTICS_TRACES_KEPT",),
        "Recent slow and failed requests kept per process (each kind)",
    )
    analytics_trace_details: int = _setting(
        50,
        _number(0, 1000, integer=True),
        ("OTEL_MONITOR_ANALYTICS_TRACE_DETAILS",),
        "Failed and slow requests (each) kept per process with their whole span tree (oldest dropped first); `0`: none",
    )
    profiling: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_PROFILING",),
        "Sample the stacks of requests older than `profiling_after_ms` (one thread per process, idle while no "
        "request runs); kept with slow and failed traces and per route at `<prefix>/profiles`",
    )
    profiling_interval_ms: float = _setting(
        10.0,
        _number(1, 1000),
        ("OTEL_MONITOR_PROFILING_INTERVAL_MS",),
        "Milliseconds between two stack samples of a slow request",
    )
    profiling_after_ms: float | None = _setting(
        None,
        _number(0, 3_600_000),
        ("OTEL_MONITOR_PROFILING_AFTER_MS",),
        "Requests are sampled once they are older than this many milliseconds; default: half of `analytics_slow_ms`",
    )
    analytics_max_routes: int = _setting(
        500,
        _number(10, 100_000, integer=True),
        ("OTEL_MONITOR_ANALYTICS_MAX_ROUTES",),
        "Distinct (route, method) pairs the analytics track; others are summed into `(other)`",
    )
    analytics_users_kept: int = _setting(
        100,
        _number(1, 10_000, integer=True),
        ("OTEL_MONITOR_ANALYTICS_USERS_KEPT",),
        "k of the users (and client addresses) counted per endpoint and time bucket: Space-Saving keeps up to 2 k, "
        "exact while an endpoint sees no more distinct users in a bucket, then the k busiest",
    )
    analytics_client_addresses: bool = _setting(
        False,
        _bool,
        ("OTEL_MONITOR_ANALYTICS_CLIENT_ADDRESSES",),
        "Count requests per client address in `<prefix>/clients` (off by default: addresses are personal data)",
    )
    analytics_max_concurrent: int = _setting(
        2,
        _number(0, 1000, integer=True),
        ("OTEL_MONITOR_ANALYTICS_MAX_CONCURRENT",),
        "Analytics requests computed at once per process (health never counts); more wait briefly, "
        "then get 503 with `Retry-After`; `0`: no cap",
    )
    trace_link_template: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_TRACE_LINK_TEMPLATE",),
        "Link to a trace viewer, `{trace_id}` replaced, e.g. `http://127.0.0.1:16686/trace/{trace_id}`",
    )
    health_latency_avg_ms: float = _setting(
        100.0,
        _number(0, 3_600_000),
        ("OTEL_MONITOR_HEALTH_LATENCY_AVG_MS",),
        "`/health`: average latency threshold (ms) over 5 minutes",
    )
    health_latency_p95_ms: float = _setting(
        100.0,
        _number(0, 3_600_000),
        ("OTEL_MONITOR_HEALTH_LATENCY_P95_MS",),
        "`/health`: p95 latency threshold (ms) over 5 minutes",
    )
    health_error_rate_pct: float = _setting(
        1.0,
        _number(0, 100),
        ("OTEL_MONITOR_HEALTH_ERROR_RATE_PCT",),
        "`/health`: error rate threshold (%) over 5 minutes",
    )
    health_memory_pct: float = _setting(
        80.0, _number(0, 100), ("OTEL_MONITOR_HEALTH_MEMORY_PCT",), "`/health`: host memory use threshold (%)"
    )
    health_cpu_pct: float = _setting(
        70.0, _number(0, 100), ("OTEL_MONITOR_HEALTH_CPU_PCT",), "`/health`: host CPU use threshold (%)"
    )
    health_disk_pct: float = _setting(
        90.0,
        _number(0, 100),
        ("OTEL_MONITOR_HEALTH_DISK_PCT",),
        "`/health`: disk use threshold (%) of the app's filesystem",
    )
    health_process_rss_bytes: float = _setting(
        float(1 << 30),
        _number(0, 1 << 50),
        ("OTEL_MONITOR_HEALTH_PROCESS_RSS_BYTES",),
        "`/health`: resident memory threshold (bytes) of the largest worker",
    )
    health_min_requests: int = _setting(
        50,
        _number(0, 1_000_000, integer=True),
        ("OTEL_MONITOR_HEALTH_MIN_REQUESTS",),
        "`/health`: requests the 5-minute window needs before its latency and error checks can warn or fail",
    )
    health_ready_thresholds: bool = _setting(
        False,
        _bool,
        ("OTEL_MONITOR_HEALTH_READY_THRESHOLDS",),
        "`/health/ready` also answers 503 when a latency, error-rate or worker-memory check fails (opt-in)",
    )
    grafana_url: str | None = _setting(
        None, _endpoint, ("OTEL_MONITOR_GRAFANA_URL",), "Grafana dashboard URL, linked from the dashboard"
    )
    prometheus_url: str | None = _setting(
        None, _endpoint, ("OTEL_MONITOR_PROMETHEUS_URL",), "Prometheus URL, linked from the dashboard"
    )
    analytics_source: str = _setting(
        "memory",
        _choice("memory", "prometheus"),
        ("OTEL_MONITOR_ANALYTICS_SOURCE",),
        "Where the analytics and dashboard read: `memory` (this process/gunicorn group), `prometheus` (the fleet)",
    )
    analytics_prometheus_url: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_MONITOR_ANALYTICS_PROMETHEUS_URL",),
        "Prometheus the app queries for `analytics_source=prometheus`; default: `prometheus_url`",
    )
    analytics_prometheus_selector: str | None = _setting(
        None,
        _selector,
        ("OTEL_MONITOR_ANALYTICS_PROMETHEUS_SELECTOR",),
        'PromQL label matchers choosing the service\'s series, e.g. `job="shop"`; default: `job="<service_name>"`',
    )
    analytics_prometheus_token: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_ANALYTICS_PROMETHEUS_TOKEN",),
        "Bearer token sent to that Prometheus (never logged)",
        secret=True,
    )
    analytics_prometheus_username: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_ANALYTICS_PROMETHEUS_USERNAME",),
        "HTTP Basic user name for that Prometheus; needs `analytics_prometheus_password`",
    )
    analytics_prometheus_password: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_ANALYTICS_PROMETHEUS_PASSWORD",),
        "HTTP Basic password for that Prometheus (never logged)",
        secret=True,
    )
    analytics_prometheus_timeout_s: float = _setting(
        3.0,
        _number(0.1, 60),
        ("OTEL_MONITOR_ANALYTICS_PROMETHEUS_TIMEOUT_S",),
        "Longest wait (seconds) for Prometheus per analytics request; then the page shows an error",
    )
    jaeger_url: str | None = _setting(
        None, _endpoint, ("OTEL_MONITOR_JAEGER_URL",), "Jaeger (trace viewer) URL, linked from the dashboard"
    )
    dashboard_refresh_s: float = _setting(
        30.0,
        _number(1, 3600),
        ("OTEL_MONITOR_DASHBOARD_REFRESH_S",),
        "Seconds between the dashboard's automatic refreshes (the page has a pause control)",
    )

    alerts: str = _setting(
        "auto",
        _choice("auto", "on", "off"),
        ("OTEL_MONITOR_ALERTS",),
        "Alert rules evaluated in the app: `auto` (on with a destination or `alerts_rules`), `on`, `off`",
    )
    alerts_rules: str | None = _setting(
        None,
        _alert_rules,
        ("OTEL_MONITOR_ALERTS_RULES",),
        'Custom alert rules: a JSON file\'s path, or inline JSON (a list of rules or `{"rules": [...]}`)',
    )
    alerts_default_rules: bool = _setting(
        True,
        _bool,
        ("OTEL_MONITOR_ALERTS_DEFAULT_RULES",),
        "Keep the built-in rules (average response time, error rate, memory, CPU, disk); `false` drops them",
    )
    alerts_interval_s: float = _setting(
        15.0, _number(0.1, 3600), ("OTEL_MONITOR_ALERTS_INTERVAL_S",), "Seconds between two evaluations of the rules"
    )
    alerts_repeat_interval_s: float = _setting(
        14400.0,
        _number(0, 604800),
        ("OTEL_MONITOR_ALERTS_REPEAT_INTERVAL_S",),
        "Seconds after which a still-firing alert is notified again (0: never)",
    )
    alerts_slack_webhook_url: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_MONITOR_ALERTS_SLACK_WEBHOOK_URL",),
        "Slack (or Mattermost, Rocket.Chat) incoming-webhook URL for alert notifications (never shown)",
        secret=True,
    )
    alerts_webhook_url: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_MONITOR_ALERTS_WEBHOOK_URL",),
        "Webhook receiving Alertmanager's webhook payload for each notification (never shown)",
        secret=True,
    )
    alerts_email_to: tuple[str, ...] = _setting(
        (), _emails, ("OTEL_MONITOR_ALERTS_EMAIL_TO",), "Comma-separated e-mail recipients of alert notifications"
    )
    alerts_email_from: str | None = _setting(
        None, _opt_email, ("OTEL_MONITOR_ALERTS_EMAIL_FROM",), "Sender address; default `otel_monitor@<smtp host>`"
    )
    alerts_smtp_host: str | None = _setting(
        None, _opt_str, ("OTEL_MONITOR_ALERTS_SMTP_HOST",), "SMTP server for alert e-mails"
    )
    alerts_smtp_port: int = _setting(
        25,
        _number(1, 65535, integer=True),
        ("OTEL_MONITOR_ALERTS_SMTP_PORT",),
        "SMTP port (587: submission with STARTTLS; 465: TLS from the start)",
    )
    alerts_smtp_username: str | None = _setting(
        None, _opt_str, ("OTEL_MONITOR_ALERTS_SMTP_USERNAME",), "SMTP login name (none: no login)"
    )
    alerts_smtp_password: str | None = _setting(
        None, _opt_str, ("OTEL_MONITOR_ALERTS_SMTP_PASSWORD",), "SMTP password (never shown)", secret=True
    )
    alerts_smtp_starttls: str = _setting(
        "auto",
        _choice("auto", "always", "never"),
        ("OTEL_MONITOR_ALERTS_SMTP_STARTTLS",),
        "STARTTLS: `auto` when the server offers it, `always` (refuse a server without it), `never`",
    )
    alerts_timeout_s: float = _setting(
        10.0, _number(0.1, 120), ("OTEL_MONITOR_ALERTS_TIMEOUT_S",), "Longest wait (seconds) for one delivery attempt"
    )
    alerts_report_schedule: str | None = _setting(
        None,
        _report_schedule,
        ("OTEL_MONITOR_ALERTS_REPORT_SCHEDULE",),
        "Send a digest: `daily 08:00` or `weekly mon 08:00` (local time) to the alert destinations",
    )
    alerts_state_file: str | None = _setting(
        None,
        _opt_str,
        ("OTEL_MONITOR_ALERTS_STATE_FILE",),
        "Where alert state survives restarts; default: the `analytics_db` database, else a file in the temp directory",
    )
    alerts_external_url: str | None = _setting(
        None,
        _endpoint,
        ("OTEL_MONITOR_ALERTS_EXTERNAL_URL",),
        "The app's public base URL, for absolute dashboard and trace links in notifications",
    )

    def source_of(self, name: str) -> str:
        """Where a setting's value came from: argument, app config, environment or default."""
        sources: dict[str, str] = self._sources  # type: ignore[attr-defined]  # set by resolve_settings
        return sources.get(name, "default")

    def masked(self) -> dict[str, object]:
        """Settings as a dict with secret values replaced, for logs and ``doctor``."""
        result: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = {k: "***" for k in value} if isinstance(value, dict) else "***"
            result[f.name] = value
        return result


FIELDS: tuple[dataclasses.Field[object], ...] = dataclasses.fields(Settings)
_FIELD_NAMES = {f.name for f in FIELDS}


def config_key(name: str) -> str:
    """The Flask ``app.config`` key for a setting."""
    return "OTEL_MONITOR_" + name.upper()


def _default(f: dataclasses.Field[object]) -> object:
    return {} if f.default is dataclasses.MISSING else f.default


def resolve_settings(
    kwargs: Mapping[str, object] | None = None,
    config: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, object] | None = None,
) -> Settings:
    """Resolve every setting: ``kwargs`` > ``config`` (Flask app.config) > ``environ`` > defaults.

    Raises :class:`SettingsError` naming the setting, where it came from and what it accepts.
    ``defaults`` overrides the built-in defaults (the app's name for ``service_name``, say).
    """
    import os

    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - _FIELD_NAMES)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}; see otel_monitor.settings.FIELDS")
    config = config or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in FIELDS:
        parse = f.metadata["parse"]
        candidates: list[tuple[str, object]] = []
        if f.name in kwargs:
            candidates.append((f"argument {f.name}=", kwargs[f.name]))
        elif config_key(f.name) in config:
            candidates.append((f"app.config[{config_key(f.name)!r}]", config[config_key(f.name)]))
        else:
            for var in f.metadata["env"]:
                if var in environ and str(environ[var]).strip() != "":
                    candidates.append((f"environment variable {var}", environ[var]))
                    break
        if candidates:
            where, raw = candidates[0]
            if raw is None or (f.default is None and isinstance(raw, str) and not raw.strip()):
                value = None if f.default is None else _default(f)
            else:
                try:
                    value = parse(raw)
                except (ValueError, TypeError) as exc:
                    # a secret's value is never repeated (a webhook URL's path is its token)
                    shown = "(secret, not shown)" if f.metadata["secret"] else repr(str(raw)[:80])
                    raise SettingsError(f"{f.name}: bad value {shown} from {where}: {exc}") from None
            values[f.name] = value
            sources[f.name] = where.split(" ")[0] if where.startswith("argument") else where
        else:
            values[f.name] = (defaults or {}).get(f.name, _default(f))
    # The standard OTLP timeout is in milliseconds; ours in seconds wins when both are given.
    if "otlp_timeout" not in sources and environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", "").strip():
        try:
            values["otlp_timeout"] = _number(0.1, 60)(float(environ["OTEL_EXPORTER_OTLP_TIMEOUT"]) / 1000)
            sources["otlp_timeout"] = "environment variable OTEL_EXPORTER_OTLP_TIMEOUT"
        except ValueError as exc:
            raise SettingsError(
                f"otlp_timeout: bad value from environment variable OTEL_EXPORTER_OTLP_TIMEOUT (milliseconds): {exc}"
            ) from None
    # The SDK specification: OTEL_SERVICE_NAME (or our argument / app.config) wins, then a
    # service.name given in OTEL_RESOURCE_ATTRIBUTES, then any default (the Flask app's name).
    given = values["resource_attributes"].get("service.name") if "service_name" not in sources else None
    if given:
        values["service_name"] = given
        sources["service_name"] = sources.get("resource_attributes", "default") + " (service.name)"
    settings = Settings(**values)
    object.__setattr__(settings, "_sources", sources)
    return settings


def markdown_table() -> str:
    """The README's settings table, generated from :data:`FIELDS` (a test keeps them in sync)."""
    rows = [
        "| setting (keyword / `app.config` key) | environment variable | default | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for f in FIELDS:
        default = "{}" if f.default is dataclasses.MISSING else f.default
        if isinstance(default, tuple):
            default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) if default else "(none)"
        shown = "(none)" if default is None else str(default)
        env = " / ".join(f"`{v}`" for v in f.metadata["env"])
        rows.append(f"| `{f.name}` / `{config_key(f.name)}` | {env} | `{shown}` | {f.metadata['doc']} |")
    return "\n".join(rows)
