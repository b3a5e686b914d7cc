"""An app for the gunicorn test of versions and users (``tests.apps.versions_app:app``).

Its version is ``APP_VERSION``; its user is the ``X-User`` header (as flask-login's
``current_user.get_id()`` would be); ``MONITORING_DB`` names the history file.
"""

import os

from flask import Flask, request

from otel_monitor import Monitor

app = Flask("versions_app")


@app.get("/work/<int:n>")
def work(n: int):
    return {"n": n, "pid": os.getpid()}


monitor = Monitor(
    app,
    service_version=os.environ["APP_VERSION"],
    enduser_id=lambda: request.headers.get("X-User"),
    system_metrics=False,
)
