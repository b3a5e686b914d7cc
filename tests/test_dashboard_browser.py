"""The dashboard in a real headless Chromium (PyPI ``playwright``, Debian's ``/usr/bin/chromium``).

The example app (plus a route whose template is ``<script>alert(1)</script>``, tests/dashboard_app.py)
runs in a subprocess on 127.0.0.1 with traffic; the browser logs in through the form and every view
must show real numbers and drawn charts, sort, refresh on its own, keep hostile text as text, and
log no console error. A canned-JSON server checks the page stays fast with 200 endpoints and a day
of history. Screenshots of each view go to ``test-artifacts/dashboard/`` (printed; gitignored).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from types import SimpleNamespace

import pytest

from .conftest import HANG_S, ROOT, free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)", allow_module_level=True)

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PREFIX = "/professional-analytics"
USER = "admin"
PASSWORD = "correct horse battery staple"
XSS = "<script>alert(1)</script>"
XSS_PRODUCT = "<img src=x onerror=alert(2)>"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
TRACE_LINK = "http://127.0.0.1:16686/trace/"
XSS_RULE = "<img src=x onerror=alert(4)> failing"
ALERT_RULE = {"name": XSS_RULE, "metric": "error_rate_pct", "route": "/api/error", "threshold": 50, "window": "1m"}


# -- the app under test, with traffic --------------------------------------------------------------


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> bytes:
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"User-Agent": "<b>dashboard-test</b>", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def _one_round(base: str, rnd: random.Random, slow: bool, error: bool) -> None:
    for path in ("/", "/api/users", f"/api/users/{rnd.randint(1, 60)}", "/xss", "/no/such/page"):
        _request(base + path)
    _request(base + "/api/orders", json.dumps({"product": XSS_PRODUCT}).encode(), {"Content-Type": "application/json"})
    if slow:
        _request(base + "/api/slow")
    if error:
        _request(base + "/api/error")
        _request(base + "/xss-fail")


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """(base_url, stop_traffic): the app in a subprocess and a thread sending ~15 requests/s."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MONITORING_"))}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MONITORING_USERNAME": USER,
            "MONITORING_PASSWORD": PASSWORD,
            "OTEL_MONITOR_DASHBOARD_REFRESH_S": "2",  # auto-refresh observable within the test
            "DASHBOARD_TEST_SAMPLE_S": "1",  # analytics samples every 1 s, not 10 s
            "OTEL_MONITOR_ANALYTICS_SLOW_MS": "100",
            "EXAMPLE_SLOW_SECONDS": "0.12",
            "OTEL_MONITOR_TRACE_LINK_TEMPLATE": TRACE_LINK + "{trace_id}",
            # /health answers 503 when unhealthy, which Chromium logs as a console error; keep it 200 here
            # (a busy 2-core CI machine and /api/error on purpose would otherwise fail some checks).
            "OTEL_MONITOR_HEALTH_ERROR_RATE_PCT": "60",
            "OTEL_MONITOR_HEALTH_LATENCY_P95_MS": "5000",
            "OTEL_MONITOR_HEALTH_LATENCY_AVG_MS": "5000",
            "OTEL_MONITOR_HEALTH_CPU_PCT": "100",
            "OTEL_MONITOR_HEALTH_MEMORY_PCT": "100",
            "OTEL_MONITOR_HEALTH_DISK_PCT": "100",
            # The Alerts view: a rule that fires on /api/error, a webhook nobody answers
            "OTEL_MONITOR_ALERTS_INTERVAL_S": "0.5",
            "OTEL_MONITOR_ALERTS_RULES": json.dumps([ALERT_RULE]),
            "OTEL_MONITOR_ALERTS_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook/secret-token",
            "OTEL_MONITOR_ALERTS_STATE_FILE": str(tmp_path_factory.mktemp("alerts") / "alerts.json"),
        }
    )
    log_path = tmp_path_factory.mktemp("dashboard") / "app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "dashboard_app.py"), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    try:
        wait_for_port(port, proc=proc)
        rnd = random.Random(4)
        for i in range(3):
            _one_round(base, rnd, slow=True, error=i == 0)

        def traffic() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    _one_round(base, rnd, slow=n % 4 == 0, error=n % 15 == 0)
                except OSError:
                    if stop.is_set():
                        return  # the app stopped under a request in flight
                    raise
                stop.wait(0.4)

        thread = threading.Thread(target=traffic, name="dashboard-traffic", daemon=True)
        thread.start()
        # Wait until the analytics have a few samples with requests (charts need two points).
        auth = {"Authorization": "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
        deadline = time.monotonic() + HANG_S
        while True:
            series = json.loads(_request(f"{base}{PREFIX}/timeseries?window=1m", headers=auth))
            if sum(1 for p in series.get("points", []) if p.get("requests")) >= 3:
                break
            assert time.monotonic() < deadline, f"no time series after {HANG_S:g} s; see {log_path}"
            time.sleep(0.3)
        yield base
    finally:
        stop.set()
        stop_process(proc)


# -- the browser -----------------------------------------------------------------------------------


class Browser:
    """One Chromium for the module; console errors, page errors, dialogs and every request recorded."""

    def __init__(self, context) -> None:
        self.context = context
        self.problems: list[str] = []
        self.requests: list[str] = []

    def watch(self, page) -> None:
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text} ({m.location.get('url')})")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog {d.type}: {d.message}"), d.dismiss()))
        page.on("request", lambda r: self.requests.append(r.url))

    def assert_clean(self) -> None:
        assert self.problems == [], self.problems


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {ARTIFACTS}")
    user_data = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(user_data), executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(HANG_S * 1000)  # every wait: for a state, bounded only against a hang
        try:
            yield Browser(context)
        finally:
            context.close()


@pytest.fixture(scope="module")
def dashboard(browser, app_server):
    """A page logged in through the form, showing the 1-minute window."""
    page = browser.context.new_page()
    browser.watch(page)
    page.goto(app_server + "/dashboard")  # the example app's shortcut -> <prefix>/ -> the login form
    assert "/login" in page.url
    assert page.locator("form.login-form input[name=csrf_token]").count() == 1
    page.screenshot(path=str(ARTIFACTS / "login.png"))
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(PREFIX) + r"/(#.*)?$"))
    wait_loaded(page, "overview", 0)
    gen = loaded(page, "overview")
    page.select_option("#window-select", "1m")
    wait_loaded(page, "overview", gen)
    yield SimpleNamespace(page=page, base=app_server, browser=browser)
    page.close()


