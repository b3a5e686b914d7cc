"""The seed application: a small Flask API on port 8000 with monitoring in one line.

Run it:
    python examples/app.py                      # serves on 127.0.0.1:8000
    python examples/app.py --traffic 20         # ... and sends 20 s of synthetic traffic

Then open http://127.0.0.1:8000/metrics (Prometheus) and the analytics URLs it prints.
Configuration comes from the environment (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from flask import Flask, abort, jsonify, redirect, request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from otel_monitor import Monitor  # noqa: E402

USERS = {i: {"id": i, "name": f"user{i}", "email": f"user{i}@example.com"} for i in range(1, 51)}


def create_app(**monitor_settings) -> Flask:
    app = Flask("example_app")

    @app.get("/")
    def index():
        return jsonify(
            service="example_app",
            endpoints=["/api/users", "/api/users/<id>", "/api/slow", "/api/error", "/api/orders", "/metrics"],
        )

    @app.get("/api/users")
    def list_users():
        limit = request.args.get("limit", default=10, type=int)
        return jsonify(list(USERS.values())[: max(0, min(limit, 50))])

    @app.get("/api/users/<int:user_id>")
    def get_user(user_id: int):
        user = USERS.get(user_id)
        if user is None:
            abort(404)
        return jsonify(user)

    @app.post("/api/orders")
    def create_order():
        order = request.get_json(silent=True) or {}
        orders_created.add(1, {"product": str(order.get("product", "unknown"))[:32]})
        return jsonify(id=random.randint(1000, 9999), **order), 201

    @app.get("/api/slow")
    def slow():
        time.sleep(float(os.environ.get("EXAMPLE_SLOW_SECONDS", "0.15")))
        return jsonify(status="finally")

    @app.get("/api/error")
    def error():
        raise RuntimeError("this endpoint always fails (on purpose)")

    monitor = Monitor(app, **{"analytics_prefix": "/professional-analytics", **monitor_settings})
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
    from otel_monitor._demo import serve

    serve(app, args.host, args.port, traffic_seconds=args.traffic)


if __name__ == "__main__":
    main()
