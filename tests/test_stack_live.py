"""The stack's queries and alerts against a real Prometheus and a real Alertmanager.

The example app (examples/app.py) runs on 127.0.0.1 under a bounded stream of traffic; Debian's
`prometheus` scrapes it every second and Debian's `prometheus-alertmanager` delivers alerts to
a webhook served by this test. Checked here:

1. every PromQL expression of the Grafana dashboard and of collector-config/alert-rules.yml
   returns data for the app's real metrics (thresholds relaxed, since a healthy test app does
   not cross them), and Prometheus evaluates the real rule file without errors;
2. the request counts Prometheus sees equal the requests sent;
3. the error-rate alert, with the real rule's expression and `for: 1s`, stays quiet while the
   app succeeds and reaches the webhook once its failing route is driven;

and the Dockerfile's HEALTHCHECK command passes against the running app (fails on a closed port).

Every process is started on 127.0.0.1 and stopped by the fixtures that started it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import HANG_S

yaml = pytest.importorskip("yaml", reason="PyYAML is needed: pip install pyyaml")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "collector-config"
APP = REPO / "examples" / "app.py"
DASHBOARD = CONFIG / "grafana" / "dashboards" / "otel-monitor.json"
APP_JOB = "otel-monitor-app"  # the job name the rules and the dashboard read
USER_ROUTE = "/api/users/<int:user_id>"
USER_REQUESTS = 37  # sent by test 2 only; the background traffic stays off this route

# Grafana's variables, as the brief for this stack fixes them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$route": ".*",
    "$instance": ".*",
    "$job": APP_JOB,
}


# -- helpers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError) as exc:  # not up yet
            last_error = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")


def start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def start_ready(name: str, args: list[str], url: str, log: Path) -> subprocess.Popen:
    """Start a Prometheus-family server and wait until ``/-/ready`` answers 200."""
    process = start(args, log)
    try:
        wait_for(
            lambda: process.poll() is None and http_get(f"{url}/-/ready")[0] == 200,
            HANG_S,
            f"{name} on {url} (log: {log})",
        )
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def require(binary: str, install: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed ({install})")
    return path


class Prometheus:
    def __init__(self, base: str):
        self.base = base

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(f"{self.base}{path}?{query}" if query else f"{self.base}{path}")
        payload = json.loads(body)
        assert status == 200 and payload["status"] == "success", f"{path} {params}: {payload}"
        return payload["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("/api/v1/query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


# -- the expressions under test -------------------------------------------------------------------


def alert_rules() -> list[dict]:
    with open(CONFIG / "alert-rules.yml", encoding="utf-8") as fh:
        return [rule for group in yaml.safe_load(fh)["groups"] for rule in group["rules"]]


def substitute(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


def without_thresholds(expr: str) -> str:
    """The expression with each `> 0.1`-style comparison made `>= 0`.

    Every quantity the rules compare is non-negative, so `>= 0` keeps exactly the series the
    expression computes: what is left to check is that there is something to compare."""
    relaxed = re.sub(r"(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[0-9][0-9.eE+-]*", ">= 0", expr)
    assert relaxed != expr, f"no threshold found in {expr!r}"
    return relaxed


def dashboard() -> dict:
    with open(DASHBOARD, encoding="utf-8") as fh:
        return json.load(fh)


def dashboard_targets() -> list[tuple[str, str]]:
    found = []
    for panel in dashboard()["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                found.append((f"{inner['title']} / {target['refId']}", substitute(target["expr"])))
    return found


def dashboard_variable_queries() -> list[tuple[str, str, str]]:
    """(variable, metric selector, label) of every label_values() variable."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", query)
        assert match, f"${variable['name']}: only label_values(selector, label) is supported here: {query!r}"
        found.append((variable["name"], substitute(match.group(1)), match.group(2)))
    return found


# -- fixtures: the app, a webhook, Alertmanager and Prometheus, each stopped by its own finalizer ----


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME="stack-live-test",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path_factory.mktemp("app") / "app.log"
    process = start([sys.executable, str(APP), "--host", "127.0.0.1", "--port", str(port)], log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: process.poll() is None and http_get(f"{url}/metrics")[0] == 200,
            HANG_S,
            f"the example app on {url} (log: {log})",
        )
        yield url
    finally:
        stop(process)


