"""Exactly one SERVER span, one set of http.server.* metrics and one instance id per request, however the
Flask app is instrumented: Monitor alone, with FlaskInstrumentor by hand (either order), under
opentelemetry-instrument, under otel-monitor run; and /metrics passes promtool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from flask import Flask
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.trace import SpanKind

from otel_monitor import Monitor
from otel_monitor.telemetry import _providers
from otel_monitor.testing import Telemetry, closing_client

from .conftest import ROOT


@pytest.fixture(autouse=True)
def _only_this_tests_monitors(monkeypatch):
    monkeypatch.setattr(_providers, "_order", [])


def _app() -> Flask:
    app = Flask("coexist")
    app.add_url_rule("/users/<int:uid>", "user", lambda uid: {"uid": uid})
    return app


def _promtool_ok(body: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed"
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert "error" not in (check.stdout + check.stderr).lower(), check.stdout + check.stderr


def _one_request_one_server_span(app: Flask, monitor: Monitor) -> None:
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    client.get("/users/1")
    spans = telemetry.spans()
    assert [(s.name, s.kind) for s in spans] == [("GET /users/<int:uid>", SpanKind.SERVER)]
    body = client.get("/metrics").get_data(as_text=True)
    assert body.count("# TYPE http_server_active_requests ") == 1
    assert "http_server_duration" not in body  # no second latency metric in milliseconds
    _promtool_ok(body)


def test_monitor_alone_records_one_server_span():
    app = _app()
    monitor = Monitor(app, system_metrics=False, analytics=False)
    _one_request_one_server_span(app, monitor)
    monitor.shutdown(1)


def test_flask_instrumentor_first_then_monitor_records_one_server_span(caplog):
    app = _app()
    FlaskInstrumentor().instrument_app(app)
    monitor = Monitor(app, system_metrics=False, analytics=False)
    _one_request_one_server_span(app, monitor)
    monitor.shutdown(1)


def test_monitor_first_then_flask_instrumentor_records_one_server_span():
    app = _app()
    monitor = Monitor(app, system_metrics=False, analytics=False)
    FlaskInstrumentor().instrument_app(app)  # refused: "already instrumented"
    _one_request_one_server_span(app, monitor)
    monitor.shutdown(1)


def test_contrib_mode_records_through_flask_instrumentor_into_the_monitors_pipeline():
    app = _app()
    monitor = Monitor(app, system_metrics=False, analytics=False, flask_instrumentation="contrib")
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    client.get("/users/1")
    (span,) = telemetry.spans()
    assert (span.name, span.kind) == ("GET /users/<int:uid>", SpanKind.SERVER)
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.flask"
    assert span.resource.attributes["service.instance.id"] == monitor.pipeline.instance_id
    body = client.get("/metrics").get_data(as_text=True)
    assert len(telemetry.spans()) == 1  # /metrics is served before Flask: not traced
    assert "http_server_duration_milliseconds_count" in body  # upstream's default (old) conventions
    _promtool_ok(body)
    monitor.shutdown(1)


def test_contrib_mode_keeps_an_app_instrumented_by_hand_with_its_hooks():
    app = _app()
    FlaskInstrumentor().instrument_app(app, request_hook=lambda span, environ: span.set_attribute("hooked", True))
    monitor = Monitor(app, system_metrics=False, analytics=False, flask_instrumentation="contrib")
    telemetry = Telemetry(monitor)
    closing_client(app).get("/users/1")
    (span,) = telemetry.spans()
    assert span.attributes["hooked"] is True and span.kind == SpanKind.SERVER
    monitor.shutdown(1)


APP_SOURCE = """
import json, sys
from flask import Flask
from otel_monitor import Monitor
app = Flask("distro_app")
app.add_url_rule("/users/<int:uid>", "user", lambda uid: {{"uid": uid}})
{attach}
client = app.test_client()
for i in range(3):
    client.get(f"/users/{{i}}").close()
