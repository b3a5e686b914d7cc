"""The otel-monitor command: run (auto-instrumentation), demo and doctor.

Servers and receivers run on 127.0.0.1 only; every subprocess has a timeout and is stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from otel_monitor.cli import commands as cli
from otel_monitor.cli._autoinstrument import DIRECTORY
from otel_monitor.cli.doctor import (
    check_metric_names,
    parse_exposition,
    promql_metric_names,
    promql_selectors,
    rules_expressions,
)

from .conftest import HANG_S, ROOT, free_port, stop_process, wait_for_log, wait_for_port
from .test_integration_core import fetch, scrape_until

BIN = Path(sys.executable).parent
APPS = ROOT / "tests" / "cli_apps"
SPAN_LINE = re.compile(r"Name\s+: GET /hello/<name>")


@pytest.fixture
def no_exec(monkeypatch):
    """In-process ``run``: record what would be exec'd instead of replacing the test process."""
    calls = []

    def fake_execvpe(file, args, env):
        calls.append((file, list(args), dict(env)))
        raise SystemExit("exec recorded")

    monkeypatch.setattr(os, "execvpe", fake_execvpe)
    return calls


@pytest.fixture
def started(tmp_path):
    """start(argv, env, name) -> (proc, log path); everything started is stopped afterwards."""
    procs = []

    def start(argv: list[str], env: dict | None = None, name: str = "proc", cwd: Path = ROOT):
        log_path = tmp_path / f"{name}.log"
        log = open(log_path, "w")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(
            argv, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=str(cwd), start_new_session=True
        )
        procs.append(proc)
        return proc, log_path

    yield start
    for proc in procs:
        stop_process(proc)


def otel_monitor_run(*options: str) -> list[str]:
    return [sys.executable, "-m", "otel_monitor", "run", *options, "--"]


def settled_metrics(url: str, route: str, expected: float, timeout: float = HANG_S) -> str:
    """/metrics once the count for ``route`` reaches ``expected`` (or the last body after ``timeout``)."""
    return scrape_until(url, lambda body: request_count(body, route) >= expected, timeout)


