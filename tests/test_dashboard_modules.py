"""The dashboard's ES modules (``static/js/*.js``) as the server ships them: served from the
static route with a JavaScript type a module script accepts under ``nosniff``, nothing else of
``static/js`` served, modules that import each other only by relative path, and no HTML sinks.
Their behaviour is specified in ``tests/js/*.test.mjs`` (``node --test``, run by scripts/test.sh)."""

from __future__ import annotations

import re

import pytest

from otel_monitor.analytics.dashboard import STATIC_DIR
from otel_monitor.testing import closing_client

PREFIX = "/otel-monitor"
MODULES = sorted(p.name for p in (STATIC_DIR / "js").glob("*.js"))
IMPORT = re.compile(r"^\s*(?:import|export)\b[^;]*?\bfrom\s+[\"']([^\"']+)[\"']", re.M)


@pytest.fixture
def client(monitors):
    app, monitor = monitors.app(analytics_username="admin", analytics_password="correct horse battery staple")
    monitor.pipeline.scheduler.stop()
    return closing_client(app)


def test_the_modules_are_there():
    assert {"format.js", "scale.js", "series.js", "urls.js", "windows.js"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_is_served_as_javascript_without_credentials(client, name):
    response = client.get(f"{PREFIX}/static/js/{name}")
    assert response.status_code == 200
    # A module script is refused under nosniff unless its type is a JavaScript MIME type.
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.get_data() == (STATIC_DIR / "js" / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "js/package.json",  # Node's marker for tests/js, not a page asset
        "js",
        "js/",
        "js/../dashboard.py",
        "js/%2e%2e/dashboard.py",
        "js/..%2f..%2fdashboard.py",
        "JS/format.js",
        "js/format.JS",
        "js/nonexistent.js",
    ],
)
def test_nothing_else_under_static_js_is_served(client, path):
    response = client.get(f"{PREFIX}/static/{path}", follow_redirects=True)
    assert response.status_code == 404, (path, response.status_code)


@pytest.mark.parametrize("name", MODULES)
def test_modules_import_only_sibling_modules_by_relative_path(name):
    # Browsers cannot resolve bare specifiers ("lodash") without an import map, and anything
    # else would leave 'self' (the CSP) or need a build step.
    source = (STATIC_DIR / "js" / name).read_text()
    for specifier in IMPORT.findall(source):
        assert re.fullmatch(r"\./[a-z]+\.js", specifier), (name, specifier)
        assert (STATIC_DIR / "js" / specifier[2:]).is_file(), (name, specifier)


@pytest.mark.parametrize("name", MODULES)
def test_modules_contain_no_html_sinks_or_foreign_urls(name):
    source = (STATIC_DIR / "js" / name).read_text()
    code = re.sub(r"^\s*//.*$", "", re.sub(r"/\*.*?\*/", "", source, flags=re.S), flags=re.M)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, (name, sink)
    assert not re.search(r"https?://", code), name
    # The modules are pure: the DOM belongs to the views.
    assert not re.search(r"\b(document|window)\.", code), name


# -- the page's own modules: dashboard.js (the entry), js/ui/ (DOM, API, charts, router), js/views/ --

PAGE_MODULES = ["dashboard.js"] + sorted(
    p.relative_to(STATIC_DIR).as_posix() for d in ("ui", "views") for p in (STATIC_DIR / "js" / d).glob("*.js")
)


def _imports(name: str) -> list[str]:
    """The files (relative to static/) that module `name` imports."""
    base = (STATIC_DIR / name).parent
    found = []
    for specifier in IMPORT.findall((STATIC_DIR / name).read_text()):
        assert re.fullmatch(r"(\./|\.\./)+[a-z/]+\.js", specifier), (name, specifier)
        found.append((base / specifier).resolve().relative_to(STATIC_DIR.resolve()).as_posix())
    return found


def test_there_is_one_module_per_view():
    views = {p.stem for p in (STATIC_DIR / "js" / "views").glob("*.js")}
    assert {"overview", "endpoints", "system", "traces", "trace", "errors", "custom", "links"} <= views


@pytest.mark.parametrize("name", PAGE_MODULES)
def test_page_modules_import_only_shipped_modules_by_relative_path(name):
    for target in _imports(name):
        assert target.startswith("js/") and (STATIC_DIR / target).is_file(), (name, target)


def test_every_module_is_reachable_from_the_entry_module():
    # A module nothing imports is dead code the page still ships.
    seen: set[str] = set()
    todo = ["dashboard.js"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(name))
    shipped = {p.relative_to(STATIC_DIR).as_posix() for p in (STATIC_DIR / "js").rglob("*.js")}
    assert shipped - seen == set()


@pytest.mark.parametrize("name", [m for m in PAGE_MODULES if m != "dashboard.js"])
def test_page_modules_are_served_as_javascript_under_the_pages_version(client, name):
    page = client.get(PREFIX + "/", headers={"Authorization": "Basic YWRtaW46Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ=="})
    version = re.search(rf"{PREFIX}/static/([0-9a-f]{{12}})/dashboard\.js", page.get_data(as_text=True)).group(1)
    response = client.get(f"{PREFIX}/static/{version}/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.get_data() == (STATIC_DIR / name).read_bytes()


def test_the_page_preloads_exactly_the_entry_modules_imports(client):
    # <link rel="modulepreload"> fetches the whole graph at once; a module missing from the list
    # still loads (one import level later), one listed but gone would be a 404 on every page.
    page = client.get(PREFIX + "/", headers={"Authorization": "Basic YWRtaW46Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ=="})
    html = page.get_data(as_text=True)
    preloaded = re.findall(rf'<link rel="modulepreload" href="{PREFIX}/static/[0-9a-f]{{12}}/(js/[a-z/]+\.js)">', html)
    shipped = {p.relative_to(STATIC_DIR).as_posix() for p in (STATIC_DIR / "js").rglob("*.js")}
    assert sorted(preloaded) == sorted(shipped)
