"""Any WSGI callable, no Flask: the same pipeline through otel_monitor.wrap().

python examples/wsgi_app.py            # serves on 127.0.0.1:8001, /metrics included
"""

from __future__ import annotations

import json
import os
import sys
from wsgiref.simple_server import make_server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

import otel_monitor


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        body, status = {"hello": "wsgi"}, "200 OK"
    elif path == "/fail":
        raise RuntimeError("failing on purpose")
    else:
        body, status = {"error": "not found"}, "404 Not Found"
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


application = otel_monitor.wrap(application, service_name="example_wsgi")

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8001"))
    print(f"serving on http://127.0.0.1:{port}/ (metrics: http://127.0.0.1:{port}/metrics)")
    make_server("127.0.0.1", port, application).serve_forever()