class Webhook:
    """Collects the JSON bodies Alertmanager posts."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.received = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.received:
                    hook.bodies.append(json.loads(body))
                    hook.received.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def wait_for_alert(self, alertname: str, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        with self.received:
            while True:
                for body in self.bodies:
                    for alert in body["alerts"]:
                        if alert["labels"].get("alertname") == alertname and alert["status"] == "firing":
                            return alert
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.received.wait(remaining)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def webhook():
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture(scope="module")
def alertmanager_url(tmp_path_factory, webhook):
    binary = require("prometheus-alertmanager", "apt-get install prometheus-alertmanager")
    workdir = tmp_path_factory.mktemp("alertmanager")
    config = {
        "route": {
            "receiver": "test-webhook",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "test-webhook", "webhook_configs": [{"url": webhook.url, "send_resolved": False}]}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_ready(
        "Alertmanager",
        [
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}/",
            "--cluster.listen-address=",
        ],
        url,
        workdir / "alertmanager.log",
    )
    try:
        yield url
    finally:
        stop(process)


def error_rate_rule() -> dict:
    return next(rule for rule in alert_rules() if rule.get("alert") == "HighErrorRate")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, app_url, alertmanager_url):
    binary = require("prometheus", "apt-get install prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    # The real rule file, unchanged, plus the error-rate alert with the same expression and for: 1s.
    shutil.copy(CONFIG / "alert-rules.yml", workdir / "alert-rules.yml")
    real = error_rate_rule()
    fast = {
        "alert": real["alert"],
        "expr": real["expr"],
        "for": "1s",
        "labels": {**real["labels"], "stage": "live-test"},
        "annotations": real["annotations"],
    }
    (workdir / "live-rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "live-test", "rules": [fast]}]}))
    app_target = urllib.parse.urlsplit(app_url).netloc
    am_target = urllib.parse.urlsplit(alertmanager_url).netloc
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alert-rules.yml", "live-rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_target]}]}]},
        "scrape_configs": [
            {"job_name": APP_JOB, "static_configs": [{"targets": [app_target]}]},
            # Stands in for the collector's :8889 copy of the app's metrics, which the dashboard's
            # exemplar query reads (same metric names; there is no collector binary on this machine).
            {"job_name": "otel-collector", "static_configs": [{"targets": [app_target]}]},
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_ready(
        "Prometheus",
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}/",
            "--enable-feature=exemplar-storage",
        ],
        url,
        workdir / "prometheus.log",
    )
    try:
        server = Prometheus(url)
        # Target discovery batches updates for 5 s: the first scrape lands about 6 s after start.
        wait_for(lambda: server.value(f'up{{job="{APP_JOB}"}}') == 1, HANG_S, "the first scrape of the app")
        yield server
    finally:
        stop(process)


class Traffic:
    """Successful requests (and 404s) from one thread, until stopped (at most 10 min: a hang bound).

    It stays off USER_ROUTE, whose count test 2 checks, and off /api/error, whose failures
    test 3 adds when it wants the error-rate alert to fire."""

    PATHS = ("/", "/api/users", "/api/slow", "/api/users?limit=3", "/does-not-exist")

    def __init__(self, base: str):
        self.base = base
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        deadline = time.monotonic() + 600
        while not self.stopped.is_set() and time.monotonic() < deadline:
            for path in self.PATHS:
                http_get(self.base + path)
            self.stopped.wait(0.2)

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def traffic(app_url, prometheus):
    """Steady traffic while the module's tests run: rate() needs increases between scrapes."""
    # One failure creates the 5xx series (its rate stays 0 until test 3 fails more requests).
    assert http_get(f"{app_url}/api/error")[0] == 500
    load = Traffic(app_url)
    try:
        # Two scrapes with requests in between make every rate() and histogram_quantile() defined.
        wait_for(
            lambda: prometheus.query(
                f'rate(http_server_request_duration_seconds_count{{job="{APP_JOB}", http_route="/api/slow"}}[1m]) > 0'
            ),
            HANG_S,
            "request rates in Prometheus",
        )
        yield load
    finally:
        load.close()


# -- tests -----------------------------------------------------------------------------------------


def test_dashboard_queries_return_data(prometheus, traffic):
    targets = dashboard_targets()
    assert len(targets) >= 14

    def empty_queries():
        return [f"{where}: {expr}" for where, expr in targets if not prometheus.query(expr)]

    # The second scrape job (the collector's stand-in) may be a scrape or two behind the first.
    deadline = time.monotonic() + HANG_S
    empty = empty_queries()
    while empty and time.monotonic() < deadline:
        time.sleep(1)
        empty = empty_queries()
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    for name, selector, label in dashboard_variable_queries():
        values = prometheus.api("/api/v1/label/" + label + "/values", **{"match[]": selector})
        assert values, f"${name}: label_values({selector}, {label}) is empty"
    routes = prometheus.api(
        "/api/v1/label/http_route/values", **{"match[]": "http_server_request_duration_seconds_count"}
    )
    assert {"/", "/api/users", "/api/slow", "/api/error"} <= set(routes)


