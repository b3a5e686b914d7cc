"""otel_monitor: one-line OpenTelemetry monitoring for Flask and any WSGI app.

    from otel_monitor import Monitor
    monitor = Monitor(app)

gives traces, request metrics, system-health gauges, a Prometheus ``/metrics`` endpoint and
OTLP export. See the README for settings and the metrics reference.
"""

from .__about__ import __version__
from .monitor import Monitor, get_monitor, wrap
from .request._enduser import set_enduser
from .request._frameworks import set_route
from .settings import Settings, SettingsError, resolve_settings

__all__ = [
    "Monitor",
    "wrap",
    "get_monitor",
    "set_route",
    "set_enduser",
    "Settings",
    "SettingsError",
    "resolve_settings",
    "__version__",
]
