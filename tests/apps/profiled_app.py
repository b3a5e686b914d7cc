"""A Flask app whose slow endpoints spend their time in one named helper each (the profiler's
tests and benchmark): ``/sleepy`` sleeps in :func:`sleepy_helper`, ``/busy`` loops on the CPU in
:func:`busy_helper`, ``/fast`` answers at once. Under gunicorn: ``tests.apps.profiled_wsgi:app``."""

from __future__ import annotations

import os
import time

from flask import Flask

SLEEP_S = float(os.environ.get("PROFILED_SLEEP_S", "0.3"))


def sleepy_helper() -> str:
    time.sleep(SLEEP_S)  # the line the sleepy profile points at
    return "slept"


def busy_helper() -> int:
    # SLEEP_S of this thread's CPU time, not of the clock: on a machine too busy to run this process
    # for 300 ms of wall time, the loop still runs long enough for the profiler's samples
    deadline = time.thread_time() + SLEEP_S
    total = 0
    while time.thread_time() < deadline:  # the loop the busy profile points at
        total += 1
    return total


def add_routes(app: Flask) -> Flask:
    @app.get("/sleepy")
    def sleepy():
        return sleepy_helper()

    @app.get("/busy")
    def busy():
        return str(busy_helper() > 0)

    @app.get("/fast")
    def fast():
        return "fast"

    return app
