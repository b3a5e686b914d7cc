"""A small app for the pre-fork server tests (gunicorn imports it as tests.apps.prefork_app:app)."""

import os

from flask import Flask

from otel_monitor import Monitor

app = Flask("prefork_app")


@app.get("/work/<int:n>")
def work(n: int):
    return {"n": n, "pid": os.getpid()}


@app.get("/pid")
def pid():
    return str(os.getpid())


monitor = Monitor(app)
boot = monitor.counter("app.boot", "Counted once at import (in the master under --preload)")
boot.add(1)