def loaded(page, view: str) -> int:
    return page.evaluate("v => +(document.getElementById('view-' + v).dataset.loaded || 0)", view)


def wait_loaded(page, view: str, after: int) -> None:
    page.wait_for_function(
        "([v, g]) => +(document.getElementById('view-' + v).dataset.loaded || 0) > g", arg=[view, after]
    )


def open_view(page, view: str) -> None:
    gen = loaded(page, view)
    if page.evaluate("() => location.hash") == "#" + view:
        page.click("#refresh-button")
    else:
        page.click(f'.tabs a[data-tab="{view}"]')
    wait_loaded(page, view, gen)


def settled(page) -> None:
    """No load in flight: the last refresh has drawn its view."""
    page.wait_for_function("() => !document.body.classList.contains('is-loading')")


@contextlib.contextmanager
def paused(page):
    """Auto-refresh paused (as a user pauses it) and the refresh in flight landed: the page changes only
    when the test acts, so what it reads, measures and screenshots is one drawing, not a redraw."""
    if page.get_attribute("#pause-button", "aria-pressed") != "true":
        page.click("#pause-button")
    settled(page)
    try:
        yield
    finally:
        if page.get_attribute("#pause-button", "aria-pressed") == "true":
            page.click("#pause-button")  # resume (refreshes at once)


def drawn_points(page, selector: str) -> list[int]:
    """For each SVG chart matched: the most data points of its lines (0 when nothing is drawn)."""
    return page.evaluate(
        """sel => Array.from(document.querySelectorAll(sel)).map(svg =>
        Math.max(0, ...Array.from(svg.querySelectorAll('path.line, path.spark-line'))
            .filter(p => /L/.test(p.getAttribute('d') || ''))
            .map(p => +p.getAttribute('data-points'))))""",
        selector,
    )


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def number(text: str) -> float:
    """'1,234' / '12.5 k' / '3.1 M' -> a number (the dashboard's count format)."""
    match = re.match(r"([\d,.]+)\s*([kM]?)", text.strip())
    assert match, text
    return float(match.group(1).replace(",", "")) * {"": 1, "k": 1e3, "M": 1e6}[match.group(2)]


# -- the views -------------------------------------------------------------------------------------


def test_overview_shows_health_numbers_and_charts(dashboard):
    page = dashboard.page
    open_view(page, "overview")
    badge = page.locator("#health-badge").text_content()
    reason = r"[A-Za-z0-9 ]+ [\d.,]+ \S+ \(over [\d.,]+ \S+\)( \+\d)?"  # "p95 latency 612 ms (over 500 ms)"
    assert badge == "Healthy" or re.fullmatch("Degraded· " + reason, badge), badge
    assert page.locator("#overview-health .check").count() == 7
    values = page.locator("#overview-kpis .kpi-value").all_inner_texts()
    assert len(values) == 4
    throughput, error_rate, p95, apdex = values
    assert re.fullmatch(r"[\d.,]+ req/s", throughput) and number(throughput) > 0, throughput
    assert re.fullmatch(r"[\d.,]+ %", error_rate), error_rate
    assert re.fullmatch(r"[\d.,]+ (ms|s)", p95) and number(p95) > 0, p95
    assert re.fullmatch(r"[01]\.\d\d", apdex), apdex
    points = drawn_points(page, "#overview-charts svg.chart")
    assert len(points) == 4 and min(points) >= 2, points  # req/s, error rate, latency, Apdex
    assert page.locator("#overview-lists .rank li").count() >= 2
    shot(page, "overview")
    # The export buttons follow the window, and download with the session cookie.
    for fmt, mimetype in (("csv", "application/zip"), ("json", "application/json")):  # csv: a zip, a file per table
        href = page.get_attribute(f"#export-{fmt}", "href")
        assert href == f"{PREFIX}/export?format={fmt}&window=1m"
        response = page.request.get(dashboard.base + href)
        assert response.status == 200 and response.headers["content-type"].startswith(mimetype)
        assert "attachment" in response.headers["content-disposition"]
    dashboard.browser.assert_clean()


def test_auto_refresh_fetches_new_data_and_pause_stops_it(dashboard):
    page = dashboard.page
    open_view(page, "overview")
    gen = loaded(page, "overview")
    with page.expect_request(lambda r: "/timeseries" in r.url) as first:
        pass  # nobody clicks: the 2 s timer (OTEL_MONITOR_DASHBOARD_REFRESH_S=2) fetches again
    assert "window=1m" in first.value.url
    wait_loaded(page, "overview", gen)
    assert "every 2 s" in page.locator("#updated").inner_text()

    page.click("#pause-button")
    assert page.locator("#pause-button").get_attribute("aria-pressed") == "true"
    settled(page)  # a refresh already in flight lands
    seen = len([u for u in dashboard.browser.requests if "/timeseries" in u])
    page.wait_for_timeout(3000)  # one and a half refresh intervals: a timer left running would fetch
    assert len([u for u in dashboard.browser.requests if "/timeseries" in u]) == seen
    assert page.locator("#updated").inner_text().startswith("Paused")
    with page.expect_request(lambda r: "/timeseries" in r.url):
        page.click("#pause-button")  # resume: refreshes at once
    dashboard.browser.assert_clean()