body = client.get("/metrics").get_data(as_text=True)
print("ACTIVE_FAMILIES", body.count("# TYPE http_server_active_requests "))
print("OLD_DURATION", "http_server_duration" in body)
"""


def _spans_printed(stdout: str) -> list[dict]:
    """Spans printed by the console exporter (one JSON object each)."""
    decoder, spans, i = json.JSONDecoder(), [], 0
    while (i := stdout.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(stdout, i)
        except ValueError:
            i += 1
            continue
        if isinstance(obj, dict) and "kind" in obj and "context" in obj:
            spans.append(obj)
        i = end
    return spans


def _run(args: list[str], source: str, tmp_path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "distro_app.py"
    path.write_text(textwrap.dedent(source))
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_MONITOR_ANALYTICS": "false",
        "OTEL_MONITOR_SYSTEM_METRICS": "false",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **(extra_env or {}),
    }
    result = subprocess.run([*args, str(path)], env=env, capture_output=True, text=True, timeout=90, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _assert_one_span_per_request(result: subprocess.CompletedProcess) -> None:
    spans = [s for s in _spans_printed(result.stdout) if s["name"].startswith("GET /users")]
    assert len(spans) == 3, [(s["name"], s["kind"]) for s in spans]
    assert {s["kind"] for s in spans} == {"SpanKind.SERVER"}
    assert len({s["resource"]["attributes"]["service.instance.id"] for s in spans}) == 1
    assert "ACTIVE_FAMILIES 1" in result.stdout and "OLD_DURATION False" in result.stdout


@pytest.mark.integration
def test_under_opentelemetry_instrument_one_server_span_per_request(tmp_path):
    bindir = os.path.dirname(sys.executable)
    source = APP_SOURCE.format(attach="Monitor(app)")
    result = _run([os.path.join(bindir, "opentelemetry-instrument"), sys.executable], source, tmp_path)
    _assert_one_span_per_request(result)


@pytest.mark.integration
def test_under_otel_monitor_run_with_flask_instrumentor_by_hand_one_server_span_per_request(tmp_path):
    bindir = os.path.dirname(sys.executable)
    attach = (
        "from opentelemetry.instrumentation.flask import FlaskInstrumentor\n"
        "FlaskInstrumentor().instrument_app(app)  # otel-monitor run attaches at the first request\n"
        "from opentelemetry import trace\n"
        "tracer = trace.get_tracer('user.code')\n"
        "@app.after_request\n"
        "def user_work(response):\n"
        "    with tracer.start_as_current_span('user-work'):\n"
        "        return response\n"
    )
    source = APP_SOURCE.format(attach=attach).replace("from otel_monitor import Monitor\n", "")
    result = _run([os.path.join(bindir, "otel-monitor"), "run", "--", sys.executable], source, tmp_path)
    _assert_one_span_per_request(result)
    spans = _spans_printed(result.stdout)
    servers = {s["context"]["span_id"]: s for s in spans if s["name"].startswith("GET /users")}
    user = [s for s in spans if s["name"] == "user-work"]
    assert len(user) == 3 and all(s["parent_id"] in servers for s in user)  # the user's own spans, by default
    assert len({s["resource"]["attributes"]["service.instance.id"] for s in spans}) == 1


def test_contrib_mode_with_stable_conventions_feeds_the_analytics_and_passes_promtool(tmp_path):
    code = textwrap.dedent(
        """
        import json
        from flask import Flask
        from otel_monitor import Monitor
        app = Flask("contrib_stable")
        app.add_url_rule("/x", "x", lambda: "ok")
        Monitor(app, flask_instrumentation="contrib", system_metrics=False, analytics_token="t0ken-abcdefghijklmnop")
        client = app.test_client()
        for _ in range(3):
            client.get("/x").close()
        answer = client.get("/otel-monitor/performance", headers={"Authorization": "Bearer t0ken-abcdefghijklmnop"})
        print("REQUESTS", answer.get_json()["windows"]["1m"]["requests"])
        print("METRICS", json.dumps(client.get("/metrics").get_data(as_text=True)))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OTEL_SEMCONV_STABILITY_OPT_IN": "http"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "REQUESTS 3" in result.stdout
    body = json.loads(result.stdout.split("METRICS ", 1)[1])
    assert body.count("# TYPE http_server_active_requests ") == 1 and "http_server_duration" not in body
    _promtool_ok(body)
