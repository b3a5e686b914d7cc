"""The benchmark app and the monitoring stacks wrapped around it.

Every stack is the same tiny Flask app (five routes; the benchmark request is
``GET /users/42``, whose view returns a small JSON object) with one monitoring
library attached the way its documentation says. Build one with
:func:`build_app`. Peers (stock OpenTelemetry, prometheus-flask-exporter,
Flask-MonitoringDashboard) are imported lazily, inside the builder of their
stack, so a missing peer only skips that stack: :class:`StackUnavailable`.

This module runs inside the benchmark virtualenv (``benchmarks/.venv``), in a
fresh process per stack: some peers keep process-wide state (a global
Prometheus registry, global OpenTelemetry providers, Flask-MonitoringDashboard's
module-level config), so two stacks never share a process.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: the peers and Flask are imported where they are used
    from flask import Flask, Response
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["STACKS", "DESCRIPTIONS", "StackUnavailable", "build_app", "closed_port_endpoint"]

#: The statuses the scrape benchmark hits on each of its extra routes.
SCRAPE_STATUSES = (200, 201, 400, 404, 500)


class StackUnavailable(Exception):
    """The stack cannot be built here (a peer is not installed): the row is skipped, with this reason."""


# -- the app ---------------------------------------------------------------------------------------


def make_flask_app(extra_routes: int = 0) -> Flask:
    """The app under test: ~5 routes, plus ``extra_routes`` routes ``/r<i>/<int:status>`` for the scrape test."""
    from flask import Flask, jsonify, render_template, request
    from jinja2 import DictLoader

    app = Flask("bench_app")
    app.jinja_loader = DictLoader({"orders.html": ORDERS_TEMPLATE})  # a template file, as an app has

    @app.get("/")
    def index() -> str:
        return "hello"

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/users")
    def users() -> Response:
        return jsonify([{"id": i, "name": f"user{i}"} for i in range(3)])

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> Response:
        return jsonify(id=user_id, name=f"user{user_id}", active=True)

    orders = _orders_db()

    @app.get("/orders")
    def order_list() -> str:
        # the "realistic view": a SQLite query and a Jinja template (about 8× the JSON view's time)
        with orders.lock:
            rows = orders.conn.execute(
                "SELECT o.id, c.name, o.total, o.status FROM orders o JOIN customers c ON c.id = o.customer "
                "WHERE o.status = ? ORDER BY o.id DESC LIMIT 25",
                ("paid",),
            ).fetchall()
        return render_template("orders.html", rows=rows, title="Paid orders")

    @app.post("/items")
    def create_item() -> tuple[dict[str, Any], int]:
        data = request.get_json(silent=True) or {}
        return {"created": data.get("name", "")}, 201

    def make_status_view(i: int) -> Callable[..., Any]:
        def view(status: int) -> tuple[str, int]:
            return "", status

        view.__name__ = f"route_{i:03d}"
        return view

    for i in range(extra_routes):
        app.add_url_rule(f"/r{i:03d}/<int:status>", view_func=make_status_view(i))

    return app


ORDERS_TEMPLATE = """<!doctype html><title>{{ title }}</title><h1>{{ title }}</h1>
<table>{% for id, name, total, status in rows %}
<tr class="{{ loop.cycle('odd', 'even') }}"><td>{{ id }}</td><td>{{ name|title }}</td>
<td>{{ '%.2f'|format(total) }}</td><td>{{ status|upper }}</td></tr>{% endfor %}</table>
<p>{{ rows|length }} orders</p>"""


class _OrdersDB:
    """An in-memory SQLite database of customers and orders (one per app; a lock for threaded servers)."""

    def __init__(self) -> None:
        import sqlite3
        import threading

        self.lock = threading.Lock()
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.conn.executescript(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, total REAL, status TEXT);"
        )
        self.conn.executemany("INSERT INTO customers VALUES (?, ?)", [(i, f"customer {i}") for i in range(50)])
        self.conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(i, i % 50, i * 1.25, ("paid", "open", "shipped")[i % 3]) for i in range(500)],
        )


def _orders_db() -> _OrdersDB:
    return _OrdersDB()


# -- stacks ----------------------------------------------------------------------------------------

# REVIEW HOOK (otel_monitor exporter wiring). Stock OpenTelemetry exports every sampled span to a
# no-op exporter through a BatchSpanProcessor. By default otel_monitor runs with its own defaults
# (no exporter configured), as asked in issue 8. Two ways to make both stacks pay for export alike:
#  * ``OTEL_MONITOR_EXTRA_KWARGS``: extra keyword arguments for every ``Monitor(app, ...)`` of the
#    in-process / HTTP / memory / scrape benchmarks (e.g. a testing exporter once the API is final);
#  * ``BENCH_OTEL_MONITOR_EXPORT=noop`` (``run.py --otel-monitor-export noop``): after ``Monitor(app)``,
#    add ``BatchSpanProcessor(NoopSpanExporter())`` to ``monitor.tracer_provider``, exactly as stock does.
#  * ``BENCH_OTEL_MONITOR_EXPORT=otlp`` (``run.py --otel-monitor-export otlp``): every stack that traces
#    exports its spans over OTLP/HTTP to the local sink at ``BENCH_OTLP_SINK`` (run.py serves it):
#    otel_monitor with ``traces_exporter="otlp"``, stock with the official ``OTLPSpanExporter``.
OTEL_MONITOR_EXTRA_KWARGS: dict[str, Any] = {}


def noop_span_exporter() -> SpanExporter:
    """A SpanExporter that accepts every batch and drops it: the cost of export without a collector."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class NoopSpanExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return NoopSpanExporter()