def test_endpoints_table_sorts_filters_and_keeps_hostile_routes_as_text(dashboard):
    page = dashboard.page
    open_view(page, "endpoints")
    rows = page.locator("#endpoint-rows tr")
    assert rows.count() >= 7
    # The route named <script>alert(1)</script> is shown as text, and no script element came of it.
    assert page.locator("#endpoint-rows .route-text", has_text=XSS).count() == 1
    assert page.locator("#endpoint-rows script, #endpoint-rows img").count() == 0
    assert page.evaluate("() => document.scripts.length") == 1
    assert page.locator("#endpoint-rows .route-text", has_text="/api/users/<int:user_id>").count() == 1

    def routes() -> list[str]:
        return page.locator("#endpoint-rows .route-text").all_inner_texts()

    # (Each list is read once: the 2 s auto-refresh may redraw the table between two reads.)
    page.click('th[data-sort="route"] button')
    assert page.get_attribute('th[data-sort="route"]', "aria-sort") == "ascending"
    shown = routes()
    assert shown == sorted(shown) and len(set(shown)) > 3, shown
    page.click('th[data-sort="route"] button')
    assert page.get_attribute('th[data-sort="route"]', "aria-sort") == "descending"
    shown = routes()
    assert shown == sorted(shown, reverse=True), shown

    def counts() -> list[float]:
        return [number(t) for t in page.locator("#endpoint-rows td:nth-child(2)").all_inner_texts()]

    page.click('th[data-sort="count"] button')
    assert page.get_attribute('th[data-sort="count"]', "aria-sort") == "descending"
    shown = counts()
    assert shown == sorted(shown, reverse=True) and shown[0] > shown[-1], shown
    page.click('th[data-sort="count"] button')
    assert page.get_attribute('th[data-sort="count"]', "aria-sort") == "ascending"
    shown = counts()
    assert shown == sorted(shown), shown

    sparks = drawn_points(page, "#endpoint-rows svg.spark")
    assert sum(1 for n in sparks if n >= 2) >= 3, sparks

    page.fill("#endpoint-filter", "api/users")
    page.wait_for_function("() => document.querySelectorAll('#endpoint-rows tr').length === 2")
    assert all("api/users" in r for r in routes())
    page.fill("#endpoint-filter", "")
    page.wait_for_function("() => document.querySelectorAll('#endpoint-rows tr').length >= 7")
    page.click('th[data-sort="count"] button')  # back to the busiest first, for the screenshot
    shot(page, "endpoints")
    dashboard.browser.assert_clean()


def wait_detail(page, route: str) -> None:
    """The detail of ``route`` drawn (its three charts), whatever the list's auto-refresh did meanwhile."""
    page.wait_for_function(
        """r => {
        const title = document.querySelector('#endpoint-detail:not([hidden]) .detail-title .route-text');
        return title && title.textContent === r && document.querySelectorAll('#endpoint-detail svg.chart').length === 3;
    }""",
        arg=route,
    )


def test_endpoint_detail_shows_latency_and_status_breakdown(dashboard):
    page = dashboard.page
    open_view(page, "endpoints")
    page.locator("#endpoint-rows tr", has=page.locator(".route-text", has_text=re.compile(r"^/api/users$"))).click()
    wait_detail(page, "/api/users")
    assert page.evaluate("() => decodeURIComponent(location.hash)") == "#endpoints/GET /api/users"
    points = drawn_points(page, "#endpoint-detail svg.chart")
    assert len(points) == 3 and max(points) >= 2, points
    assert page.locator("#endpoint-detail .code-badge").first.inner_text() == "200"
    assert number(page.locator("#endpoint-detail .kpi-value").first.inner_text()) > 0
    shot(page, "endpoint-detail")

    # The hostile route's detail: its name as text in the title.
    page.click("#endpoint-detail .back-link")
    page.wait_for_selector("#endpoint-list:not([hidden])")
    page.locator("#endpoint-rows tr", has=page.locator(".route-text", has_text=XSS)).click()
    wait_detail(page, XSS)
    assert page.locator("#endpoint-detail script").count() == 0
    page.click("#endpoint-detail .back-link")
    page.wait_for_selector("#endpoint-list:not([hidden])")
    dashboard.browser.assert_clean()


def test_system_view_charts_host_and_process(dashboard):
    page = dashboard.page
    open_view(page, "system")
    cards = page.locator("#system-cards .kpi-value").all_inner_texts()
    assert len(cards) == 4
    assert all(re.search(r"\d", c) for c in cards), cards
    assert cards[0].endswith("%") and cards[1].endswith("%") and cards[3].endswith(("MB", "GB")), cards
    titles = page.locator("#system-charts .chart-title").all_inner_texts()
    assert titles == ["CPU", "Memory", "Disk", "Network", "Process memory (RSS)", "Process threads"]
    with paused(page):  # one drawing: the card and the chart read the same sample
        process = page.locator("#system-cards .kpi").nth(3).locator(".kpi-foot .muted").inner_text()
        chart = page.locator("#system-charts .chart-card").nth(5).locator(".legend-value").inner_text()
        assert re.fullmatch(r"\d+ threads", chart), chart
        assert process.split(" · ")[0] == chart, (process, chart)  # one number of threads, not two
    points = drawn_points(page, "#system-charts svg.chart")
    assert points[0] >= 2 and points[1] >= 2 and points[4] >= 2 and points[5] >= 2, points
    shot(page, "system")
    dashboard.browser.assert_clean()


def test_traces_view_lists_slow_and_failed_requests_with_safe_links(dashboard):
    page = dashboard.page
    open_view(page, "traces")
    kinds = set(page.locator("#trace-rows .kind-badge").all_inner_texts())
    assert kinds == {"slow", "failed"}, kinds
    link = page.locator("#trace-rows a.trace-link").first
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert link.get_attribute("target") == "_blank"
    assert re.fullmatch(re.escape(TRACE_LINK) + r"[0-9a-f]{32}", link.get_attribute("href"))
    assert page.locator("#trace-rows .error-text", has_text="RuntimeError").count() >= 1
    shot(page, "traces")
    page.click('.segmented button[data-kind="failed"]')
    page.wait_for_function("""() => {
        const kinds = Array.from(document.querySelectorAll('#trace-rows .kind-badge'), b => b.textContent);
        return kinds.length > 0 && kinds.every(k => k === 'failed');
    }""")
    page.click('.segmented button[data-kind="all"]')
    dashboard.browser.assert_clean()


DOCS_IMAGES = ROOT / "docs" / "images"


