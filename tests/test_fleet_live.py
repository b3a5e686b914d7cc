"""The fleet analytics (analytics_source=prometheus) against a real Prometheus and three real instances.

Three instances of examples/app.py run as separate processes on 127.0.0.1 (different ports, different
traffic); Debian's ``prometheus`` scrapes them every second under one job. Every instance reads its
analytics from that Prometheus, so any of them answers for the fleet. Checked here: the fleet's
totals, error rates, per-endpoint rows and per-instance rows equal what the instances' own
``/metrics`` say; ``/health`` stays the answering instance's unless ``scope=fleet``; and the
dashboard shows the fleet card in headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import HANG_S, free_port

yaml = pytest.importorskip("yaml", reason="PyYAML is needed: pip install pyyaml")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "app.py"
PREFIX = "/professional-analytics"
JOB = "fleet-shop"  # also the service name: the default selector is job="<service_name>"
TOKEN = "fleet-test-token-0123456789"
#: per instance: (method, path, times); every instance gets a different mix
TRAFFIC = (
    (("GET", "/api/users/1", 7), ("GET", "/api/error", 2)),
    (("GET", "/api/users", 4), ("GET", "/api/users/999", 3), ("GET", "/api/users/2", 1)),
    # no POST /api/orders: an order calls the instance's own inventory route (one more request)
    (("GET", "/api/users", 5), ("GET", "/api/error", 1), ("GET", "/", 2)),
)


#: per instance: its app version (the first and the last run the same one)
VERSIONS = ("fleet-1.0", "fleet-2.0", "fleet-1.0")


def request(url: str, method: str = "GET", token: str | None = TOKEN, timeout: float = 10) -> tuple[int, bytes]:
    data = b"{}" if method == "POST" else None
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def api(base: str, path: str) -> dict:
    status, body = request(base + PREFIX + path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, AssertionError) as exc:
            last = exc
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def own_metrics(base: str) -> dict:
    """One instance's request counts from its own /metrics: {(route, method, status, error): count}."""
    status, body = request(base + "/metrics", token=None)
    assert status == 200
    counts: dict = {}
    start = None
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "process_start_time_seconds":
            start = min(s.value for s in family.samples)
        if family.name != "http_server_request_duration_seconds":
            continue
        for s in family.samples:
            if s.name != "http_server_request_duration_seconds_count":
                continue
            route = s.labels.get("http_route", "")
            if route.startswith(PREFIX):
                continue
            labels = s.labels
            key = (
                route,
                labels["http_request_method"],
                labels.get("http_response_status_code", ""),
                labels.get("error_type", ""),
            )
            counts[key] = counts.get(key, 0) + int(s.value)
    return {"counts": counts, "start": start}


