"""A small app for the pre-fork server tests (gunicorn imports it as tests.apps.prefork_app:app)."""

import os
import time

from flask import Flask, request
from prometheus_client import Counter

from otel_monitor import Monitor

app = Flask("prefork_app")
#: the app's own prometheus_client metric (the default registry), counted once per /work request
WORK_DONE = Counter("prefork_work_done", "Requests to /work, counted by the app itself")


@app.get("/work/<int:n>")
def work(n: int):
    WORK_DONE.inc()
    return {"n": n, "pid": os.getpid()}


@app.get("/pid")
def pid():
    """This worker's pid; ``?sleep=0.1`` holds the worker a moment (so that concurrent clients
    reach the other workers of servers that let one worker accept everything)."""
    time.sleep(min(float(request.args.get("sleep", 0)), 1.0))
    return str(os.getpid())


@app.get("/boom/<int:n>")
def boom(n: int):
    """Fails after a child span; the answer's header says which worker served it."""
    with monitor.tracer.start_as_current_span("step before failing"):
        pass
    raise LookupError(f"boom {n} in worker {os.getpid()}")


@app.after_request
def worker_header(response):
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


monitor = Monitor(app)
boot = monitor.counter("app.boot", "Counted once at import (in the master under --preload)")
boot.add(1)