def open_failed_trace(page) -> str:
    """From the Traces tab, open the newest failed /api/error request; returns its trace id."""
    open_view(page, "traces")
    gen = loaded(page, "traces")
    page.click('.segmented button[data-kind="failed"]')
    wait_loaded(page, "traces", gen)  # the rows read are the failed list's, not those of the list it replaces
    first = page.locator("#trace-rows tr[data-trace]", has_text="/api/error").first
    first.wait_for()
    trace_id = first.get_attribute("data-trace")
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id), trace_id
    # that row by its id (a refresh may redraw the list between two reads of "the first row")
    row = page.locator(f'#trace-rows tr[data-trace="{trace_id}"]').first
    assert row.locator("a.trace-open").inner_text() == trace_id  # the full id, not half of it
    row.locator(".route-text").click()  # a click anywhere on the row opens the trace
    page.wait_for_function("id => location.hash === '#traces/' + id", arg=trace_id)
    page.locator("#trace-detail .wf-span").first.wait_for()
    return trace_id


def test_a_failed_request_opens_as_a_waterfall_with_child_spans_and_the_traceback(dashboard):
    page = dashboard.page
    trace_id = open_failed_trace(page)
    detail = page.locator("#trace-detail")
    assert page.locator("#trace-list").is_hidden()
    assert detail.locator(".full-id").inner_text() == trace_id
    names = detail.locator(".wf-span .wf-label").all_inner_texts()
    assert names == ["GET /api/error", "POST /v1/charges"], names
    # nesting and the time axis: the child is indented and its bar lies inside the request's
    indent = page.evaluate(
        "() => Array.from(document.querySelectorAll('#trace-detail .wf-span .wf-name'),"
        " n => parseFloat(n.style.paddingLeft))"
    )
    assert indent == [0, 14], indent
    bars = page.evaluate(
        """() => Array.from(document.querySelectorAll('#trace-detail .wf-span .wf-bar'), b => {
            const r = b.getBoundingClientRect(); return [r.left, r.right]; })"""
    )
    assert bars[0][0] <= bars[1][0] < bars[1][1] <= bars[0][1] + 1, bars
    assert detail.locator(".wf-span.status-error").count() == 2
    assert all(re.fullmatch(r"[\d.,]+ (ms|s)", d) for d in detail.locator(".wf-span .wf-dur").all_inner_texts())
    assert detail.locator(".wf-tick").count() == 5
    # the traceback, readable as text
    assert detail.locator(".exception-card .exception-type").inner_text() == "RuntimeError"
    traceback = detail.locator(".exception-card pre.traceback").inner_text()
    assert traceback.startswith("Traceback (most recent call last):")
    assert "in _charge_card" in traceback and "RuntimeError: payment gateway refused card ending 4242" in traceback
    # the attributes one click away, and the external viewer kept (a link template is set)
    child = detail.locator(".wf-span").nth(1)
    assert child.get_attribute("aria-expanded") == "false"
    child.click()
    assert child.get_attribute("aria-expanded") == "true"
    panel = detail.locator(".wf-panel").nth(1)
    assert panel.is_visible()
    pairs = dict(
        zip(panel.locator(".attr-key").all_inner_texts(), panel.locator(".attr-value").all_inner_texts(), strict=True)
    )
    assert pairs["server.address"] == "payments.invalid" and pairs["kind"] == "client", pairs
    assert "exception.type" in pairs and pairs["exception.type"] == "RuntimeError"
    # The request span's exception event is the one the card above shows: its traceback is not repeated.
    root = detail.locator(".wf-span").first
    root.click()
    root_panel = detail.locator(".wf-panel").first
    assert root_panel.locator(".traceback-note").inner_text() == "Its traceback is shown above."
    assert root_panel.locator("pre.traceback").count() == 0
    assert detail.locator("pre.traceback", has_text="in error").count() == 1  # the request's, once
    root.click()
    link = detail.locator("a.trace-link")
    assert link.get_attribute("href") == TRACE_LINK + trace_id and link.get_attribute("rel") == "noopener noreferrer"
    # the auto-refresh (2 s) leaves the open panel open
    wait_loaded(page, "traces", loaded(page, "traces"))
    assert child.get_attribute("aria-expanded") == "true" and panel.is_visible()
    with paused(page):
        shot(page, "trace")
    page.click("#trace-detail a.back-link")
    page.wait_for_function("() => location.hash === '#traces'")
    assert page.locator("#trace-list").is_visible()
    dashboard.browser.assert_clean()


def test_errors_view_groups_failures_with_count_frame_and_example_traces(dashboard):
    page = dashboard.page
    open_view(page, "errors")
    group = page.locator(".error-group", has_text="/api/error").first
    assert group.locator(".exception-type").inner_text() == "RuntimeError"
    assert "payment gateway refused card ending 4242" in group.locator(".exception-message").inner_text()
    assert re.fullmatch(r"examples/app\.py:\d+ in _charge_card", group.locator(".error-frame").inner_text())
    count = number(group.locator(".error-count .kpi-value").inner_text())
    api = page.evaluate(
        "() => fetch(document.body.dataset.api + '/errors', {credentials: 'same-origin'}).then(r => r.json())"
    )
    [expected] = [g for g in api["groups"] if g["route"] == "/api/error"]
    assert expected["count"] >= count >= 1  # (traffic goes on between the two reads)
    assert group.locator(".error-timeline svg.spark").count() == 1
    assert "in the last hour" in group.locator(".error-timeline").inner_text()
    shot(page, "errors")
    example = group.locator(".error-examples a.trace-id").first
    href = example.get_attribute("href")
    assert re.fullmatch(r"#traces/[0-9a-f]{32}", href), href
    example.click()
    page.locator("#trace-detail .exception-card").wait_for()
    assert page.locator("#trace-detail .full-id").inner_text() == href.split("/")[1]
    dashboard.browser.assert_clean()


