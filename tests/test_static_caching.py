"""The dashboard's CSS, JS and icon are cached by browsers: versioned URLs for a year, others revalidated."""

from __future__ import annotations

import hashlib
import re

import pytest

from otel_monitor.analytics.dashboard import STATIC_DIR, asset_version
from otel_monitor.testing import closing_client

from .conftest import build_app

PREFIX = "/otel-monitor"
TOKEN = "static-caching-token-abcdefghijkl"
NAMES = ("dashboard.css", "dashboard.js", "favicon.svg")
#: every file the static route serves (the dashboard's ES modules too): the version covers them all
SERVED = tuple(
    sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.suffix in (".js", ".css", ".svg"))
)


@pytest.fixture
def client():
    app, monitor = build_app(analytics_token=TOKEN)
    monitor.pipeline.scheduler.stop()
    yield closing_client(app)
    monitor.shutdown(timeout=2)


def linked_assets(client) -> dict[str, str]:
    """name -> URL of every static file the dashboard page and the login page link."""
    html = client.get(PREFIX + "/", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    html += client.get(PREFIX + "/login").get_data(as_text=True)
    return {m.group(2): m.group(0) for m in re.finditer(rf"{PREFIX}/static/([^/\"]+)/([\w.]+)", html)}


def test_the_pages_link_every_static_file_under_one_content_version(client):
    urls = linked_assets(client)
    assert set(urls) == set(NAMES)
    etags = {name: hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:32] for name in SERVED}
    expected = asset_version(etags)
    assert all(url == f"{PREFIX}/static/{expected}/{name}" for name, url in urls.items())


def test_the_version_changes_when_any_file_changes():
    etags = {name: "0" * 32 for name in NAMES}
    changed = {**etags, "dashboard.js": "1" * 32}
    assert asset_version(etags) != asset_version(changed)
    assert re.fullmatch(r"[0-9a-f]{12}", asset_version(etags))


@pytest.mark.parametrize("name", NAMES)
def test_a_versioned_static_url_is_cached_for_a_year_without_credentials(client, name):
    response = client.get(linked_assets(client)[name])
    assert response.status_code == 200
    assert response.get_data() == (STATIC_DIR / name).read_bytes()
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == '"' + hashlib.sha256(response.get_data()).hexdigest()[:32] + '"'
    assert response.headers["Last-Modified"]
    assert "Cookie" not in response.headers.get("Vary", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


@pytest.mark.parametrize("path", ["dashboard.js", "0123456789ab/dashboard.js"])
def test_an_unversioned_or_old_url_is_revalidated_and_answers_304_while_unchanged(client, path):
    response = client.get(f"{PREFIX}/static/{path}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    etag = response.headers["ETag"]
    again = client.get(f"{PREFIX}/static/{path}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["Cache-Control"] == "no-cache"
    since = client.get(f"{PREFIX}/static/{path}", headers={"If-Modified-Since": response.headers["Last-Modified"]})
    assert since.status_code == 304


@pytest.mark.parametrize(
    "path", ["./dashboard.js", "x/dashboard.js", "0123456789ab/x/dashboard.js", "ABCDEF012345/dashboard.js"]
)
def test_a_version_segment_that_is_not_a_content_version_is_404(client, path):
    response = client.get(f"{PREFIX}/static/{path}")
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"


def test_the_json_api_and_the_pages_stay_no_store(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/performance", "/", "/login"):
        response = client.get(PREFIX + path, headers=auth)
        assert response.headers["Cache-Control"] == "no-store", path
        assert "Cookie" in response.headers.get("Vary", ""), path


def test_a_module_imported_relative_to_the_versioned_script_is_served_under_that_version(client):
    # dashboard.js at static/<version>/dashboard.js imports "./js/format.js"
    version = linked_assets(client)["dashboard.js"].split("/")[-2]
    response = client.get(f"{PREFIX}/static/{version}/js/format.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in response.headers["Cache-Control"]
    assert client.get(f"{PREFIX}/static/{version}/js/no-such-module.js").status_code == 404
