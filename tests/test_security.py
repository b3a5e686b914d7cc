"""Secrets never leave the process; /metrics can be protected; log lines cannot be forged."""

from __future__ import annotations

import logging
import sys

from flask import Flask

from otel_monitor._safe_log import log_internal_error
from otel_monitor.testing import Telemetry, closing_client

SENTINELS = {f"SENTINEL{i}x7q" for i in range(1, 7)}


def test_secret_sentinels_from_query_headers_environment_and_argv_appear_nowhere(monkeypatch, caplog, monitors):
    monkeypatch.setenv("APP_DB_PASSWORD", "SENTINEL5x7q")
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--api-key=SENTINEL6x7q"])
    app = Flask("secrets")
    app.add_url_rule("/", "index", lambda: "ok")
    monitor = monitors(app, system_metrics=True)
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    with caplog.at_level(logging.DEBUG):
        client.get(
            "/?password=SENTINEL1x7q&api_key=SENTINEL2x7q&page=1",
            headers={"Authorization": "Bearer SENTINEL3x7q", "Cookie": "session=SENTINEL4x7q"},
        )
        scraped = client.get("/metrics").get_data(as_text=True)
    span_text = repr([dict(s.attributes) for s in telemetry.spans()]) + repr(dict(monitor.pipeline.resource.attributes))
    metric_text = repr(monitor.pipeline.reader.snapshot().to_json())
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for sentinel in SENTINELS:
        for where, text in (("spans", span_text), ("metrics", metric_text), ("/metrics", scraped), ("logs", logs)):
            assert sentinel not in text, f"{sentinel} leaked into {where}"


def test_the_list_of_redacted_query_parameters_is_configurable(monitors):
    app = Flask("redact")
    app.add_url_rule("/", "index", lambda: "ok")
    monitor = monitors(app, system_metrics=False, sensitive_query_params="ssn,card")
    telemetry = Telemetry(monitor)
    closing_client(app).get("/?ssn=123&card=4111&token=visible")
    assert telemetry.spans()[0].attributes["url.query"] == "ssn=REDACTED&card=REDACTED&token=visible"


def test_metrics_can_require_a_bearer_token_compared_in_constant_time(monkeypatch, monitors):
    import hmac

    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((type(a), type(b))) or real(a, b))
    app = Flask("protected")
    app.add_url_rule("/", "index", lambda: "ok")
    monitors(app, system_metrics=False, metrics_token="s3cret-token")
    client = closing_client(app)
    client.get("/")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3crét"}).status_code == 401  # non-ASCII
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and b"target_info" in ok.data
    assert compared and all(t == (bytes, bytes) for t in compared)


def test_target_info_can_be_hidden_from_metrics(monitors):
    app = Flask("quiet")
    app.add_url_rule("/", "index", lambda: "ok")
    monitors(app, system_metrics=False, metrics_target_info=False)
    client = closing_client(app)
    client.get("/")
    body = client.get("/metrics").get_data(as_text=True)
    assert "http_server_request_duration_seconds_count" in body
    assert "target_info" not in body and "host_name" not in body


def test_control_characters_from_requests_cannot_forge_log_lines(caplog):
    with caplog.at_level(logging.WARNING):
        try:
            raise ValueError("bad route /x\r\nINFO forged line \x1b[31mred")
        except ValueError:
            log_internal_error("handling /x\r\n\x1b[2J")
    (record,) = caplog.records
    message = record.getMessage()
    assert "\r" not in message and "\n" not in message and "\x1b" not in message
    assert "\\x0d\\x0a" in message and "\\x1b" in message