def test_hostile_exception_text_and_span_names_stay_text_in_the_trace_and_error_views(dashboard):
    page = dashboard.page
    hostile = "<img src=x onerror=alert(3)>"
    open_view(page, "errors")
    group = page.locator(".error-group", has_text="/xss-fail").first
    assert group.locator(".exception-message").inner_text() == ": " + hostile
    href = group.locator(".error-examples a.trace-id").first.get_attribute("href")
    page.goto(dashboard.base + PREFIX + "/" + href)
    page.locator("#trace-detail .wf-span").nth(1).wait_for()
    assert page.locator("#trace-detail .wf-span .wf-label").all_inner_texts() == ["GET /xss-fail", hostile]
    assert hostile in page.locator("#trace-detail .exception-card pre.traceback").inner_text()
    assert page.locator("#trace-detail img, #error-groups img").count() == 0
    assert page.evaluate("() => document.scripts.length") == 1
    dashboard.browser.assert_clean()  # no dialog came of it


def test_traces_waterfall_and_errors_fit_a_phone(dashboard):
    page = dashboard.page
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        with paused(page):  # the layout measured and shot is one drawing, not a redraw's
            open_view(page, "traces")
            gen = loaded(page, "traces")
            page.click('.segmented button[data-kind="all"]')
            wait_loaded(page, "traces", gen)  # the rows measured are the "all" list's, not the one it replaces
            # every value of a row is on screen (the rows are cards), the full trace id included
            cell = page.locator("#trace-rows tr[data-trace] td.trace-cell").first
            cell.wait_for(state="visible")
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
            box = cell.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
            shot(page, "traces-phone")
            trace_id = open_failed_trace(page)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
            assert page.locator("#trace-detail .wf-span").count() == 2
            assert "RuntimeError" in page.locator("#trace-detail .exception-card pre.traceback").inner_text()
            assert page.locator("#trace-detail .full-id").inner_text() == trace_id
            shot(page, "trace-phone")
            open_view(page, "errors")
            assert page.locator(".error-group", has_text="/api/error").count() >= 1
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
            shot(page, "errors-phone")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
    dashboard.browser.assert_clean()


def test_custom_metrics_view_shows_only_custom_instruments_as_text(dashboard):
    page = dashboard.page
    open_view(page, "custom")
    names = page.locator("#custom-list .metric-name").all_inner_texts()
    assert names == ["shop.orders.created", "shop.users.registered"], names
    attrs = page.locator("#custom-list td.attrs").all_inner_texts()
    assert f"product={XSS_PRODUCT}" in attrs
    assert page.locator("#custom-list img").count() == 0
    values = page.locator("#custom-list td.num.strong").all_inner_texts()
    assert "50" in values and all(number(v) > 0 for v in values), values
    # each instrument charted over the window: the counter as a rate, the gauge as its value (50)
    titles = page.locator("#custom-list .metric-chart .chart-title").all_inner_texts()
    assert titles == ["Per second", "Value"], titles
    assert min(drawn_points(page, "#custom-list .metric-chart svg.chart")) >= 2
    assert page.locator("#custom-list .metric-chart .legend-value").nth(1).inner_text() == "50"
    shot(page, "custom-metrics")
    dashboard.browser.assert_clean()


def test_alerts_view_shows_what_fires_as_text_and_the_destination_that_is_down(dashboard):
    page = dashboard.page
    try:
        page.set_viewport_size({"width": 1366, "height": 900})

        def shown(selector: str, text: str) -> bool:
            open_view(page, "alerts")
            return page.locator(selector, has_text=text).count() > 0

        deadline = time.monotonic() + 60
        while not shown("#alerts-firing .alert-row", XSS_RULE):
            assert time.monotonic() < deadline, "the /api/error rule never showed as firing"
            time.sleep(0.5)
        row = page.locator("#alerts-firing .alert-row").first
        assert row.locator(".alert-name").inner_text() == XSS_RULE  # the rule's name as text
        assert "error_rate_pct > 50 % on /api/error, over 1m" in row.inner_text()
        assert page.locator("#view-alerts img").count() == 0
        assert page.locator('#alerts-rules tr[data-rule="high error rate"]').count() == 1  # the defaults too
        # The webhook refuses connections: after its four attempts it shows as down, with the outcome.
        deadline = time.monotonic() + 60
        while not shown("#alerts-notifications tr", "failed after 4 attempts"):
            assert time.monotonic() < deadline, "the failed delivery never showed"
            time.sleep(0.5)
        destination = page.locator("#alerts-destinations tr").first.inner_text()
        assert "webhook" in destination and "down since" in destination
        assert "secret-token" not in page.content()
        shot(page, "alerts")
        # With the session cookie but without the page's CSRF token, a silence is refused.
        refused = page.request.post(
            dashboard.base + PREFIX + "/alerts/silences",
            data=json.dumps({"rule": "*", "duration": "1h"}),
            headers={"Content-Type": "application/json"},
        )
        assert refused.status == 403 and "CSRF" in refused.json()["error"]
        # Silence it from the page (a POST with the session cookie and its CSRF token), then end the silence.
        gen = loaded(page, "alerts")
        row.locator("button.alert-silence").click()
        wait_loaded(page, "alerts", gen)
        page.locator("#alerts-silences tr").first.wait_for()
        assert page.locator("#alerts-firing .alert-badge").first.inner_text() == "SILENCED"
        assert "from the dashboard" in page.locator("#alerts-silences").inner_text()
        gen = loaded(page, "alerts")
        page.locator('#alerts-silences button[data-action="end-silence"]').click()
        wait_loaded(page, "alerts", gen)
        assert page.locator("#alerts-silences").count() == 0
        page.set_viewport_size({"width": 390, "height": 844})
        open_view(page, "alerts")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        shot(page, "alerts-phone")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
    dashboard.browser.assert_clean()


def test_phone_width_and_dark_mode(dashboard):
    page = dashboard.page
    try:
        page.set_viewport_size({"width": 375, "height": 812})
        with paused(page):  # the layout measured and shot is one drawing, not a redraw's
            open_view(page, "overview")
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
            assert min(drawn_points(page, "#overview-charts svg.chart")) >= 2
            shot(page, "overview-phone")
            open_view(page, "endpoints")
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 375  # the table scrolls inside
            shot(page, "endpoints-phone")
            page.set_viewport_size({"width": 1280, "height": 900})
            page.emulate_media(color_scheme="dark")
            open_view(page, "overview")
            background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
            rgb = [int(x) for x in re.findall(r"\d+", background)[:3]]
            assert sum(rgb) < 3 * 60, background
            shot(page, "overview-dark")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.emulate_media(color_scheme="light")
    dashboard.browser.assert_clean()


