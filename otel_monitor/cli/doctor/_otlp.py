"""The doctor's OTLP check: each exported signal's endpoint accepts TCP connections, and its port
matches its protocol (4317 gRPC, 4318 HTTP)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from ...settings import Settings
from ._report import Report

__all__ = ["CONNECT_TIMEOUT", "otlp_targets", "tcp_check", "check_otlp"]

CONNECT_TIMEOUT = 2.0


def otlp_targets(settings: Settings) -> list[tuple[str, str, str]]:
    """``[(signal, protocol, endpoint URL), ...]`` for the signals exported over OTLP."""
    from ...telemetry.pipeline import _exporter_names, _otlp_target

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


def check_otlp(report: Report, settings: Settings) -> None:
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
