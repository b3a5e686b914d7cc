"""A tiny Flask app for the ``otel-monitor run`` tests; no monitoring code unless asked.

HELLO_SELF_MONITOR=1      the app calls Monitor(app) itself (double instrumentation test)
HELLO_METRICS_PATH=/x     app.config["OTEL_MONITOR_METRICS_PATH"] set *after* construction
HELLO_PORT=5000           ``python hello_app.py`` serves on 127.0.0.1:HELLO_PORT
"""

import os

from flask import Flask

app = Flask("hello_app")


@app.get("/hello/<name>")
def hello(name):
    return {"hello": name}


@app.get("/fail")
def fail():
    raise RuntimeError("hello_app fails on purpose")


if os.environ.get("HELLO_METRICS_PATH"):
    app.config["OTEL_MONITOR_METRICS_PATH"] = os.environ["HELLO_METRICS_PATH"]

if os.environ.get("HELLO_SELF_MONITOR") == "1":
    from otel_monitor import Monitor

    Monitor(app)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("HELLO_PORT", "5000")), threaded=True)