def test_nothing_is_fetched_from_another_origin(dashboard):
    origin = dashboard.base
    foreign = [u for u in dashboard.browser.requests if not u.startswith((origin + "/", "data:"))]
    assert foreign == []
    dashboard.browser.assert_clean()


def test_session_end_sends_the_page_to_the_login_form(dashboard):
    page, browser = dashboard.page, dashboard.browser
    open_view(page, "overview")
    # The session goes away under the page (expired, server restarted): the next fetch gets a 401
    # and the page goes to the login form by itself (no browser password dialog holding it up).
    cookies = browser.context.cookies()
    browser.context.clear_cookies()
    page.click("#refresh-button")
    # The first 401 navigates; fetches still in flight are aborted (or answer 401 too).
    page.wait_for_function("() => /\\/login$/.test(location.pathname)")
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # late 401 responses of the old page are logged by now
    # Chromium logs each 401 response as a console error: expected here, and nothing else.
    expected = [p for p in browser.problems if "status of 401" in p]
    assert expected
    browser.problems[:] = [p for p in browser.problems if p not in expected]
    browser.context.add_cookies(cookies)
    browser.assert_clean()


def test_logout_ends_the_session(dashboard):
    page = dashboard.page
    page.goto(dashboard.base + PREFIX + "/#overview")
    if "/login" in page.url:  # (when run on its own after the test above)
        page.fill("#username", USER)
        page.fill("#password", PASSWORD)
        page.click("form.login-form button[type=submit]")
    wait_loaded(page, "overview", 0)
    page.click(".logout-form button")
    page.wait_for_url(re.compile(re.escape(PREFIX) + r"/login$"))
    page.goto(dashboard.base + PREFIX + "/#overview")
    assert "/login" in page.url
    dashboard.browser.assert_clean()


# -- speed: 200 endpoints and a day of history (canned JSON) ---------------------------------------


