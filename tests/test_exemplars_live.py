"""A real Prometheus with exemplar storage scrapes /metrics and stores the trace ids of sampled requests."""

from __future__ import annotations

import threading
import time
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import yaml

from otel_monitor.testing import Telemetry

from .conftest import build_app
from .test_stack_live import Prometheus, free_port, require, start_ready, stop, wait_for

pytestmark = pytest.mark.integration


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served_app():
    app, monitor = build_app()
    telemetry = Telemetry(monitor)
    port = free_port()
    server = make_server("127.0.0.1", port, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{port}", telemetry
    server.shutdown()
    server.server_close()
    monitor.shutdown(timeout=2)


def test_prometheus_stores_exemplars_whose_trace_ids_are_spans_we_exported(served_app, tmp_path):
    target, telemetry = served_app
    binary = require("prometheus", "apt-get install prometheus")
    for _ in range(5):
        urllib.request.urlopen(f"http://{target}/users/7", timeout=30).read()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_ready(
        "Prometheus",
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        url,
        tmp_path / "prometheus.log",
    )
    try:
        prometheus = Prometheus(url)
        started = time.time() - 60

        def exemplars():
            data = prometheus.api(
                "/api/v1/query_exemplars",
                query='http_server_request_duration_seconds_bucket{http_route="/users/<int:user_id>"}',
                start=str(started),
                end=str(time.time() + 60),
            )
            return [e for series in data for e in series["exemplars"]]

        found = wait_for(exemplars, 30, "an exemplar in Prometheus")
    finally:
        stop(process)
    exported = {format(s.context.trace_id, "032x"): s for s in telemetry.spans()}
    for exemplar in found:
        span = exported[exemplar["labels"]["trace_id"]]
        assert span.name == "GET /users/<int:user_id>"
        assert exemplar["labels"]["span_id"] == format(span.context.span_id, "016x")
