"""The flame graphs in a real headless Chromium (PyPI ``playwright``, Debian's ``/usr/bin/chromium``)
at 1366 and 390 px: a slow request's trace and its endpoint show where the time went, how many
samples that rests on, every frame is reachable by keyboard and zooms with Enter, and a hostile
function name stays text."""

from __future__ import annotations

import shutil
import threading
import time
import types
import urllib.parse
import urllib.request

import pytest
from flask import Flask

from otel_monitor import Monitor

from .apps.profiled_app import add_routes

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)", allow_module_level=True)

PREFIX = "/otel-monitor"
HOSTILE = "<img src=x onerror=alert(3)>"


def _hostile_helper() -> None:
    time.sleep(0.3)


# A function whose name is markup, as a profile would show it.
hostile_helper = types.FunctionType(
    _hostile_helper.__code__.replace(co_name=HOSTILE, co_qualname=HOSTILE), _hostile_helper.__globals__
)


@pytest.fixture(scope="module")
def server():
    """The profiled app with the dashboard (auth off, loopback only) served by werkzeug in a thread."""
    from werkzeug.serving import make_server

    app = add_routes(Flask("profiled_browser"))

    @app.get("/hostile")
    def hostile():
        hostile_helper()
        return "ok"

    monitor = Monitor(app, analytics_auth=False, analytics_slow_ms=200, system_metrics=False)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{http.server_port}"
    for path in ("/sleepy", "/hostile"):
        urllib.request.urlopen(base + path, timeout=60).read()
    yield base, monitor
    http.shutdown()
    thread.join(10)
    monitor.shutdown(timeout=2)


def trace_id_of(base: str, route: str) -> str:
    import json

    with urllib.request.urlopen(f"{base}{PREFIX}/traces?kind=slow", timeout=30) as response:
        traces = json.loads(response.read())["traces"]
    return next(t["trace_id"] for t in traces if t["route"] == route)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(params=[1366, 390], ids=["1366px", "390px"])
def page(request, browser):
    context = browser.new_context(viewport={"width": request.param, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


def fits_the_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_slow_trace_shows_a_flame_graph_naming_the_helper_with_its_samples(server, page):
    base, monitor = server
    page.goto(f"{base}{PREFIX}/#traces/{trace_id_of(base, '/sleepy')}")
    card = page.locator("#trace-detail .flame-card")
    card.wait_for()
    assert "samples, one every 10 ms" in card.locator(".flame-meta").inner_text()
    assert "sleepy_helper (" in card.locator(".flame-hot").inner_text()
    node = card.locator(".flame-node", has_text="sleepy_helper")
    node.first.wait_for()
    assert "profiled_app.py:" in node.first.get_attribute("aria-label")
    assert fits_the_width(page)
    # Keyboard: the frame is a button; Enter zooms into it (it then spans the whole width).
    node.first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#trace-detail .flame-node')]"
        ".some(b => b.textContent.startsWith('sleepy_helper') && parseFloat(b.style.width) === 100)"
    )
    assert "sleepy_helper" in card.locator(".flame-detail").inner_text()
    assert page.evaluate("document.activeElement.textContent").startswith("sleepy_helper")
    card.locator(".flame-reset").click()
    assert card.locator(".flame-detail").inner_text() == ""
    assert page.problems == []


def test_an_endpoint_shows_the_flame_graph_of_its_slow_requests(server, page):
    base, monitor = server
    page.goto(f"{base}{PREFIX}/#endpoints/" + urllib.parse.quote("GET /sleepy", safe=""))
    card = page.locator("#endpoint-detail .flame-card")
    deadline = time.monotonic() + 60
    while card.count() == 0 and time.monotonic() < deadline:  # folded on the profiler's next pass
        page.wait_for_timeout(500)
        page.locator("#refresh-button").click()
    card.wait_for()
    assert "1 slow request (window " in card.locator(".flame-meta").inner_text()
    card.locator(".flame-node", has_text="sleepy_helper").first.wait_for()  # drawn in the next frame
    assert fits_the_width(page)
    assert page.problems == []


def test_a_hostile_function_name_stays_text(server, page):
    base, monitor = server
    page.goto(f"{base}{PREFIX}/#traces/{trace_id_of(base, '/hostile')}")
    card = page.locator("#trace-detail .flame-card")
    card.wait_for()
    card.locator(".flame-node", has_text=HOSTILE).first.wait_for()
    assert HOSTILE in card.locator(".flame-hot").inner_text()
    assert page.locator("#trace-detail img").count() == 0
    assert page.problems == []