def _otlp_sink() -> str | None:
    """The local OTLP/HTTP sink's base URL in ``--otel-monitor-export otlp`` mode, else None."""
    if os.environ.get("BENCH_OTEL_MONITOR_EXPORT") != "otlp":
        return None
    return os.environ["BENCH_OTLP_SINK"]


def _monitor(app: Flask, **kwargs: Any) -> Flask:
    try:
        from otel_monitor import Monitor
    except ImportError as exc:
        raise StackUnavailable(f"otel_monitor is not importable ({exc})") from None
    if _otlp_sink() and "traces_exporter" not in kwargs:
        kwargs = {**kwargs, "traces_exporter": "otlp", "otlp_endpoint": _otlp_sink()}
    monitor = Monitor(app, **{**OTEL_MONITOR_EXTRA_KWARGS, **kwargs})
    if os.environ.get("BENCH_OTEL_MONITOR_EXPORT") == "noop" and "traces_exporter" not in kwargs:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        monitor.tracer_provider.add_span_processor(BatchSpanProcessor(noop_span_exporter()))
    return app


def _bare(app: Flask, exit_endpoint: str | None = None) -> Flask:
    return app


def _otel_monitor(app: Flask, exit_endpoint: str | None = None) -> Flask:
    if exit_endpoint:
        return _monitor(app, traces_exporter="otlp", metrics_exporter="otlp", otlp_endpoint=exit_endpoint)
    return _monitor(app)


def _otel_monitor_100(app: Flask, exit_endpoint: str | None = None) -> Flask:
    return _monitor(app, traces_sampler="always_on")


def _otel_monitor_100_official(app: Flask, exit_endpoint: str | None = None) -> Flask:
    """As otel_monitor_100, with the official OTLP encoder (the difference: otel_monitor.telemetry._otlp_encode)."""
    return _monitor(app, traces_sampler="always_on", otlp_traces_encoder="official")


def _otel_monitor_10(app: Flask, exit_endpoint: str | None = None) -> Flask:
    return _monitor(app, traces_sampler="traceidratio", traces_sampler_arg=0.1)


def _otel_monitor_off(app: Flask, exit_endpoint: str | None = None) -> Flask:
    return _monitor(app, traces_sampler="always_off")


def _otel_monitor_contrib(app: Flask, exit_endpoint: str | None = None) -> Flask:
    return _monitor(app, flask_instrumentation="contrib")


def _stock_otel(app: Flask, exit_endpoint: str | None = None) -> Flask:
    """The stock recipe: FlaskInstrumentor + SDK providers set globally + prometheus_client /metrics."""
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise StackUnavailable(f"stock OpenTelemetry packages missing ({exc})") from None

    resource = Resource.create({"service.name": "bench_app"})
    if exit_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        except ImportError as exc:
            raise StackUnavailable(f"opentelemetry-exporter-otlp-proto-http missing ({exc})") from None
        span_exporter: SpanExporter = OTLPSpanExporter(endpoint=exit_endpoint + "/v1/traces")
        readers: list[MetricReader] = [
            PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=exit_endpoint + "/v1/metrics"))
        ]
    else:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
        except ImportError as exc:
            raise StackUnavailable(f"opentelemetry-exporter-prometheus missing ({exc})") from None

        sink = _otlp_sink()
        if sink:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter(endpoint=sink + "/v1/traces")
        else:
            span_exporter = noop_span_exporter()
        readers = [PrometheusMetricReader()]

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call, unused-ignore]  # contrib's, unannotated

    if not exit_endpoint:
        # prometheus_client's documented way to add /metrics to a Flask app.
        from prometheus_client import make_wsgi_app
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app()})  # type: ignore[method-assign]
    return app


