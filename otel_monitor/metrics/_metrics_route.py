"""An app that already serves the metrics path keeps it: start-up says so instead of shadowing it.

A service adopting otel_monitor may already answer ``/metrics`` (prometheus_client's
``make_wsgi_app`` under a ``DispatcherMiddleware``, prometheus_flask_exporter, a view of its
own). Taking that path over would silently drop the metrics it serves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

_logger = logging.getLogger("otel_monitor")

__all__ = ["existing_metrics_route", "guard_existing_metrics_route"]


def existing_metrics_route(app: Flask, wsgi_app: WSGIApplication | None, path: str) -> str | None:
    """What already serves ``path`` in a Flask ``app`` (described for the log), or None."""
    mounts = getattr(wsgi_app, "mounts", None)  # werkzeug's DispatcherMiddleware
    if isinstance(mounts, dict) and path in mounts:
        return f"a WSGI app mounted on {path!r} ({type(wsgi_app).__name__})"
    for rule in app.url_map.iter_rules():
        if rule.rule == path and "GET" in (rule.methods or ()):
            return f"the view {rule.endpoint!r}"
    return None


def _warn(found: str, path: str) -> None:
    _logger.warning(
        "otel_monitor: %s already serves %s, so otel_monitor does not; set metrics_path "
        "(OTEL_MONITOR_METRICS_PATH), e.g. /otel-metrics, to serve otel_monitor's metrics beside it, "
        "or metrics_port for a separate port",
        found,
        path,
    )


def guard_existing_metrics_route(
    app: Flask, wsgi_app: WSGIApplication, path: str, metrics_app: WSGIApplication
) -> WSGIApplication | None:
    """``metrics_app``, or None when ``app`` already serves ``path`` at start-up.

    Routes added after ``Monitor(app)`` (prometheus_flask_exporter initialised later) are found at
    the first request to ``path``: from then on that request goes to the app.
    """
    found = existing_metrics_route(app, wsgi_app, path)
    if found is not None:
        _warn(found, path)
        return None
    decided: list[bool] = []
    lock = threading.Lock()

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not decided:
            with lock:
                if not decided:
                    later = existing_metrics_route(app, None, path)
                    if later is not None:
                        _warn(later, path)
                    decided.append(later is None)
        if decided[0]:
            return metrics_app(environ, start_response)
        return wsgi_app(environ, start_response)

    return guarded
