"""The seed application: a small Flask API on port 8000 with monitoring in one line.

Run it:
    python examples/app.py                      # serves on 127.0.0.1:8000
    python examples/app.py --traffic 20         # ... and sends 20 s of synthetic traffic

Then open http://127.0.0.1:8000/metrics (Prometheus) and the analytics URLs it prints.
Configuration comes from the environment (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from flask import Flask, abort, jsonify, redirect, request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind

from otel_monitor import Monitor

USERS = {i: {"id": i, "name": f"user{i}", "email": f"user{i}@example.com"} for i in range(1, 51)}
STOCK = {"book": 12, "pen": 40, "lamp": 0}


class Database:
    """An in-memory SQLite database of the users: the demo's database child span is a real query."""

    def __init__(self) -> None:
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:  # one per thread: sqlite3 connections are not shared across threads
            conn = self._local.conn = sqlite3.connect(":memory:")
            conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
            conn.executemany("INSERT INTO users VALUES (:id, :name, :email)", USERS.values())
            conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, product TEXT, qty INTEGER)")
        return conn


def create_app(**monitor_settings) -> Flask:
    app = Flask("example_app")

    @app.get("/")
    def index():
        return jsonify(
            service="example_app",
            endpoints=[
                "/api/users",
                "/api/users/<id>",
                "/api/inventory/<product>",
                "/api/slow",
                "/api/error",
                "/api/orders",
                "/metrics",
            ],
        )

    @app.get("/api/users")
    def list_users():
        limit = request.args.get("limit", default=10, type=int)
        return jsonify(list(USERS.values())[: max(0, min(limit, 50))])

    db = Database()

    @app.get("/api/users/<int:user_id>")
    def get_user(user_id: int):
        query = "SELECT id, name, email FROM users WHERE id = ?"
        # A database client span as the semantic conventions describe it (a contrib
        # instrumentation such as opentelemetry-instrumentation-sqlite3 makes the same).
        with monitor.tracer.start_as_current_span(
            "SELECT users",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "sqlite", "db.operation.name": "SELECT", "db.query.text": query},
        ):
            row = db.connection().execute(query, (user_id,)).fetchone()
        if row is None:
            abort(404)
        return jsonify(dict(zip(("id", "name", "email"), row, strict=True)))

    @app.get("/api/inventory/<product>")
    def inventory(product: str):
        if product not in STOCK:
            abort(404)
        delay = float(app.config.get("INVENTORY_DELAY_S") or 0)
        if delay:  # the demo's incident: the inventory service answers late
            time.sleep(delay)
        return jsonify(product=product, stock=STOCK[product])

    @app.post("/api/orders")
    def create_order():
        order = request.get_json(silent=True) or {}
        product = str(order.get("product", "unknown"))[:32]
        stock = _check_stock(product)
        if stock == 0:
            raise LookupError(f"{product!r} is out of stock")
        query = "INSERT INTO orders (product, qty) VALUES (?, ?)"
        with monitor.tracer.start_as_current_span(
            "INSERT orders",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "sqlite", "db.operation.name": "INSERT", "db.query.text": query},
        ):
            db.connection().execute(query, (product, int(order.get("qty") or 1)))
        orders_created.add(1, {"product": product})
        return jsonify(id=random.randint(1000, 9999), **order), 201

    def _check_stock(product: str) -> int | None:
        """An outgoing HTTP call (to this app's inventory route), with its client span and trace context."""
        base = app.config.get("INVENTORY_URL")
        if not base:  # no server to call (the Flask test client): the local table answers
            return STOCK.get(product)
        url = f"{base}/api/inventory/{urllib.parse.quote(product, safe='')}"
        with monitor.tracer.start_as_current_span(
            "GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET", "url.full": url}
        ) as span:
            headers: dict[str, str] = {}
            inject(headers)
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
                    span.set_attribute("http.response.status_code", response.status)
                    return int(json.loads(response.read())["stock"])
            except urllib.error.HTTPError as exc:
                span.set_attribute("http.response.status_code", exc.code)
                return None

    @app.get("/api/slow")
    def slow():
        # Past the analytics' slow threshold (500 ms), so the Traces tab shows it as slow; its
        # profile (the flame graph under the trace, and the endpoint's) points at _build_report.
        return jsonify(status=_build_report())

    def _build_report() -> str:
        time.sleep(float(os.environ.get("EXAMPLE_SLOW_SECONDS", "0.6")))  # where the time goes
        return "finally"

    @app.get("/api/error")
    def error():
        return jsonify(charged=_charge_card(request.args.get("card", "4242")))

    def _charge_card(card: str) -> bool:
        # The failing call gets its own client span: the exception is recorded on it, and the trace
        # shows where the time went before the request failed.
        with monitor.tracer.start_as_current_span(
            "POST /v1/charges",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "POST", "server.address": "payments.invalid", "server.port": 443},
        ):
            time.sleep(0.002)
            raise RuntimeError(f"payment gateway refused card ending {card[-4:]} (this endpoint fails on purpose)")

    def signed_in_user() -> str | None:
        # Who is signed in: with flask-login, current_user.get_id(). The demo's traffic says it in a header.
        return request.headers.get("X-Demo-User")

    monitor = Monitor(
        app, enduser_id=signed_in_user, **{"analytics_prefix": "/professional-analytics", **monitor_settings}
    )
    # Custom metrics in one line each.
    orders_created = monitor.counter("shop.orders.created", "Orders created", unit="{order}")
    monitor.gauge("shop.users.registered", "Registered users", callback=lambda: len(USERS), unit="{user}")

    @app.get("/dashboard")
    def dashboard():
        """The built-in dashboard, also at /dashboard (as in the seed)."""
        return redirect(monitor.settings.analytics_prefix.rstrip("/") + "/")

    return app


app = create_app()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--traffic",
        type=float,
        default=0,
        metavar="SECONDS",
        help="send synthetic traffic for this many seconds (bounded), then keep serving",
    )
    args = parser.parse_args(argv)
    from otel_monitor.cli._demo import serve

    app.config["INVENTORY_URL"] = f"http://{args.host}:{args.port}"

    serve(app, args.host, args.port, traffic_seconds=args.traffic)


if __name__ == "__main__":
    main()
