"""The example app (examples/app.py) plus one hostile route, for the dashboard's browser test.

``GET /xss`` reports its route template as ``<script>alert(1)</script>`` (Werkzeug refuses such a
rule, so the view sets the template the way a plain WSGI app would), so the dashboard must show
that text as text. The analytics sample every ``DASHBOARD_TEST_SAMPLE_S`` seconds (default 1)
instead of 10, so that charts have points within seconds.

Run: ``python tests/dashboard_app.py --port 8123`` (the same options as examples/app.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import otel_monitor.analytics as analytics  # noqa: E402 - after the sys.path set-up above
from otel_monitor.request._request_path import ROUTE_KEY  # noqa: E402 - after the sys.path set-up above

XSS_ROUTE = "<script>alert(1)</script>"

# Read when the pipeline is set up (at create_app below), so set it first.
analytics.SAMPLE_INTERVAL_S = float(os.environ.get("DASHBOARD_TEST_SAMPLE_S", "1"))

_spec = importlib.util.spec_from_file_location("example_app", ROOT / "examples" / "app.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)  # type: ignore[union-attr]
app = example.app


@app.get("/xss")
def xss() -> str:
    from flask import request

    request.environ[ROUTE_KEY] = XSS_ROUTE
    return "ok"


XSS_ERROR = "<img src=x onerror=alert(3)>"


@app.get("/xss-fail")
def xss_fail() -> str:
    """Fails with hostile text in the exception message and a span name (the trace and error views)."""
    from otel_monitor.monitor import get_monitor

    with get_monitor(app).tracer.start_as_current_span(XSS_ERROR):
        raise ValueError(XSS_ERROR)


if __name__ == "__main__":
    example.app = app
    example.main()
