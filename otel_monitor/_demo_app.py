"""The built-in demo app of ``otel-monitor demo`` (a copy of the checkout's ``examples/app.py``).

Its endpoints are the ones :data:`otel_monitor._demo.TRAFFIC_MIX` exercises: fast, templated,
slow, failing and POST routes, plus two custom metrics.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

__all__ = ["create_app"]

USERS = {i: {"id": i, "name": f"user{i}", "email": f"user{i}@example.com"} for i in range(1, 51)}


def create_app(**monitor_settings: Any) -> Any:
    """A small monitored Flask API; keyword arguments are ``Monitor`` settings."""
    from flask import Flask, abort, jsonify, redirect, request

    from .monitor import Monitor

    app = Flask("otel_monitor_demo")

    @app.get("/")
    def index():
        return jsonify(service="otel_monitor_demo", endpoints=["/api/users", "/api/users/<id>", "/api/slow",
                                                               "/api/error", "/api/orders", "/metrics"])

    @app.get("/api/users")
    def list_users():
        limit = request.args.get("limit", default=10, type=int)
        return jsonify(list(USERS.values())[:max(0, min(limit, 50))])

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
    orders_created = monitor.counter("shop.orders.created", "Orders created", unit="{order}")
    monitor.gauge("shop.users.registered", "Registered users", callback=lambda: len(USERS), unit="{user}")

    @app.get("/dashboard")
    def dashboard():
        """The built-in dashboard, also at /dashboard (as in examples/app.py)."""
        return redirect(monitor.settings.analytics_prefix.rstrip("/") + "/")

    return app