def request_count(metrics_text: str, route: str, status: str = "200") -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if (
            line.startswith("http_server_request_duration_seconds_count{")
            and f'http_route="{route}"' in line
            and f'http_response_status_code="{status}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def drive(base: str, n: int) -> None:
    for i in range(n):
        status, _, _ = fetch(f"{base}/hello/n{i}")
        assert status == 200
    assert fetch(base + "/fail")[0] == 500


# -- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["doctor"]])
def test_help_of_each_command_explains_itself_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    example_prefix = "otel-monitor " + (command[0] if command else "")
    assert re.search(r"^\s+" + re.escape(example_prefix), out, re.M), out


def test_without_a_command_prints_usage_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "run" in capsys.readouterr().err


# -- run: the command line and the environment it hands on --------------------------------------


def test_run_passes_options_as_the_settings_environment_variables(no_exec, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    with pytest.raises(SystemExit, match="exec recorded"):
        cli.main(
            [
                "run",
                "--service-name",
                "shop",
                "--otlp-endpoint",
                "http://127.0.0.1:4318",
                "--exporter",
                "otlp",
                "--sampler-ratio",
                "0.25",
                "--set",
                "metric_export_interval=500",
                "--set",
                "OTEL_MONITOR_METRICS_PATH=/internal/metrics",
                "--",
                "gunicorn",
                "-w",
                "2",
                "app:app",
            ]
        )
    file, args, env = no_exec[0]
    assert (file, args) == ("gunicorn", ["gunicorn", "-w", "2", "app:app"])
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert env["OTEL_TRACES_EXPORTER"] == env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio" and env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "500"
    assert env["OTEL_MONITOR_METRICS_PATH"] == "/internal/metrics"
    assert env["OTEL_MONITOR_AUTOINSTRUMENT"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep) == [DIRECTORY, "/somewhere/else"]


def test_run_declares_the_process_group_as_its_own_pid_which_the_execd_server_keeps(no_exec, monkeypatch):
    monkeypatch.delenv("OTEL_MONITOR_PROCESS_GROUP", raising=False)
    with pytest.raises(SystemExit, match="exec recorded"):
        cli.main(["run", "--", "uwsgi", "--master", "--processes", "2"])
    assert no_exec[0][2]["OTEL_MONITOR_PROCESS_GROUP"] == str(os.getpid())


def test_run_keeps_a_process_group_the_user_declared(no_exec, monkeypatch):
    monkeypatch.setenv("OTEL_MONITOR_PROCESS_GROUP", "4242")
    with pytest.raises(SystemExit, match="exec recorded"):
        cli.main(["run", "--", "gunicorn", "app:app"])
    assert no_exec[0][2]["OTEL_MONITOR_PROCESS_GROUP"] == "4242"


def test_sampler_ratio_keeps_an_explicit_sampler(no_exec, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    with pytest.raises(SystemExit):
        cli.main(["run", "--sampler-ratio", "0.5", "flask", "run"])  # without "--" works too
    file, args, env = no_exec[0]
    assert args == ["flask", "run"]
    assert env["OTEL_TRACES_SAMPLER"] == "traceidratio" and env["OTEL_TRACES_SAMPLER_ARG"] == "0.5"


@pytest.mark.parametrize(
    "argv, named",
    [
        (["run", "--sampler-ratio", "2", "--", "flask", "run"], "traces_sampler_arg"),
        (["run", "--set", "metrics_path=metrics", "--", "flask", "run"], "metrics_path"),
        (["run", "--set", "no_such_setting=1", "--", "flask", "run"], "no_such_setting"),
        (["run", "--set", "novalue", "--", "flask", "run"], "NAME=VALUE"),
        (["run", "--service-name", "x"], "no command"),
    ],
)
def test_run_refuses_bad_options_before_starting_anything(argv, named, no_exec, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert named in capsys.readouterr().err
    assert no_exec == []


def test_run_refuses_a_bad_environment_variable_naming_it(no_exec, monkeypatch, capsys):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "2")
    assert cli.main(["run", "--", "flask", "run"]) == 2
    err = capsys.readouterr().err
    assert "traces_sampler_arg" in err and "OTEL_TRACES_SAMPLER_ARG" in err
    assert no_exec == []


def test_run_reports_a_missing_command(capsys):
    assert cli.main(["run", "-q", "--", "otel-monitor-test-no-such-command"]) == 127
    assert "otel-monitor-test-no-such-command" in capsys.readouterr().err


# -- run: the sitecustomize hook in a real interpreter ----------------------------------------------

HOOK_SCRIPT = textwrap.dedent("""
    import json, os, sys, threading
    sys.path.insert(0, {apps!r})
    import flask
    from hello_app import app            # sets app.config after construction (HELLO_METRICS_PATH)
    before = sorted(app.extensions)
    client = app.test_client()
    barrier = threading.Barrier(8)
    statuses = []

    def first_request():
        barrier.wait(60)
        statuses.append(client.get("/hello/x", buffered=True).status_code)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    metrics = client.get("/internal/metrics", buffered=True)
    count = sum(float(l.rsplit(" ", 1)[1]) for l in metrics.get_data(as_text=True).splitlines()
                if l.startswith("http_server_request_duration_seconds_count{{"))
    import sitecustomize
    print(json.dumps({{"before": before, "statuses": statuses, "metrics_status": metrics.status_code,
                      "count": count, "status": app.extensions.get("otel_monitor.autoinstrument"),
                      "patched": hasattr(flask.Flask.__call__, "__wrapped__"),
                      "chained": os.environ.get("CHAINED_SITECUSTOMIZE"),
                      "sitecustomize_marker": getattr(sitecustomize, "MARKER", None)}}))
""")


def test_hook_monitors_from_the_first_request_honours_late_config_and_chains_sitecustomize(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['CHAINED_SITECUSTOMIZE'] = 'ran'\nMARKER = 42\n")
    env = {**os.environ, "PYTHONPATH": str(theirs), "HELLO_METRICS_PATH": "/internal/metrics"}
    result = subprocess.run(
        [*otel_monitor_run(), sys.executable, "-c", HOOK_SCRIPT.format(apps=str(APPS))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["before"] == []  # nothing attached at construction: app.config can still change
    assert data["statuses"] == [200] * 8
    assert data["metrics_status"] == 200  # the path set in app.config after Flask(...) is honoured
    assert data["count"] == 8  # concurrent first requests: one monitor, every request recorded
    assert data["status"] == "attached" and data["patched"]
    assert data["chained"] == "ran" and data["sitecustomize_marker"] == 42
    assert "monitoring Flask app 'hello_app'" in result.stderr


def test_hook_does_nothing_without_the_flag(tmp_path):
    script = (
        f"import sys; sys.path.insert(0, {str(APPS)!r})\nimport flask\nfrom hello_app import app\n"
        "app.test_client().get('/hello/x', buffered=True)\n"
        "print('otel_monitor' in app.extensions, hasattr(flask.Flask.__call__, '__wrapped__'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_MONITOR_AUTOINSTRUMENT")}
    env["PYTHONPATH"] = DIRECTORY
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["False", "False"]


# -- run: real servers exporting to a real OTLP receiver ---------------------------------------------


def _rotel_options(rotel, service: str) -> list[str]:
    return [
        "--service-name",
        service,
        "--otlp-endpoint",
        f"http://127.0.0.1:{rotel['http']}",
        "--set",
        "metric_export_interval=500",
        "--set",
        "system_metrics=false",
    ]


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_run_flask_run(rotel, started):
    port = free_port()
    argv = [
        *otel_monitor_run(*_rotel_options(rotel, "cli-flask-run")),
        str(BIN / "flask"),
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc, log = started(argv, {"FLASK_APP": str(APPS / "hello_app.py")}, "flask-run")
    wait_for_port(port, proc=proc)
    base = f"http://127.0.0.1:{port}"
    drive(base, 3)
    body = settled_metrics(base + "/metrics", "/hello/<name>", 3)
    assert request_count(body, "/hello/<name>") == 3, body[:2000]
    wait_for_log(
        rotel["log"],
        [
            r"service\.name: Str\(cli-flask-run\)",
            SPAN_LINE.pattern,
            r"Name\s+: GET /fail",
            r"Name: http\.server\.request\.duration",
        ],
    )
    assert "monitoring Flask app 'hello_app'" in log.read_text()


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_run_waitress_serve(rotel, started):
    # waitress: a threaded pure-Python server, the usual choice on Windows; one process, many threads.
    port = free_port()
    argv = [
        *otel_monitor_run(*_rotel_options(rotel, "cli-waitress")),
        str(BIN / "waitress-serve"),
        f"--listen=127.0.0.1:{port}",
        "--threads=4",
        "hello_app:app",
    ]
    proc, log = started(argv, name="waitress", cwd=APPS)
    wait_for_port(port, proc=proc)
    base = f"http://127.0.0.1:{port}"
    drive(base, 5)
    body = settled_metrics(base + "/metrics", "/hello/<name>", 5)
    assert request_count(body, "/hello/<name>") == 5, body[:2000]
    assert request_count(body, "/hello/<name>", status="500") == 0
    wait_for_log(rotel["log"], [r"service\.name: Str\(cli-waitress\)", SPAN_LINE.pattern, r"Name\s+: GET /fail"])
    assert "monitoring Flask app 'hello_app'" in log.read_text()


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_run_gunicorn_with_two_workers(rotel, started):
    port = free_port()
    argv = [
        *otel_monitor_run(*_rotel_options(rotel, "cli-gunicorn")),
        str(BIN / "gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--chdir",
        str(APPS),
        "hello_app:app",
    ]
    proc, log = started(argv, name="gunicorn")
    wait_for_port(port, proc=proc)
    base = f"http://127.0.0.1:{port}"
    drive(base, 10)
    # other workers' numbers reach /metrics within ~0.5 s (see otel_monitor.metrics.multiprocess)
    body = settled_metrics(base + "/metrics", "/hello/<name>", 10)
    assert request_count(body, "/hello/<name>") == 10, body[:2000]
    wait_for_log(
        rotel["log"],
        [r"service\.name: Str\(cli-gunicorn\)", SPAN_LINE.pattern, r"Name: http\.server\.request\.duration"],
    )
    text = log.read_text()
    assert "monitoring Flask app 'hello_app'" in text
    workers = set(re.findall(r"monitoring Flask app 'hello_app' \(pid (\d+)\)", text))
    assert str(proc.pid) not in workers  # attached in the workers, not in the master


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.parametrize("self_monitored", [False, True], ids=["plain", "app-calls-Monitor"])
def test_run_python_app_py_exactly_one_span_per_request(rotel, started, self_monitored):
    port = free_port()
    service = "cli-python-" + ("self" if self_monitored else "plain")
    env = {"HELLO_PORT": str(port), "HELLO_SELF_MONITOR": "1" if self_monitored else "0"}
    metrics_path = "/metrics" if self_monitored else "/internal/metrics"
    if not self_monitored:
        env["HELLO_METRICS_PATH"] = metrics_path  # app.config after construction, honoured
    argv = [*otel_monitor_run(*_rotel_options(rotel, service)), sys.executable, str(APPS / "hello_app.py")]
    proc, log = started(argv, env, "python-app")
    wait_for_port(port, proc=proc)
    base = f"http://127.0.0.1:{port}"
    n = 5
    drive(base, n)
    body = settled_metrics(base + metrics_path, "/hello/<name>", n)
    time.sleep(0.3)  # a second middleware would record each request a second time by now
    status, body, _ = fetch(base + metrics_path)
    assert status == 200
    assert request_count(body, "/hello/<name>") == n, body[:2000]  # not 2n: one middleware only
    wait_for_log(rotel["log"], [rf"service\.name: Str\({service}\)"] + [SPAN_LINE.pattern] * 1)
    deadline = time.monotonic() + HANG_S
    while len(SPAN_LINE.findall(rotel["log"].read_text())) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # the span batch interval is 1 s: a duplicate would have arrived by now (a busy machine: later)
    assert len(SPAN_LINE.findall(rotel["log"].read_text())) == n
    attached = "monitoring Flask app 'hello_app'" in log.read_text()
    assert attached is (not self_monitored)


# -- doctor ----------------------------------------------------------------------------------------------


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_doctor_good_config_passes(listener, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # collector-config/ of the checkout
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{listener}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=supersecret")
    code = cli.main(["doctor", "--all", "--service-name", "shop"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("all checks passed")
    assert re.search(r"^\s+service_name\s+shop\s+argument$", out, re.M)
    assert re.search(
        r"^\s+otlp_endpoint\s+http://127\.0\.0\.1:\d+\s+environment variable OTEL_EXPORTER_OTLP_ENDPOINT$", out, re.M
    )
    assert re.search(r"^\s+metrics_path\s+/metrics\s+default$", out, re.M)
    assert "supersecret" not in out and "api-key=***" in out
    assert f"http://127.0.0.1:{listener}/v1/traces" in out and "accepts TCP connections" in out
    if (ROOT / "collector-config" / "alert-rules.yml").exists():
        assert "collector-config/alert-rules.yml" in out


def test_doctor_lists_only_the_settings_that_differ_from_the_defaults_and_all_with_a_flag(
    monkeypatch, capsys, tmp_path
):
    from otel_monitor.settings import FIELDS

    monkeypatch.chdir(tmp_path)  # no collector-config/ here, as for an installed package
    monkeypatch.setenv("OTEL_MONITOR_METRICS_PATH", "/internal/metrics")
    assert cli.main(["doctor", "--skip-metrics-check", "--set", "analytics_slow_ms=250"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^  (\w+)  ", out.split("Checks")[0], re.M)
    assert rows == ["SETTING", "service_name", "metrics_path", "analytics_slow_ms"], rows
    assert f"2 of {len(FIELDS)} differ from the defaults (--all lists every one" in out
    assert cli.main(["doctor", "--skip-metrics-check", "--all"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^  (\w+)  ", out.split("Checks")[0], re.M)) == len(FIELDS) + 1
    assert re.search(r"^\s+metrics_path\s+/internal/metrics\s+environment variable", out, re.M)


def test_doctor_outside_a_checkout_says_nothing_of_collector_config_files(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # what a wheel user has: no collector-config/
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "collector-config" not in out and "dashboard and alert-rule metric names" not in out, out
    assert cli.main(["doctor", "--stack-dir", str(tmp_path)]) == 0  # asked for: then it says what is missing
    assert "no collector-config/grafana/dashboards/*.json" in capsys.readouterr().out


def test_doctor_unreachable_endpoint_fails_naming_it(monkeypatch, capsys, tmp_path):
    port = free_port()
    monkeypatch.chdir(tmp_path)
    code = cli.main(["doctor", "--otlp-endpoint", f"http://127.0.0.1:{port}", "--protocol", "grpc"])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(rf"FAIL\s+OTLP traces endpoint http://127\.0\.0\.1:{port} \(grpc\): cannot connect", out), out
    assert "problem(s) found" in out


def test_doctor_bad_variable_exits_2_naming_the_setting(monkeypatch, capsys):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "2")
    assert cli.main(["doctor", "--skip-metrics-check"]) == 2
    err = capsys.readouterr().err
    assert "traces_sampler_arg" in err and "OTEL_TRACES_SAMPLER_ARG" in err


def test_doctor_reads_app_config_of_the_app(tmp_path, monkeypatch, capsys):
    (tmp_path / "configured_app.py").write_text(
        textwrap.dedent("""
        from flask import Flask
        app = Flask("configured_app")
        app.config["OTEL_MONITOR_METRICS_PATH"] = "/internal/metrics"
        app.config["OTEL_MONITOR_METRICS_TOKEN"] = "tok-secret"
    """)
    )
    monkeypatch.chdir(tmp_path)
    assert cli.main(["doctor", "--app", "configured_app.py:app", "--skip-metrics-check"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+metrics_path\s+/internal/metrics\s+app\.config\['OTEL_MONITOR_METRICS_PATH'\]$", out, re.M)
    assert re.search(r"^\s+service_name\s+configured_app\s+default$", out, re.M)
    assert "tok-secret" not in out


def test_doctor_app_with_its_own_monitor_shows_its_arguments_and_exports_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "own_monitor_app.py").write_text(
        textwrap.dedent("""
        from flask import Flask
        from otel_monitor import Monitor
        app = Flask("own_monitor_app")
        monitor = Monitor(app, metrics_path="/m")
    """)
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert (
        cli.main(["doctor", "--all", "--app", "own_monitor_app.py:app", "--skip-metrics-check"]) == 1
    )  # endpoint down
    out = capsys.readouterr().out
    assert re.search(r"^\s+metrics_path\s+/m\s+argument$", out, re.M)
    assert re.search(r"^\s+sdk_disabled\s+false\s+default$", out, re.M)
    assert sys.modules["own_monitor_app"].monitor.enabled is False  # loaded without a pipeline
    assert os.environ.get("OTEL_SDK_DISABLED") is None


def test_doctor_reports_dashboard_metrics_that_are_not_served(tmp_path, monkeypatch, capsys):
    dashboards = tmp_path / "collector-config" / "grafana" / "dashboards"
    dashboards.mkdir(parents=True)
    (dashboards / "mine.json").write_text(
        json.dumps(
            {
                "panels": [
                    {
                        "title": "ok",
                        "targets": [
                            {
                                "expr": "sum by (http_route) (rate(http_server_request_duration_seconds_count"
                                '{job=~"$job"}[$__rate_interval]))'
                            }
                        ],
                    },
                    {"title": "old name", "targets": [{"expr": "rate(http_requests_total[5m])"}]},
                    {"title": "typo label", "targets": [{"expr": 'http_server_active_requests{http_method="GET"}'}]},
                    {"title": "histogram", "targets": [{"expr": "http_server_request_duration_seconds"}]},
                ]
            }
        )
    )
    (tmp_path / "collector-config" / "alert-rules.yml").write_text(
        textwrap.dedent("""
        groups:
          - name: g
            rules:
              - record: job:requests:rate5m
                expr: sum by (job) (rate(http_server_request_duration_seconds_count[5m]))
              - alert: Busy
                expr: |
                  job:requests:rate5m > 100
                  and on (job) up == 1
              - alert: Memory
                expr: 'system_memory_utilization{system_memory_state="usedd"} > 0.8'
    """)
    )
    code = cli.main(["doctor", "--stack-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "metric http_requests_total is not served" in out
    assert "metric http_server_active_requests has no label http_method (did you mean http_request_method?)" in out
    assert "query http_server_request_duration_seconds_bucket" in out
    assert "never has system_memory_state='usedd'" in out
    assert "job:requests:rate5m" not in out and " up " not in out  # recording rules and up are not app metrics
    assert out.count("FAIL") == 4


def test_promql_helpers():
    assert promql_metric_names('sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval] offset 1h))') == {"a_bucket"}
    assert promql_metric_names("x / on (instance) group_left (pid) y > 1e3 and z unless bool_metric") == {
        "x",
        "y",
        "z",
        "bool_metric",
    }
    assert promql_metric_names('{__name__="named"}') == {"named"}
    assert promql_selectors('a{l="}", m=~"x"}') == [("a", [("l", "=", "}"), ("m", "=~", "x")])]
    served = parse_exposition('# TYPE c counter\nc_total{k="v"} 1\n# TYPE h histogram\nh_count 2\n')
    assert check_metric_names([("q", "c_total{k='v'} + h_count")], served, set()) == []
    assert check_metric_names([("q", "c")], served, set()) == [
        "q: metric c is not served on /metrics (a counter: query c_total)"
    ]


def test_rules_file_parsing_without_pyyaml(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(
        'groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: "sum(x)"  \n'
        "  - alert: A\n    expr: >-\n      a:b\n      > 1\n    for: 1m\n"
    )
    exprs, recorded = rules_expressions(path)
    assert recorded == {"a:b"}
    assert exprs == [("record a:b", "sum(x)"), ("alert A", "a:b > 1")]


# -- demo ---------------------------------------------------------------------------------------------


def _wait_for_url(log: Path, proc: subprocess.Popen, timeout: float = HANG_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"^metrics:\s+(http://127\.0\.0\.1:\d+/\S*)", log.read_text(), re.M)
        if match:
            return match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"the demo printed no metrics URL:\n{log.read_text()[-3000:]}")


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_demo_serves_traffic_and_stops_by_itself_after_its_duration(started):
    proc, log = started(
        [str(BIN / "otel-monitor"), "demo", "--port", "0", "--duration", "8", "--traffic", "2"], name="demo"
    )
    metrics_url = _wait_for_url(log, proc)
    # The traffic starts after the URL is printed; the demo serves 8 s from then.
    assert "http_server_request_duration_seconds" in scrape_until(
        metrics_url, "http_server_request_duration_seconds", timeout=7
    )
    assert proc.wait(timeout=HANG_S) == 0  # by itself: nobody signals it
    text = log.read_text()
    assert "examples/app.py" in text and "stopped." in text
    assert re.search(r"traffic: done, [1-9]\d* requests sent", text)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_demo_outside_a_checkout_serves_the_example_app_and_stops_on_sigterm(started, tmp_path):
    proc, log = started(
        [str(BIN / "otel-monitor"), "demo", "--port", "0", "--traffic", "0"], name="demo-elsewhere", cwd=tmp_path
    )
    metrics_url = _wait_for_url(log, proc)
    base = metrics_url.rsplit("/", 1)[0]
    assert fetch(base + "/api/users/3")[0] == 200
    assert 'http_route="/api/users/<int:user_id>"' in scrape_until(metrics_url, 'http_route="/api/users/<int:user_id>"')
    dashboard = re.search(r"^dashboard:\s+(http://127\.0\.0\.1:\d+/\S+)", log.read_text(), re.M)
    if dashboard:  # printed when the analytics are on: the token in the URL logs the browser in
        import http.cookiejar
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(dashboard.group(1), timeout=10) as response:
            assert response.status == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_S) == 0
    text = log.read_text()
    assert "examples/app.py" in text and "stopped." in text


@pytest.mark.integration
@pytest.mark.timeout(200)
def test_the_quick_demo_tells_its_story_healthy_deploy_incident_alert_recovery(started):
    import json
    import urllib.request

    proc, log = started(
        [str(BIN / "otel-monitor"), "demo", "--port", "0", "--quick", "--duration", "120"], name="demo-story"
    )
    _wait_for_url(log, proc)
    api = re.search(r"^analytics:\s+(http://\S+)/performance\?token=(\S+)", log.read_text(), re.M)
    assert api, log.read_text()  # the URLs carry the token the demo chose

    def get(path: str) -> dict:
        request = urllib.request.Request(api.group(1) + path, headers={"Authorization": f"Bearer {api.group(2)}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # a demo busy with its incident answers late
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # /health answers 503 when unhealthy, with its body
            return json.loads(exc.read())

    # First sight: no alarm of the demo's own making (its errors start with the incident).
    first = {c["name"]: c["status"] for c in get("/health")["checks"]}
    assert first["error_rate_pct"] == "ok", first
    seen: list[str] = []
    error_rate_failed = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and seen[-1:] != ["resolved"]:
        [alert] = [a for a in get("/alerts")["alerts"] if a["name"].startswith("demo:")]
        state = alert["state"]
        status = "resolved" if state["resolved_at"] and state["status"] == "inactive" else state["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        checks = {c["name"]: c["status"] for c in get("/health")["checks"]}
        error_rate_failed |= checks["error_rate_pct"] == "fail"
        time.sleep(0.5)
    assert "firing" in seen and seen[-1] == "resolved", seen
    assert error_rate_failed  # the health said why during the incident
    # Version 1.0, then 2.0 (deployed), both in the Versions view; the incident's orders are slower.
    versions = get("/versions?window=1h")
    assert [v["version"] for v in versions["versions"]] == ["1.0", "2.0"], versions["versions"]
    assert versions["current"] == "2.0"
    # An order during the incident: its trace holds the outgoing inventory call and the database insert.
    listed = [t["trace_id"] for t in get("/traces?kind=slow")["traces"] if t["route"] == "/api/orders"]
    # the list is the analytics' tick's (up to 10 s old): a tree kept then may have been evicted since (404)
    trees = [tree for tree in (get(f"/traces/{trace_id}") for trace_id in listed) if "spans" in tree]
    assert trees, f"no slow order kept: {listed}"
    # (an order of an out-of-stock product fails after the inventory call, with no insert)
    names = [[s["name"] for s in tree["spans"]] for tree in trees]
    assert ["POST /api/orders", "GET", "INSERT orders"] in [[n[0], *sorted(n[1:])] for n in names], names
    text = log.read_text()
    for note in ("version 1.0 serves healthy traffic", "version 2.0 deployed", "incident:", "recovery:"):
        assert f"story: {note}" in text, text[-2000:]
