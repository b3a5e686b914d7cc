"""The deployment stack's configuration, checked by the real tools that will load it.

docker-compose.yml: Debian's docker-compose 1.29 (`config -q`) and check-jsonschema's vendored
compose-spec schema. Prometheus: `promtool check config`, `check rules`, `test rules`.
Alertmanager: `amtool check-config` and `amtool config routes test`. The collector config, the
Grafana provisioning and the dashboard are parsed and checked for what the stack relies on, and
every PromQL expression (dashboard, alert rules, data-source links) may use only metric names
that otel_monitor serves.

A test skips, saying what to install, only when its tool is missing; CI installs them all
(apt: prometheus prometheus-alertmanager docker-compose; pip: the `test` extra).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed: pip install pyyaml")

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "collector-config"
COMPOSE = REPO / "docker-compose.yml"
DASHBOARD = CONFIG / "grafana" / "dashboards" / "otel-monitor.json"
DATASOURCES = CONFIG / "grafana" / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS = CONFIG / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"

# Variables docker-compose.yml requires (no default credential anywhere).
REQUIRED_ENV = ("MONITORING_USERNAME", "MONITORING_PASSWORD", "GRAFANA_ADMIN_PASSWORD")

# What otel_monitor serves on /metrics (OTel Prometheus exporter naming, with the renames of
# otel_monitor.metrics.exposition.PROMETHEUS_RENAMES), plus Prometheus' own `up`. tests/test_stack_live.py
# checks against the running example app that the queries built on these names return data.
HISTOGRAMS = (
    "http_server_request_duration_seconds",
    "http_server_request_body_size_bytes",
    "http_server_response_body_size_bytes",
)
KNOWN_METRICS = frozenset(
    [f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")]
    + [
        "http_server_active_requests",
        "system_cpu_utilization",
        "system_cpu_logical_cpus",  # system.cpu.logical.count, likewise
        "system_memory_usage_bytes",
        "system_memory_limit_bytes",
        "system_memory_utilization",
        "system_filesystem_usage_bytes",
        "system_filesystem_utilization",
        "system_network_io_bytes_total",
        "system_network_packet_count_total",
        "process_cpu_utilization",
        "process_memory_usage_bytes",
        "process_memory_virtual_bytes",
        "process_threads",  # process.thread.count, renamed for Prometheus by otel_monitor
        "process_open_fds",  # process.unix.file_descriptor.count, likewise
        "process_uptime_seconds",
        "process_start_time_seconds",
        "target_info",
        "up",
    ]
)


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def require(binary: str, install: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed ({install})")
    return path


def run(args: list[str], cwd: Path = REPO, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def compose_env(**overrides: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED_ENV and k != "GRAFANA_ADMIN_USER"}
    env.update({name: f"test-{name.lower()}" for name in REQUIRED_ENV})
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# -- PromQL: the metric names an expression reads ------------------------------------------------

_PROMQL_WORDS = frozenset(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio "
    "by without on ignoring group_left group_right and or unless bool offset atan2 inf nan".split()
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (a lexical scan, enough for our own expressions)."""
    text = expr.replace("$$", "$")
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)  # string literals
    names = set(re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", text))
    text = re.sub(r"label_values\([^)]*\)", " ", text)
    text = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+", " ", text)  # Grafana variables
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for word in re.findall(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()", text):
        if word.lower() not in _PROMQL_WORDS:
            names.add(word)
    return names


def test_promql_metric_names_scanner():
    expr = (
        "histogram_quantile(0.95, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket"
        '{job=~"$job", http_route=~"$route"}[$__rate_interval]))) > 0.1 and on (job) up == 0 '
        'unless label_values(target_info{a="b", $$__tags}, service_name) or ${job:regex}'
    )
    assert promql_metric_names(expr) == {"http_server_request_duration_seconds_bucket", "up", "target_info"}


# -- expressions of the stack ---------------------------------------------------------------------


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(CONFIG / "alert-rules.yml")["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    with open(DASHBOARD, encoding="utf-8") as fh:
        return json.load(fh)


def dashboard_panels() -> list[dict]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and every query variable of the dashboard."""
    found = []
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"variable ${variable['name']}", query["query"] if isinstance(query, dict) else query))
    return found


def datasource_expressions() -> list[tuple[str, str]]:
    found = []
    for source in load_yaml(DATASOURCES)["datasources"]:
        for query in source.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
            found.append((f"data source {source['name']} query {query['name']!r}", query["query"]))
    return found


# -- docker-compose.yml ----------------------------------------------------------------------------


def compose() -> dict:
    return load_yaml(COMPOSE)


def test_compose_passes_docker_compose_config():
    binary = require("docker-compose", "apt-get install docker-compose")
    result = run([binary, "-f", str(COMPOSE), "config", "-q"], env=compose_env())
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("variable", REQUIRED_ENV)
def test_compose_refuses_to_run_without_each_credential(variable):
    binary = require("docker-compose", "apt-get install docker-compose")
    result = run([binary, "-f", str(COMPOSE), "config", "-q"], env=compose_env(**{variable: None}))
    assert result.returncode != 0
    assert variable in result.stderr


def test_compose_passes_the_compose_spec_schema():
    exe = Path(sys.executable).with_name("check-jsonschema")
    binary = str(exe) if exe.exists() else require("check-jsonschema", "pip install check-jsonschema")
    result = run([binary, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_images_are_pinned():
    services = compose()["services"]
    assert {"app", "otel-collector", "jaeger", "tempo", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, service in services.items():
        if "build" in service and name == "app":
            continue
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: image {image!r} is not pinned"


def test_compose_app_service():
    app = compose()["services"]["app"]
    assert app["build"] == "."
    assert "8000:8000" in app["ports"]
    env = app["environment"]
    assert env["OTEL_SERVICE_NAME"] == "otel-monitor-example"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    for name in ("MONITORING_USERNAME", "MONITORING_PASSWORD"):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", env[name]), f"{name} must be a required variable"


def test_compose_has_no_default_credentials():
    text = COMPOSE.read_text(encoding="utf-8")
    for match in re.finditer(r"\$\{(\w*(PASSWORD|TOKEN|SECRET)\w*)([^}]*)\}", text):
        assert match.group(3).startswith(":?"), f"${{{match.group(1)}}} must be required, not defaulted"
    grafana = compose()["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_compose_wiring():
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    assert "9090" in " ".join(prometheus["ports"])
    assert any("alert-rules.yml" in v for v in prometheus["volumes"])
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert any(v.endswith("/etc/alertmanager/secrets:ro") for v in services["alertmanager"]["volumes"])
    assert any("/etc/grafana/provisioning" in v for v in services["grafana"]["volumes"])
    # Health checks where the image has a tool for them (the collector and Tempo images have none).
    for name in ("jaeger", "prometheus", "alertmanager", "grafana"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on undefined {dependency}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health check"
    # Every file the stack mounts is in the repository; named volumes are declared.
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./collector-config"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            elif not source.startswith("."):
                assert source in compose()["volumes"], f"{name} uses undeclared volume {source}"
    # Only the app is published on all interfaces; the admin UIs have no login or weak ones.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert name == "app" or port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


# -- Dockerfile ------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    kinds = [kind for kind, _ in instructions]
    cmd = json.loads(dict(instructions)["CMD"])
    assert cmd == ["python", "examples/app.py", "--host", "0.0.0.0", "--port", "8000"]
    user = [arg for kind, arg in instructions if kind == "USER"]
    assert user and user[-1] not in ("root", "0"), "the app must not run as root"
    assert kinds.index("USER") < kinds.index("CMD")
    healthcheck = dict(instructions)["HEALTHCHECK"]
    assert "urllib.request" in healthcheck and "http://127.0.0.1:8000/metrics" in healthcheck
    assert any(kind == "RUN" and "pip install ." in arg for kind, arg in instructions)


def test_dockerfile_copies_only_what_exists_and_is_not_ignored():
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".git" in ignored and ".venv" in ignored and "secrets" in ignored
    for kind, arg in dockerfile_instructions():
        if kind == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
                assert source not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_docker_build_context_builds_the_package(tmp_path):
    """What the Dockerfile copies before `pip install .` is enough to build the package.

    No Docker engine here: the COPY sources go to a temporary directory and pip builds a wheel
    from it the way `pip install .` would (build isolation: setuptools comes from the index)."""
    context = tmp_path / "context"
    context.mkdir()
    for kind, arg in dockerfile_instructions():
        if kind == "RUN" and "pip install ." in arg:
            break
        if kind == "COPY":
            *sources, _ = arg.split()
            for source in sources:
                src = REPO / source
                if src.is_dir():
                    shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy(src, context / source)
    else:
        pytest.fail("the Dockerfile has no `RUN pip install .`")
    result = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(tmp_path / "wheels"),
            str(context),
        ],
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = next((tmp_path / "wheels").glob("otel_monitor-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "otel_monitor/__init__.py" in names
    # The dashboard's assets, its ES modules in static/js/ included (package-data is per folder).
    static = REPO / "otel_monitor" / "analytics" / "static"
    assets = {p.relative_to(REPO).as_posix() for p in static.rglob("*") if p.suffix in (".js", ".css", ".svg")}
    assert "otel_monitor/analytics/static/js/format.js" in assets
    assert assets <= names, sorted(assets - names)


def test_dockerfile_healthcheck_command_is_valid_python():
    healthcheck = dict(dockerfile_instructions())["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<HEALTHCHECK>", "exec")


# -- Prometheus ------------------------------------------------------------------------------------


def test_promtool_check_config():
    promtool = require("promtool", "apt-get install prometheus")
    # rule_files in prometheus.yml are relative to the file: run where it is.
    result = run([promtool, "check", "config", "prometheus.yml"], cwd=CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules():
    promtool = require("promtool", "apt-get install prometheus")
    result = run([promtool, "check", "rules", "alert-rules.yml"], cwd=CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules():
    promtool = require("promtool", "apt-get install prometheus")
    result = run([promtool, "test", "rules", "alert-rules.test.yml"], cwd=CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_scrape_and_alerting_targets():
    config = load_yaml(CONFIG / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["alert-rules.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]] for job in config["scrape_configs"]
    }
    assert targets["otel-monitor-app"] == ["app:8000"]
    assert "otel-collector:8889" in targets["otel-collector"]
    assert "otel-collector:8888" in targets["otel-collector-internal"]
    assert "localhost:9090" in targets["prometheus"]


def test_every_alert_has_a_unit_test_that_fires_and_one_that_stays_quiet():
    tests = load_yaml(CONFIG / "alert-rules.test.yml")["tests"]
    fired, quiet = set(), set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules() if "alert" in rule}
    assert alerts >= {
        "HighAverageLatency",
        "HighP95Latency",
        "HighErrorRate",
        "HighMemoryUtilization",
        "HighCpuUtilization",
        "TargetDown",
    }
    assert alerts <= fired, f"no firing test for {sorted(alerts - fired)}"
    assert alerts <= quiet, f"no quiet test for {sorted(alerts - quiet)}"


def test_alert_rules_are_documented():
    for rule in alert_rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule.get("for"), rule["alert"]
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key), f"{rule['alert']} lacks annotation {key}"
        assert "$value" in rule["annotations"]["description"] or rule["alert"] == "TargetDown", rule["alert"]


# -- Alertmanager ----------------------------------------------------------------------------------


def test_amtool_check_config():
    amtool = require("amtool", "apt-get install prometheus-alertmanager")
    result = run([amtool, "check-config", "alertmanager.yml"], cwd=CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    "labels, receivers",
    [
        (["alertname=HighErrorRate", "severity=critical"], "oncall-slack,oncall-email"),
        (["alertname=HighP95Latency", "severity=warning"], "team-slack"),
        (["alertname=Other", "severity=info"], "team-email"),
        (
            ["alertname=HighErrorRate", "severity=critical", "notify=webhook"],
            "automation-webhook,oncall-slack,oncall-email",
        ),
    ],
)
def test_alertmanager_routes(labels, receivers):
    amtool = require("amtool", "apt-get install prometheus-alertmanager")
    result = run(
        [
            amtool,
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            f"--verify.receivers={receivers}",
            *labels,
        ],
        cwd=CONFIG,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_keeps_secrets_out_of_the_file():
    config = load_yaml(CONFIG / "alertmanager.yml")

    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield f"{path}.{key}", key, value
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}[{i}]")

    secret_keys = {"api_url", "slack_api_url", "smtp_auth_password", "auth_password", "auth_secret", "password"}
    for where, key, _ in walk(config):
        assert key not in secret_keys, f"{where}: secrets go in *_file settings"
    assert config["global"]["slack_api_url_file"] == "/etc/alertmanager/secrets/slack_webhook_url"
    assert config["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    kinds = {kind for receiver in config["receivers"] for kind in receiver if kind.endswith("_configs")}
    assert {"slack_configs", "email_configs", "webhook_configs"} <= kinds
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert "alertname" in inhibit["equal"]


# -- OpenTelemetry Collector -----------------------------------------------------------------------


def test_collector_config_components_and_pipelines():
    config = load_yaml(CONFIG / "otel-collector.yaml")
    otlp = config["receivers"]["otlp"]["protocols"]
    assert otlp["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert otlp["http"]["endpoint"] == "0.0.0.0:4318"
    assert {"memory_limiter", "batch"} <= set(config["processors"])
    exporters = config["exporters"]
    assert exporters["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert exporters["otlp/jaeger"]["tls"]["insecure"] is True
    assert exporters["otlp/tempo"]["endpoint"] == "tempo:4317"
    assert exporters["prometheus"]["endpoint"] == "0.0.0.0:8889"
    assert exporters["prometheus"]["enable_open_metrics"] is True
    assert exporters["prometheus"]["resource_to_telemetry_conversion"]["enabled"] is True
    assert config["extensions"]["health_check"]["endpoint"].endswith(":13133")

    service = config["service"]
    assert set(service["extensions"]) <= set(config["extensions"])
    assert "health_check" in service["extensions"]
    pipelines = service["pipelines"]
    assert pipelines["traces"]["exporters"] == ["otlp/jaeger", "otlp/tempo"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"pipeline {name} uses undefined {kind[:-1]} {component}"
        # memory_limiter first, batch last: the order the collector docs recommend.
        assert pipeline["processors"][0] == "memory_limiter" and pipeline["processors"][-1] == "batch", name
    reader = service["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert (reader["host"], reader["port"]) == ("0.0.0.0", 8888)


def test_collector_tail_sampling_example_is_valid_yaml():
    text = (CONFIG / "otel-collector.yaml").read_text(encoding="utf-8")
    block = re.search(r"# --- tail_sampling example begin ---\n(.*?)# --- tail_sampling example end ---", text, re.S)
    assert block, "the commented tail_sampling example is missing"
    example = yaml.safe_load("\n".join(line[2:] for line in block.group(1).splitlines()))
    policies = {p["type"]: p for p in example["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] == 500
    assert policies["probabilistic"]["probabilistic"]["sampling_percentage"] == 10
    assert "loadbalancing:" in text and "routing_key: traceID" in text


# -- Tempo and Grafana -----------------------------------------------------------------------------


def test_tempo_config():
    config = load_yaml(CONFIG / "tempo.yaml")
    assert config["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert config["storage"]["trace"]["backend"] == "local"
    assert config["server"]["http_listen_port"] == 3200


def test_grafana_datasources_link_metrics_and_traces():
    sources = {s["uid"]: s for s in load_yaml(DATASOURCES)["datasources"]}
    assert {sources[uid]["type"] for uid in sources} == {"prometheus", "tempo", "jaeger"}
    prometheus = next(s for s in sources.values() if s["type"] == "prometheus")
    tempo = next(s for s in sources.values() if s["type"] == "tempo")
    destination = prometheus["jsonData"]["exemplarTraceIdDestinations"][0]
    assert destination["name"] == "trace_id" and destination["datasourceUid"] == tempo["uid"]
    assert tempo["jsonData"]["tracesToMetrics"]["datasourceUid"] == prometheus["uid"]
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == prometheus["uid"]
    providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"


def test_dashboard_panels_have_datasources_and_queries():
    board = dashboard()
    assert 38 <= board["schemaVersion"] <= 41
    known_uids = {s["uid"] for s in load_yaml(DATASOURCES)["datasources"]}
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"route", "instance"} <= variables
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    panels = [p for p in dashboard_panels() if p["type"] != "row"]
    for panel in panels:
        assert panel["datasource"]["uid"] in known_uids, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no queries"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] in known_uids, panel["title"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for needle in (
        "request rate",
        "error rate",
        "p50 / p95 / p99",
        "average latency",
        "active requests",
        "system cpu",
        "system memory",
        "disk",
        "network",
        "rss",
        "process cpu",
        "threads",
        "file descriptors",
    ):
        assert needle in titles, f"no panel for {needle}"
    latency = next(p for p in panels if "p95" in p["title"])
    assert any(t.get("exemplar") is True for t in latency["targets"])
    assert any("http_server_request_duration_seconds_bucket" in t["expr"] for t in latency["targets"])
    # No two panels overlap on the 24-column grid.
    cells = set()
    for panel in dashboard_panels():
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))


def test_every_promql_expression_uses_only_metrics_otel_monitor_serves():
    recorded = {rule["record"] for rule in alert_rules() if "record" in rule}
    expressions = (
        [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in alert_rules()]
        + dashboard_expressions()
        + datasource_expressions()
    )
    assert len(expressions) > 20
    for where, expr in expressions:
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        unknown = names - KNOWN_METRICS - recorded
        assert not unknown, f"{where} reads {sorted(unknown)}, which otel_monitor does not serve"
