"""The profiled app with a monitor, for gunicorn (``tests.apps.profiled_wsgi:app``)."""

import os

from flask import Flask

from otel_monitor import Monitor

from .profiled_app import add_routes

app = add_routes(Flask("profiled_app"))


@app.after_request
def worker_header(response):
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


monitor = Monitor(app, system_metrics=False)
