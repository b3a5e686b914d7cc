"""The dashboard's ES modules in a real headless Chromium (PyPI ``playwright``, Debian's
``/usr/bin/chromium``): the page, under its own Content-Security-Policy, imports every module
from the static route (module scripts need a JavaScript type under ``nosniff``, and each module
pulls in its siblings), and the functions answer in the browser as they do under Node."""

from __future__ import annotations

import shutil
import threading
from types import SimpleNamespace

import pytest

from otel_monitor.analytics.dashboard import STATIC_DIR

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)", allow_module_level=True)

PREFIX = "/otel-monitor"
MODULES = sorted(p.name for p in (STATIC_DIR / "js").glob("*.js"))


@pytest.fixture(scope="module")
def server():
    """The dashboard's routes alone (auth off) on a loopback port, in a thread."""
    from flask import Blueprint, Flask, jsonify
    from werkzeug.serving import make_server

    from otel_monitor.analytics.dashboard import register_dashboard

    app = Flask("dashboard_modules")
    bp = Blueprint("analytics", __name__, url_prefix=PREFIX)
    bp.add_url_rule("/dashboard", "dashboards", lambda: jsonify(dashboards=[]))
    settings = SimpleNamespace(
        analytics_db=None,
        service_name="modules",
        analytics_slow_ms=500,
        analytics_username=None,
        dashboard_refresh_s=30,
    )
    register_dashboard(bp, SimpleNamespace(enabled=False, token=None), settings, None)
    app.register_blueprint(bp)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            # The page's own script fetches an API this server does not have (404s): only what
            # concerns the modules counts, a module failing to load or a CSP refusal.
            problems: list[str] = []
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error"
                    and ("/static/js/" in m.location.get("url", "") or "Content Security" in m.text)
                    else None
                ),
            )
            page.on(
                "response",
                lambda r: (
                    problems.append(f"{r.status} {r.url}") if "/static/js/" in r.url and r.status != 200 else None
                ),
            )
            response = page.goto(server + PREFIX + "/")
            assert response is not None and response.status == 200
            assert "script-src 'self'" in response.headers["content-security-policy"]
            page.problems = problems  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


@pytest.mark.parametrize("name", MODULES)
def test_the_page_imports_each_module_under_its_csp(page, name):
    exported = page.evaluate(
        "async (url) => { const m = await import(url); return Object.keys(m).sort(); }",
        f"{PREFIX}/static/js/{name}",
    )
    assert exported, name
    assert page.problems == []


def test_the_functions_answer_in_chromium_as_under_node(page):
    results = page.evaluate(
        """async (base) => {
          const f = await import(base + "format.js");
          const s = await import(base + "scale.js");
          const series = await import(base + "series.js");
          const u = await import(base + "urls.js");
          const rows = [{ route: "/b", method: "GET", count: 5 }, { route: "/a", method: "POST", count: 5 },
                        { route: "/a", method: "GET", count: 5 }];
          return {
            ms: [f.fmtMs(999.6), f.fmtMs(12.34), f.fmtMs(null)],
            count: [f.fmtCount(123456), f.fmtCount(9999)],
            bytes: f.fmtBytes(1536),
            step: s.niceStep(10, 4),
            sorted: rows.sort(series.compare("count", "desc")).map((r) => r.method + " " + r.route),
            safe: [u.safeHttpUrl("javascript:alert(1)", location.href), u.safeHttpUrl("/x", "http://127.0.0.1:1/")],
          };
        }""",
        f"{PREFIX}/static/js/",
    )
    assert results == {
        "ms": ["1.00 s", "12.3 ms", "—"],
        "count": ["123.5 k", "9,999"],
        "bytes": "1.5 kB",
        "step": 2.5,
        "sorted": ["GET /b", "POST /a", "GET /a"],
        "safe": [None, "http://127.0.0.1:1/x"],
    }
