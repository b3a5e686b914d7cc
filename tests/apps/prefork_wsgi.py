"""A plain WSGI app wrapped with otel_monitor.wrap(), for the pre-fork server tests."""

import otel_monitor


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = otel_monitor.wrap(application, service_name="prefork-wsgi")
