"""WCAG 2.1 AA on every view of the dashboard, measured by axe-core in the real headless Chromium.

axe-core comes from the npm registry as a test dependency (tests/js/package.json; ``npm ci --prefix
tests/js`` in scripts/test.sh) and is injected into each page of the browser tests' Chromium. Every
view (the login form, overview, endpoints and an endpoint's detail with its flame graph, system,
traces, a failed trace, a slow trace with its profile, errors, alerts, custom metrics, versions,
users, the week's heatmap) is checked at
1366 and 390 px wide, in the light and the dark theme: no critical or serious violation, every
scrollable region reachable by keyboard, one <h1> per view. The counts per view, width and theme are
written to ``test-artifacts/accessibility.json`` and printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from .conftest import ROOT
from .test_dashboard_browser import (  # noqa: F401 - the module's fixtures, used by name
    ARTIFACTS,
    PASSWORD,
    PREFIX,
    USER,
    app_server,
    browser,
    loaded,
    open_failed_trace,
    open_view,
    wait_loaded,
)

pytestmark = pytest.mark.integration

AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
if not AXE.is_file():
    pytest.skip("axe-core is not installed: npm ci --prefix tests/js", allow_module_level=True)

WIDTHS = {1366: 900, 390: 844}
THEMES = ("light", "dark")
#: WCAG 2.0 and 2.1, levels A and AA, and axe's best practices (the page's heading among them)
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
FAILING_IMPACTS = ("critical", "serious")


def axe(page) -> list[dict]:
    """axe-core's violations on the page as it is drawn now (injected once per document)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # Through the DevTools protocol, as a test runner does: the page's own CSP does not apply.
        page.evaluate(AXE.read_text() + "\n;0")
    return page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
            .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\\n')[1])})))""",
        TAGS,
    )


def open_endpoint_detail(page) -> None:
    open_view(page, "endpoints")
    page.locator("#endpoint-rows tr", has=page.locator(".route-text", has_text=re.compile(r"^/api/slow$"))).click()
    page.locator("#endpoint-detail svg.chart").first.wait_for()


def open_slow_trace(page) -> None:
    open_view(page, "traces")
    page.click('.segmented button[data-kind="slow"]')
    row = page.locator("#trace-rows tr[data-trace]", has_text="/api/slow").first
    row.wait_for()
    row.locator(".route-text").click()
    page.locator("#trace-detail .wf-span").first.wait_for()


def _view(name: str) -> Callable:
    return lambda page: open_view(page, name)


#: (name, how to open it) of every view a user sees once signed in
VIEWS: list[tuple[str, Callable]] = [
    ("overview", _view("overview")),
    ("endpoints", _view("endpoints")),
    ("endpoint detail", open_endpoint_detail),
    ("system", _view("system")),
    ("traces", _view("traces")),
    ("failed trace", open_failed_trace),
    ("slow trace", open_slow_trace),
    ("errors", _view("errors")),
    ("alerts", _view("alerts")),
    ("custom", _view("custom")),
    ("versions", _view("versions")),
    ("users", _view("users")),
    ("week", _view("heatmap")),
]


@pytest.fixture(scope="module")
def report():
    """{view: {"1366 light": [violation, ...], ...}}: written and printed at the end of the module."""
    found: dict[str, dict[str, list[dict]]] = {}
    yield found
    out = ARTIFACTS.parent / "accessibility.json"
    out.write_text(json.dumps(found, indent=1))
    print(f"\naxe-core violations (all impacts) per view, width and theme; details in {out}")
    for view, runs in found.items():
        print(f"  {view:16} " + "  ".join(f"{k}: {len(v)}" for k, v in runs.items()))


def serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in FAILING_IMPACTS]


def check_everywhere(page, name: str, open_it: Callable, report: dict) -> list[str]:
    failures: list[str] = []
    for theme in THEMES:
        page.emulate_media(color_scheme=theme)
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            open_it(page)
            pause(page)
            violations = axe(page)
            report.setdefault(name, {})[f"{width} {theme}"] = violations
            failures += [
                f"{name} at {width} px, {theme}: {v['id']} ({v['impact']}) {v['nodes'][:3]}"
                for v in serious(violations)
            ]
    return failures


def pause(page) -> None:
    """Auto-refresh paused, so axe reads one drawing, not a redraw in progress."""
    if page.locator("#pause-button").count() and page.get_attribute("#pause-button", "aria-pressed") != "true":
        page.click("#pause-button")
    page.wait_for_function("() => !document.body.classList.contains('is-loading')")


@pytest.fixture(scope="module")
def signed_in(browser, app_server, report):  # noqa: F811 - the imported fixtures
    """A page on the login form (checked there), then signed in; light theme and desktop size after."""
    page = browser.context.new_page()
    browser.watch(page)
    failures: list[str] = []

    def login_form(page) -> None:
        page.goto(app_server.replace("127.0.0.1", "localhost") + PREFIX + "/login")
        page.locator("#username").wait_for()

    failures += check_everywhere(page, "login", login_form, report)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.emulate_media(color_scheme="light")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(PREFIX) + r"/(#.*)?$"))
    wait_loaded(page, "overview", 0)
    gen = loaded(page, "overview")
    page.select_option("#window-select", "15m")
    wait_loaded(page, "overview", gen)
    yield page, failures
    page.close()


def test_every_view_has_no_serious_or_critical_violation_at_either_width_in_either_theme(signed_in, report):
    page, failures = signed_in
    try:
        for name, open_it in VIEWS:
            failures += check_everywhere(page, name, open_it, report)
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.emulate_media(color_scheme="light")
    assert failures == [], "\n".join(failures)


def test_every_view_has_one_h1_and_every_scrollable_region_is_reachable_by_keyboard(signed_in):
    page, _ = signed_in
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for name, open_it in VIEWS:
            open_it(page)
            pause(page)
            h1 = page.evaluate(
                "() => Array.from(document.querySelectorAll('h1'), h => h.offsetParent ? h.textContent : null)"
            )
            assert len([h for h in h1 if h]) == 1, (name, h1)
            unreachable = page.evaluate(
                """() => Array.from(document.querySelectorAll('body *')).filter(e => {
                    const s = getComputedStyle(e);
                    const scrolls = (e.scrollWidth > e.clientWidth + 1 && /auto|scroll/.test(s.overflowX))
                        || (e.scrollHeight > e.clientHeight + 1 && /auto|scroll/.test(s.overflowY));
                    const named = e.tabIndex >= 0 && e.getAttribute('aria-label');
                    // or it scrolls as the focus moves through what it holds (the tabs, a table of buttons)
                    const keys = e.querySelector('a[href], button, input, select, [tabindex="0"]');
                    return scrolls && e.offsetParent !== null && !named && !keys;
                }).map(e => e.tagName + '.' + e.className)"""
            )
            assert unreachable == [], (name, unreachable)
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