def totals(counts: dict) -> tuple[int, int]:
    requests = sum(counts.values())
    errors = sum(n for (route, method, status, error), n in counts.items() if error or status.startswith("5"))
    return requests, errors


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("fleet")
    ports = [free_port() for _ in TRAFFIC]
    prom_port = free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    processes = []
    try:
        with open(workdir / "prometheus.log", "wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        binary,
                        f"--config.file={workdir / 'prometheus.yml'}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MONITORING_"))}
        env.update(
            OTEL_SERVICE_NAME=JOB,
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_MONITOR_ANALYTICS_TOKEN=TOKEN,
            OTEL_MONITOR_ANALYTICS_SOURCE="prometheus",
            OTEL_MONITOR_ANALYTICS_PROMETHEUS_URL=prom_url,
            OTEL_MONITOR_DASHBOARD_REFRESH_S="2",
            OTEL_MONITOR_HEALTH_MIN_REQUESTS="5",  # the thresholds judge these few requests too
            PYTHONUNBUFFERED="1",
        )
        bases = []
        for i, port in enumerate(ports):
            with open(workdir / f"app-{port}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, str(APP), "--host", "127.0.0.1", "--port", str(port)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env={**env, "OTEL_MONITOR_SERVICE_VERSION": VERSIONS[i]},
                    )
                )
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            wait_for(lambda b=base: request(b + "/metrics", token=None)[0] == 200, HANG_S, f"{base}/metrics")
        wait_for(lambda: request(prom_url + "/-/ready", token=None)[0] == 200, HANG_S, "Prometheus ready")
        for base, mix in zip(bases, TRAFFIC, strict=True):
            for method, path, times in mix:
                for _ in range(times):
                    request(base + path, method, token=None)
        sent = [sum(times for _, _, times in mix) for mix in TRAFFIC]
        # A request is counted when its response is closed, just after the client has it.
        expected = wait_for(
            lambda: (e := [own_metrics(b) for b in bases]) and [totals(x["counts"])[0] for x in e] == sent and e,
            HANG_S,
            "every instance to count its requests",
        )
        # Settled: Prometheus's latest scrape of every instance holds all of its requests.
        total = sum(totals(e["counts"])[0] for e in expected)
        query = f'sum(http_server_request_duration_seconds_count{{job="{JOB}",http_route!~"{PREFIX}.*"}})'

        def scraped() -> bool:
            _, body = request(prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": query}), token=None)
            result = json.loads(body)["data"]["result"]
            return bool(result) and int(float(result[0]["value"][1])) == total

        wait_for(scraped, HANG_S, "Prometheus to scrape every request")
        yield {"bases": bases, "expected": expected, "prometheus": prom_url, "ports": ports, "apps": processes[1:]}
    finally:
        for process in reversed(processes):
            stop(process)


def test_the_instances_own_metrics_are_stable_and_differ(fleet):
    """Scrapes of /metrics are not requests of the app: the expected figures do not move."""
    again = [own_metrics(base) for base in fleet["bases"]]
    assert [e["counts"] for e in again] == [e["counts"] for e in fleet["expected"]]
    assert len({tuple(sorted(e["counts"].items())) for e in again}) == 3


def test_every_instance_answers_the_fleet_totals_since_start(fleet):
    requests = sum(totals(e["counts"])[0] for e in fleet["expected"])
    errors = sum(totals(e["counts"])[1] for e in fleet["expected"])
    for base in fleet["bases"]:
        performance = api(base, "/performance")
        everything = performance["windows"]["all"]
        assert everything["requests"] == requests == 25
        assert everything["errors"] == errors == 3
        assert everything["error_rate_pct"] == round(100.0 * errors / requests, 3)
        earliest = min(e["start"] for e in fleet["expected"])
        assert everything["covered_s"] == pytest.approx(performance["time"] - earliest, abs=0.01)
        assert everything["rps"] == round(requests / (performance["time"] - earliest), 3)


def test_endpoint_rows_are_the_sums_over_the_instances(fleet):
    expected: dict = {}
    codes: dict = {}
    for e in fleet["expected"]:
        for (route, method, status, _error), n in e["counts"].items():
            name = (route or "(unmatched)", method)
            expected[name] = expected.get(name, 0) + n
            codes.setdefault(name, {})
            codes[name][status] = codes[name].get(status, 0) + n
    body = api(fleet["bases"][1], "/endpoints?window=all")
    rows = {(r["route"], r["method"]): r for r in body["endpoints"]}
    assert {k: r["count"] for k, r in rows.items()} == expected
    assert {k: r["status_codes"] for k, r in rows.items()} == codes
    assert rows[("/api/error", "GET")]["errors"] == 3
    assert rows[("/api/error", "GET")]["error_rate_pct"] == 100.0


def test_per_instance_rows_equal_each_instances_own_metrics(fleet):
    body = api(fleet["bases"][2], "/instances?window=all")
    assert body["source"] == "prometheus"
    assert body["selector"] == f'job="{JOB}"'
    rows = {r["instance"]: r for r in body["instances"]}
    assert set(rows) == {f"127.0.0.1:{p}" for p in fleet["ports"]}
    for port, e in zip(fleet["ports"], fleet["expected"], strict=True):
        row = rows[f"127.0.0.1:{port}"]
        requests, errors = totals(e["counts"])
        assert row["up"] is True
        assert (row["requests"], row["errors"]) == (requests, errors)
        assert row["error_rate_pct"] == round(100.0 * errors / requests, 3)
        assert row["started"] == pytest.approx(e["start"])
        assert row["covered_s"] == pytest.approx(body["time"] - e["start"], abs=0.01)
        assert row["rps"] == round(requests / (body["time"] - e["start"]), 3)
    assert body["traces"]["scope"] == "local"


def test_recent_windows_count_every_request_exactly(fleet):
    """A window is now minus (now offset window): no extrapolation, and a series born in the
    window (its first request) counts whole, as in the in-process source."""
    body = api(fleet["bases"][0], "/performance")
    assert body["windows"]["5m"]["requests"] == body["windows"]["1m"]["requests"] == 25
    assert body["windows"]["5m"]["errors"] == 3
    assert body["windows"]["5m"]["window_available"] is False  # the instances are younger than 5 minutes
    rows = api(fleet["bases"][0], "/instances?window=5m")["instances"]
    assert sorted(r["requests"] for r in rows) == [8, 8, 9]


def test_health_is_the_local_instances_unless_the_fleet_is_asked_for(fleet):
    base = fleet["bases"][0]
    # 3 failures in 25 requests: unhealthy (503) is the right answer for both; the body is the same shape.
    status, body = request(base + PREFIX + "/health")
    local = json.loads(body)
    status_fleet, body = request(base + PREFIX + "/health?scope=fleet")
    fleet_health = json.loads(body)
    assert status_fleet == 503 and fleet_health["status"] == "unhealthy"
    assert [c["value"] for c in fleet_health["checks"] if c["name"] == "error_rate_pct"] == [12.0]
    assert status == 503  # instance 0 failed 2 of its 9
    assert [c["value"] for c in local["checks"] if c["name"] == "error_rate_pct"] == [round(200 / 9, 3)]
    assert local["system"]["process"]["workers"] == 1
    assert fleet_health["system"]["process"]["workers"] == 3
    assert [c["name"] for c in local["checks"]] == [c["name"] for c in fleet_health["checks"]]


def test_timeseries_and_export_answer_from_prometheus(fleet):
    series = api(fleet["bases"][0], "/timeseries?window=5m")
    assert series["source"] == "prometheus"
    assert series["step_s"] == 15
    assert series["points"] and all("rps" in p for p in series["points"])
    status, body = request(fleet["bases"][0] + PREFIX + "/export?format=json&window=all")
    assert status == 200
    exported = json.loads(body)
    assert sum(r["count"] for r in exported["endpoints"]) == 25


def test_versions_come_from_target_info_joined_to_the_request_histograms(fleet):
    per_version: dict[str, list[int]] = {}
    for version, e in zip(VERSIONS, fleet["expected"], strict=True):
        requests, errors = totals(e["counts"])
        entry = per_version.setdefault(version, [0, 0, 0])
        entry[0] += requests
        entry[1] += errors
        entry[2] += 1
    assert per_version == {"fleet-1.0": [17, 3, 2], "fleet-2.0": [8, 0, 1]}
    for base, window in zip(fleet["bases"], ("all", "1h", "15m"), strict=True):
        body = api(base, f"/versions?window={window}")
        assert body["source"] == "prometheus" and body["regressions"] == []
        found = {v["version"]: [v["requests"], v["errors"], v["targets"]] for v in body["versions"]}
        assert found == per_version
        assert all(v["p95_ms"] is not None and v["p95_ms"] > 0 for v in body["versions"])


def test_the_dashboard_shows_the_fleet_card_in_chromium(fleet, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH")
    base = fleet["bases"][1]
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        context.set_default_timeout(HANG_S * 1000)
        try:
            page = context.new_page()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            # /health answers 503 while the fleet is unhealthy (12 % errors): data, not a failure.
            page.on(
                "response",
                lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "/health" not in r.url else None,
            )
            page.on(
                "console",
                lambda m: (
                    errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
                ),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}{PREFIX}/?token={TOKEN}#overview")
            page.wait_for_selector("#fleet-card[data-state=ok] tr[data-instance]")
            rows = page.locator("#fleet-card tr[data-instance]")
            assert rows.count() == 3
            shown = {
                rows.nth(i).get_attribute("data-instance"): int(rows.nth(i).locator(".fleet-requests").inner_text())
                for i in range(3)
            }
            expected = {
                f"127.0.0.1:{port}": totals(e["counts"])[0]
                for port, e in zip(fleet["ports"], fleet["expected"], strict=True)
            }
            assert shown == expected
            # The card follows the window chosen on the page.
            page.select_option("#window-select", "5m")
            page.wait_for_selector("#fleet-card p:has-text('window 5m')")
            # The health badge reads the fleet's health (/health?scope=fleet), not the instance's.
            page.wait_for_selector("#health-badge:not(.status-unknown)")
            health_calls = [u for u in asked if "/health" in u and "/static/" not in u]  # not views/health.js
            assert health_calls and all(u.endswith("/health?scope=fleet") for u in health_calls), health_calls
            artifacts = REPO / "test-artifacts" / "dashboard"
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifacts / "fleet.png"), full_page=True)
        finally:
            context.close()
    assert not errors, errors


def test_a_stopped_instance_shows_as_down_and_the_others_keep_answering(fleet):
    """Last in this module: it stops the third instance."""
    stop(fleet["apps"][2])
    down = f"127.0.0.1:{fleet['ports'][2]}"

    def marked_down():
        rows = {r["instance"]: r for r in api(fleet["bases"][0], "/instances?window=5m")["instances"]}
        return rows.get(down, {}).get("up") is False and rows

    rows = wait_for(marked_down, HANG_S, "Prometheus to see the stopped instance down")
    assert rows[down]["requests"] == 0  # its series went stale with it
    assert [rows[f"127.0.0.1:{p}"]["up"] for p in fleet["ports"][:2]] == [True, True]
    assert [rows[f"127.0.0.1:{p}"]["requests"] for p in fleet["ports"][:2]] == [9, 8]
    assert api(fleet["bases"][1], "/performance")["windows"]["all"]["requests"] == 17
