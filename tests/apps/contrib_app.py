"""Two roles of one service for the contrib-instrumentation tests (gunicorn: tests.apps.contrib_app:app).

Instrumented at import, before the monitor exists, as users do: RequestsInstrumentor, SQLite3Instrumentor,
SQLAlchemyInstrumentor, and a tracer taken with trace.get_tracer(__name__). ``/a`` calls the peer's
``/b/<n>`` (PEER_URL) with requests; ``/b/<n>`` queries sqlite3 and SQLAlchemy inside a manual span.
"""

import os
import sqlite3

import requests
import sqlalchemy
from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

from otel_monitor import Monitor

RequestsInstrumentor().instrument()
SQLite3Instrumentor().instrument()
tracer = trace.get_tracer(__name__)
engine = sqlalchemy.create_engine("sqlite://")
SQLAlchemyInstrumentor().instrument(engine=engine)

app = Flask("contrib_app")


@app.get("/a")
def a():
    answer = requests.get(os.environ["PEER_URL"] + "/b/7", timeout=10)
    return {"peer": answer.json()}


@app.get("/b/<int:n>")
def b(n: int):
    with tracer.start_as_current_span("manual-work"):
        connection = sqlite3.connect(":memory:")
        value = connection.execute("select ?", (n,)).fetchone()[0]
        connection.close()
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    return {"n": value, "pid": os.getpid()}


monitor = Monitor(app)