def _canned(n_routes: int = 200, minutes: int = 1440) -> dict:
    now = time.time()
    rnd = random.Random(7)
    methods = ["GET", "POST", "PUT", "DELETE"]
    endpoints = []
    routes = {}
    for i in range(n_routes):
        method = methods[i % 4]
        route = f"/api/v1/resource{i:03d}/<int:item_id>"
        count = rnd.randint(10, 100_000)
        errors = rnd.randint(0, count // 20)
        p50 = rnd.uniform(1, 50)
        endpoints.append(
            {
                "route": route,
                "method": method,
                "count": count,
                "errors": errors,
                "error_rate_pct": round(100 * errors / count, 3),
                "rps": round(count / 86400, 3),
                "p50_ms": p50,
                "p90_ms": p50 * 2,
                "p95_ms": p50 * 3,
                "p99_ms": p50 * 5,
                "max_ms": p50 * 9,
                "avg_ms": p50 * 1.4,
                "last_seen": now - rnd.uniform(0, 600),
                "status_codes": {"200": count - errors, "500": errors},
            }
        )
        routes[f"{method} {route}"] = [rnd.randint(0, 60) for _ in range(minutes)]
    points = []
    for k in range(minutes):
        wave = 1 + math.sin(k / 90)
        points.append(
            {
                "t": now - (minutes - k) * 60,
                "requests": int(600 * wave),
                "rps": 10 * wave,
                "error_rate_pct": 0.5 * wave,
                "p95_ms": 40 + 20 * wave,
                "avg_ms": 12 + 5 * wave,
                "apdex": 0.95,
                "cpu_pct": 30 + 10 * wave,
                "memory_pct": 50.0,
                "disk_pct": 40.0,
                "process_rss_bytes": 90e6 + 1e6 * wave,
                "process_threads": 8,
                "net_sent_bps": 1e4 * wave,
                "net_recv_bps": 2e4 * wave,
            }
        )
    checks = [
        {"name": n, "value": 1.0, "threshold": 100, "unit": u, "status": "ok"}
        for n, u in (("latency_avg_ms", "ms"), ("latency_p95_ms", "ms"), ("error_rate_pct", "%"))
    ]
    return {
        "endpoints": {"window": "24h", "window_available": True, "total": n_routes, "endpoints": endpoints},
        "timeseries": {"window": "24h", "step_s": 60, "points": points, "routes": routes},
        "health": {"status": "healthy", "time": now, "uptime_s": 86400, "window": "5m", "checks": checks},
        "performance": {"apdex_t_ms": 100, "windows": {}, "slowest_endpoints": [], "most_failing_endpoints": []},
    }


def _empty() -> dict:
    """A monitored app that has served nothing yet, with system metrics off."""
    now = time.time()
    checks = [{"name": "latency_p95_ms", "value": None, "threshold": 100, "unit": "ms", "status": "ok"}]
    return {
        "endpoints": {"window": "15m", "window_available": True, "total": 0, "endpoints": []},
        "timeseries": {
            "window": "15m",
            "step_s": 10,
            "routes": {},
            "points": [
                {
                    "t": now - 10 * (5 - k),
                    "requests": 0,
                    "rps": 0.0,
                    "error_rate_pct": None,
                    "p95_ms": None,
                    "avg_ms": None,
                    "apdex": None,
                    "cpu_pct": None,
                }
                for k in range(5)
            ],
        },
        "health": {"status": "healthy", "time": now, "uptime_s": 50, "window": "5m", "checks": checks},
        "performance": {
            "apdex_t_ms": 100,
            "windows": {
                "15m": {"requests": 0, "rps": 0.0, "errors": 0, "error_rate_pct": None, "latency": {}, "apdex": None}
            },
            "slowest_endpoints": [],
            "most_failing_endpoints": [],
        },
        "traces": {"link_template": None, "traces": []},
        "errors": {"groups": [], "total": 0, "timeline_step_s": 60},
        "metrics/series": {"window": "15m", "step_s": None, "window_available": True, "covered_s": 0, "series": {}},
        "metrics": {
            "metrics": [{"name": "http.server.request.duration", "unit": "s", "type": "histogram", "points": []}]
        },
    }


_FLEET = {
    "selector": 'job="canned"',
    "window": "15m",
    "instances": [
        {
            "instance": "10.0.0.1:8000",
            "up": True,
            "requests": 120,
            "rps": 0.13,
            "errors": 3,
            "error_rate_pct": 2.5,
            "latency": {"p95_ms": 42.0},
            "cpu_pct": 12.0,
            "memory_pct": 40.0,
        },
        {
            "instance": "<b>10.0.0.2</b>:8000",
            "up": False,
            "requests": 7,
            "rps": 0.0,
            "errors": 0,
            "error_rate_pct": 0,
            "latency": {"p95_ms": None},
            "cpu_pct": None,
            "memory_pct": None,
        },
    ],
    "traces": {"note": "Recent traces are this instance's.", "trace_viewer_url": None},
}


@pytest.fixture(scope="module")
def canned_server():
    """Stubs of the analytics API with the dashboard registered on them (auth off), in a thread:
    ``/otel-monitor`` has 200 endpoints and a day of history, ``/empty`` has nothing yet."""
    from flask import Blueprint, Flask, jsonify
    from werkzeug.serving import make_server

    from otel_monitor.analytics.dashboard import register_dashboard

    app = Flask("canned_analytics")
    stubs = (
        ("big", "/otel-monitor", _canned(), True, "memory"),
        ("empty", "/empty", _empty(), False, "memory"),
        ("fleet", "/fleet", {**_empty(), "instances": _FLEET}, False, "prometheus"),
    )
    for name, prefix, data, history, source in stubs:
        bp = Blueprint(name, __name__, url_prefix=prefix)
        for route, body in data.items():
            bp.add_url_rule(f"/{route}", route, functools.partial(jsonify, body))
        bp.add_url_rule("/dashboard", "dashboards", lambda: jsonify(dashboards=[]))
        auth = SimpleNamespace(enabled=False, token=None)
        settings = SimpleNamespace(
            analytics_db="history.db" if history else None,
            service_name="canned",
            analytics_slow_ms=500,
            analytics_username=None,
            dashboard_refresh_s=30,
            analytics_source=source,
        )
        register_dashboard(bp, auth, settings, None)
        app.register_blueprint(bp)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_200_endpoints_and_a_day_of_history_draw_downsampled_charts(browser, canned_server):
    # How fast it draws is printed here and is not asserted (a busy machine is slow, not wrong).
    page = browser.context.new_page()
    browser.watch(page)
    try:
        page.goto(canned_server + "/otel-monitor/#endpoints")
        wait_loaded(page, "endpoints", 0)
        first_ms = page.evaluate("() => performance.now()")  # since navigation start
        assert page.locator("#endpoint-rows tr").count() == 200
        # A day of history: the 24h window is offered (history on) and the table redraws quickly.
        assert "24h" in page.locator("#window-select option").all_inner_texts()
        gen = loaded(page, "endpoints")
        started = page.evaluate("() => performance.now()")
        page.select_option("#window-select", "24h")
        wait_loaded(page, "endpoints", gen)
        window_ms = page.evaluate("() => performance.now()") - started
        started = page.evaluate("() => performance.now()")
        page.click('th[data-sort="p95_ms"] button')
        sort_ms = page.evaluate("() => performance.now()") - started
        gen = loaded(page, "overview")
        started = page.evaluate("() => performance.now()")
        page.click('.tabs a[data-tab="overview"]')
        wait_loaded(page, "overview", gen)
        overview_ms = page.evaluate("() => performance.now()") - started
        points = drawn_points(page, "#overview-charts svg.chart")
        assert len(points) == 4 and min(points) >= 100, points  # downsampled to the width, not 1440
        print(
            f"\n200 endpoints, 1 day: first view {first_ms:.0f} ms, 24h window {window_ms:.0f} ms, "
            f"sort {sort_ms:.0f} ms, overview {overview_ms:.0f} ms"
        )
        shot(page, "overview-24h-canned")
    finally:
        page.close()
    browser.assert_clean()


def test_empty_states_say_what_to_do(browser, canned_server):
    page = browser.context.new_page()
    browser.watch(page)
    expected = {
        "overview": "No requests yet — send some traffic to your app.",
        "endpoints": "No requests yet — send some traffic to your app.",
        "system": "No system metrics yet.",
        "traces": "No slow or failed requests yet.",
        "errors": "No failed requests yet.",
        "custom": "No custom metrics yet.",
    }
    try:
        page.goto(canned_server + "/empty/")
        wait_loaded(page, "overview", 0)
        assert page.locator("#window-select option").all_inner_texts() == ["1m", "5m", "15m"]  # no history
        # (a "24h" remembered from the other stub on this origin falls back to a window offered here)
        assert page.locator("#window-select").input_value() == "15m"
        assert "in 15m" in page.locator("#overview-kpis .kpi").first.inner_text()
        for view, text in expected.items():
            if view != "overview":
                open_view(page, view)
            assert page.locator(f"#view-{view} .empty-title", has_text=text).count() >= 1, view
            assert page.locator(f"#view-{view} .empty-hint").count() >= 1, view  # ... and what to do about it
            if view == "overview":
                shot(page, "overview-empty")
    finally:
        page.close()
    browser.assert_clean()


def test_fleet_mode_adds_the_fleet_card_next_to_the_module_dashboard(browser, canned_server):
    # fleet.js is a classic deferred script before the dashboard's entry module: its card sits
    # above the overview the modules draw; the API module asks for the fleet's /health itself.
    page = browser.context.new_page()
    browser.watch(page)
    try:
        page.goto(canned_server + "/fleet/")
        wait_loaded(page, "overview", 0)
        page.wait_for_selector('#fleet-card[data-state="ok"]')
        rows = page.locator("#fleet-card tbody tr")
        assert rows.count() == 2
        assert page.locator("#fleet-card .fleet-instance").all_inner_texts() == [
            "10.0.0.1:8000",
            "<b>10.0.0.2</b>:8000",
        ]
        assert page.locator("#fleet-card b").count() == 0  # an instance name is text
        assert page.locator("#fleet-card tr.fleet-down").count() == 1
        assert page.locator("#overview-health .health-summary").inner_text() == "The check passes"
        assert any(url.endswith("/fleet/health?scope=fleet") for url in browser.requests)
        assert page.evaluate("window.fetch.toString()").find("[native code]") >= 0  # fetch is not replaced
    finally:
        page.close()
    browser.assert_clean()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The README's demo as users run it: ``otel-monitor demo --quick`` (its story in a minute:
    version 1.0 healthy, 2.0 deployed, the incident with its alert, the recovery)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MONITORING_"))}
    env.update({"PYTHONUNBUFFERED": "1", "MONITORING_USERNAME": USER, "MONITORING_PASSWORD": PASSWORD})
    # The images show the demo's story, not the load of the machine that runs the tests.
    env.update({"OTEL_MONITOR_HEALTH_CPU_PCT": "100", "OTEL_MONITOR_HEALTH_MEMORY_PCT": "100"})
    log_path = tmp_path_factory.mktemp("demo") / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otel_monitor", "demo", "--port", str(port), "--quick"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        stop_process(proc)