def test_alert_and_recording_rule_expressions_return_data(prometheus, traffic):
    def empty_rules():
        empty = []
        for rule in alert_rules():
            expr = without_thresholds(rule["expr"]) if "alert" in rule else rule["expr"]
            if not prometheus.query(expr):
                empty.append(f"{rule.get('alert') or rule.get('record')}: {expr}")
        return empty

    deadline = time.monotonic() + HANG_S
    empty = empty_rules()
    while empty and time.monotonic() < deadline:  # a rate() needs two scrapes of a new series
        time.sleep(1)
        empty = empty_rules()
    assert not empty, "rule expressions without data:\n" + "\n".join(empty)


def test_prometheus_evaluates_the_real_rule_file_without_errors(prometheus, traffic):
    def evaluated():
        groups = prometheus.api("/api/v1/rules")["groups"]
        rules = [rule for group in groups if group["file"].endswith("alert-rules.yml") for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_for(evaluated, HANG_S, "the first evaluation of alert-rules.yml")
    assert len(rules) == len(alert_rules())
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] != "ok"]
    assert not broken, broken
    recorded = wait_for(lambda: prometheus.query("job:http_server_requests:rate5m"), HANG_S, "a recorded series")
    assert recorded[0]["metric"]["job"] == APP_JOB


def test_request_counts_in_prometheus_equal_requests_sent(prometheus, app_url, traffic):
    for i in range(USER_REQUESTS):
        status, _ = http_get(f"{app_url}/api/users/{i % 50 + 1}")
        assert status == 200
    expr = f'sum(http_server_request_duration_seconds_count{{job="{APP_JOB}", http_route="{USER_ROUTE}"}})'
    wait_for(lambda: prometheus.value(expr) == USER_REQUESTS, HANG_S, f"{expr} == {USER_REQUESTS}")
    selector = f'job="{APP_JOB}", http_route="{USER_ROUTE}"'
    by_status = prometheus.query(
        f"sum by (http_response_status_code) (http_server_request_duration_seconds_count{{{selector}}})"
    )
    assert {r["metric"]["http_response_status_code"]: float(r["value"][1]) for r in by_status} == {"200": USER_REQUESTS}
    # The histogram agrees with itself: the +Inf bucket holds every request.
    inf = prometheus.value(
        f'sum(http_server_request_duration_seconds_bucket{{job="{APP_JOB}", http_route="{USER_ROUTE}", le="+Inf"}})'
    )
    assert inf == USER_REQUESTS


def test_dockerfile_healthcheck_command_against_the_app(app_url):
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    line = next(line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK"))
    command = json.loads(line[line.index("CMD") + 3 :])
    assert command[0] == "python" and "http://127.0.0.1:8000/metrics" in command[2]
    code = command[2].replace("http://127.0.0.1:8000", app_url)
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode == 0
    closed = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{free_port()}")
    assert subprocess.run([sys.executable, "-c", closed], capture_output=True, timeout=30).returncode != 0


def test_error_rate_alert_reaches_the_webhook(prometheus, app_url, webhook, traffic):
    # Quiet before: only successes (and one old failure) so far.
    assert not prometheus.query('ALERTS{alertname="HighErrorRate"}')
    assert webhook.wait_for_alert("HighErrorRate", timeout=0) is None
    started = time.monotonic()
    alert = None
    while alert is None and time.monotonic() - started < 2 * HANG_S:
        for _ in range(5):  # keep the failing route failing, next to successful requests
            assert http_get(f"{app_url}/api/error")[0] == 500
            http_get(f"{app_url}/")
        alert = webhook.wait_for_alert("HighErrorRate", timeout=1)
    assert alert is not None, f"HighErrorRate did not reach the webhook within {2 * HANG_S:g} s"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == APP_JOB
    assert alert["labels"]["stage"] == "live-test"
    assert re.fullmatch(r"[0-9.]+% of requests to otel-monitor-app fail with 5xx", alert["annotations"]["summary"])
    assert alert["annotations"]["runbook"]
    assert alert["generatorURL"].startswith(prometheus.base + "/")