def _pfe(app: Flask, exit_endpoint: str | None = None) -> Flask:
    try:
        from prometheus_flask_exporter import PrometheusMetrics  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise StackUnavailable(f"prometheus-flask-exporter missing ({exc})") from None
    PrometheusMetrics(app)
    return app


def _fmd(app: Flask, exit_endpoint: str | None = None) -> Flask:
    """Flask-MonitoringDashboard with its defaults, except that its SQLite file lives in a temp dir."""
    try:
        import flask_monitoringdashboard as dashboard  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise StackUnavailable(f"flask-monitoringdashboard missing ({exc})") from None
    db_dir = os.environ.get("BENCH_FMD_DIR") or tempfile.mkdtemp(prefix="bench-fmd-")
    config_file = os.path.join(db_dir, "fmd.cfg")
    with open(config_file, "w") as fh:
        fh.write(f"[database]\nDATABASE=sqlite:///{os.path.join(db_dir, 'fmd.db')}\n")
    dashboard.config.init_from(file=config_file)
    dashboard.bind(app)
    return app


#: name -> builder(app, exit_endpoint=None). Order is the report's row order.
STACKS: dict[str, Callable[..., Any]] = {
    "bare": _bare,
    "otel_monitor": _otel_monitor,
    "otel_monitor_100": _otel_monitor_100,
    "otel_monitor_100_official": _otel_monitor_100_official,
    "otel_monitor_10": _otel_monitor_10,
    "otel_monitor_off": _otel_monitor_off,
    "otel_monitor_contrib": _otel_monitor_contrib,
    "stock_otel": _stock_otel,
    "pfe": _pfe,
    "fmd": _fmd,
}

DESCRIPTIONS: dict[str, str] = {
    "bare": "bare Flask (the limit)",
    "otel_monitor": "otel_monitor `Monitor(app)` (defaults)",
    "otel_monitor_100": "otel_monitor, traces 100 % (`always_on`)",
    "otel_monitor_100_official": "otel_monitor, traces 100 %, official OTLP encoder (`otlp_traces_encoder=official`)",
    "otel_monitor_10": "otel_monitor, traces 10 % (`traceidratio` 0.1)",
    "otel_monitor_off": "otel_monitor, traces off (`always_off`)",
    "otel_monitor_contrib": "otel_monitor with `flask_instrumentation=contrib` (FlaskInstrumentor records)",
    "stock_otel": "stock OpenTelemetry (FlaskInstrumentor + SDK + Prometheus reader)",
    "pfe": "prometheus-flask-exporter `PrometheusMetrics(app)`",
    "fmd": "Flask-MonitoringDashboard `dashboard.bind(app)`",
}

#: Stacks that serve a Prometheus /metrics endpoint (the scrape benchmark).
SCRAPE_STACKS = ("otel_monitor", "stock_otel", "pfe")
#: Stacks that can export over OTLP (the exit-time benchmark).
EXIT_STACKS = ("bare", "otel_monitor", "stock_otel")


def build_app(stack: str, extra_routes: int = 0, exit_endpoint: str | None = None) -> Flask:
    """The benchmark app with ``stack`` attached. Raises :class:`StackUnavailable` to skip."""
    if stack not in STACKS:
        raise KeyError(f"unknown stack {stack!r}; known: {', '.join(STACKS)}")
    try:
        import flask  # noqa: F401 - only whether it imports
    except ImportError as exc:
        raise StackUnavailable(f"Flask missing ({exc})") from None
    if stack in os.environ.get("BENCH_FAIL_STACKS", "").split(","):
        # fault injection for tests/test_benchmark_smoke.py: this stack's rows fail (not a skip)
        raise RuntimeError(f"{stack}: failure injected by BENCH_FAIL_STACKS")
    app: Flask = STACKS[stack](make_flask_app(extra_routes), exit_endpoint=exit_endpoint)
    return app


def closed_port_endpoint() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens (a collector that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
