"""The optional separate metrics port: a tiny threaded HTTP server serving only /metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ..telemetry.pipeline import Pipeline

_logger = logging.getLogger("otel_monitor")


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # scrapes every few seconds would flood the log
        pass


def start_metrics_server(pipeline: Pipeline, app: WSGIApplication) -> None:
    settings = pipeline.settings
    path = settings.metrics_path
    port = settings.metrics_port
    if port is None:  # no separate port configured
        return

    def only_metrics(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != path:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        return app(environ, start_response)

    try:
        server = make_server(
            settings.metrics_host,
            port,
            only_metrics,
            server_class=_Server,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        # Under a pre-fork server only one worker can own the port; it serves the merged data.
        _logger.info(
            "otel_monitor: metrics port %s:%s not opened in this process (%s)",
            settings.metrics_host,
            settings.metrics_port,
            exc,
        )
        return
    thread = threading.Thread(target=server.serve_forever, name="otel_monitor-metrics", daemon=True)
    thread.start()
    pipeline.metrics_server = server

    def stop() -> None:
        server.shutdown()
        server.server_close()

    pipeline.shutdown_hooks.append(stop)