#: the README's images: at most this wide and this heavy (palette PNGs)
DOCS_WIDTH, DOCS_MAX_BYTES = 1366, 150_000


def docs_shot(page, name: str) -> None:
    """docs/images/<name>.png: the page at 1366 px (its full height), as a palette PNG under 150 KB."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    assert image.width <= DOCS_WIDTH, image.size
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    path = DOCS_IMAGES / f"{name}.png"
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    assert path.stat().st_size < DOCS_MAX_BYTES, (name, path.stat().st_size)


def wait_until(page, view: str, selector: str, text: str) -> None:
    """Open ``view`` until ``selector`` shows ``text`` (the demo's story moves on its own clock)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + 3 * HANG_S
    while True:
        try:
            open_view(page, view)
        except PlaywrightTimeout:
            pass  # this load failed (a demo too busy to answer in time): the page retries on its own
        if page.locator(selector, has_text=text).count():
            return
        banner = page.locator("#banner").inner_text() if page.locator("#banner").is_visible() else ""
        assert time.monotonic() < deadline, f"{view}: no {selector} with {text!r} (banner: {banner!r})"
        page.wait_for_timeout(1000)


def test_docs_screenshots_of_the_demo_story_overview_trace_versions_and_alerts(browser, demo_server):
    """docs/images/{overview,trace,versions,alerts}.png (shown in the README), from the demo's story.
    (Last in this file: it logs in to another app.)"""
    base, log_path = demo_server
    # "localhost", not 127.0.0.1: cookies ignore the port, and the other tests' session must stay theirs
    base = base.replace("127.0.0.1", "localhost")
    page = browser.context.new_page()
    browser.watch(page)
    try:
        page.set_viewport_size({"width": DOCS_WIDTH, "height": 860})
        page.goto(base + PREFIX + "/#overview")
        page.fill("#username", USER)
        page.fill("#password", PASSWORD)
        page.click("form.login-form button[type=submit]")
        page.wait_for_url(re.compile(re.escape(PREFIX) + r"/(#.*)?$"))
        page.select_option("#window-select", "5m")
        # The incident after the deploy of 2.0: the alert fires (the session outlives the deploy).
        wait_until(page, "alerts", "#alerts-firing .alert-row", "demo: error rate over 2 %")
        with paused(page):
            docs_shot(page, "alerts")
        # An order during the incident: slow, its spans (the outgoing inventory call, the database
        # insert) and its profile (where the time went).
        open_view(page, "traces")
        gen = loaded(page, "traces")
        page.click('.segmented button[data-kind="slow"]')
        wait_loaded(page, "traces", gen)
        rows = page.locator("#trace-rows tr[data-trace]", has_text="/api/orders")
        rows.first.wait_for()
        # The list is the analytics' tick's (up to 10 s old): an order's tree may have been evicted since,
        # leaving only the inventory request it called (a tree of the same trace, slow in the incident).
        # Open the newest order whose tree is still kept with its profile (on a busy machine the profiler
        # may have had no turn during a request), as the user would.
        kept = None
        for trace_id in rows.evaluate_all("rows => rows.map(r => r.dataset.trace)"):
            detail = page.request.get(base + PREFIX + "/traces/" + trace_id)
            if detail.status != 200:
                continue
            tree = detail.json()
            names = [span["name"] for span in tree["spans"]]
            # (an order of an out-of-stock product fails after the inventory call, with no insert)
            if names[0] == "POST /api/orders" and "INSERT orders" in names and tree.get("profile"):
                kept = trace_id
                break
        assert kept is not None, "no slow order kept with its profile"
        # (the inventory request of the same trace has a row with the same trace id)
        page.locator(f'#trace-rows tr[data-trace="{kept}"]', has_text="/api/orders").locator(".route-text").click()
        page.locator("#trace-detail .flame-card").wait_for()
        names = page.locator("#trace-detail .wf-span .wf-label").all_inner_texts()
        assert names[0] == "POST /api/orders" and sorted(names[1:]) == ["GET", "INSERT orders"], names
        with paused(page):
            docs_shot(page, "trace")
        # Both versions (whether a regression is flagged depends on how many requests the story got
        # through before the deploy on this machine: the regression test itself is in test_versions.py)
        wait_until(page, "versions", "#versions-rows", "2.0")
        assert page.locator("#versions-rows tr").count() == 2
        with paused(page):
            docs_shot(page, "versions")
        open_view(page, "errors")
        types = set(page.locator(".error-group .exception-type").all_inner_texts())
        assert types == {"RuntimeError", "LookupError"}, types
        shot(page, "demo-errors")
        # The recovery: the alert resolved; the overview shows the incident behind it.
        wait_until(page, "alerts", "#view-alerts", "resolved")
        open_view(page, "overview")
        assert min(drawn_points(page, "#overview-charts svg.chart")) >= 2
        with paused(page):
            docs_shot(page, "overview")
        assert "story: recovery" in log_path.read_text()
    finally:
        page.close()
    # /health answers 503 while the demo is unhealthy (its incident); Chromium logs that status
    browser.problems[:] = [p for p in browser.problems if not ("status of 503" in p and p.endswith("/health)"))]
    browser.assert_clean()
