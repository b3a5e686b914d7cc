"""Helpers for testing code that uses otel_monitor (and for our own tests).

telemetry = Telemetry(monitor)
client.get("/")
assert telemetry.spans()[0].name == "GET /"
assert telemetry.points("http.server.request.duration")[0].count == 1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .metrics._metrics_data import iter_metrics

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient
    from opentelemetry.sdk.metrics.export import Metric
    from opentelemetry.sdk.trace import ReadableSpan

    from .monitor import Monitor
    from .telemetry.pipeline import Pipeline

__all__ = ["Telemetry"]


class Telemetry:
    """Collects the spans and metrics of one monitor in memory."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.exporter = InMemorySpanExporter()
        provider = monitor.tracer_provider
        if provider is None:
            raise AttributeError("Telemetry: the monitor has no pipeline (not attached to an app, or disabled)")
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        from .request._request_path import finish_unclosed

        pipeline = self.monitor.pipeline
        if pipeline is not None:
            finish_unclosed(pipeline.active)  # responses never closed end here at the latest
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()

    def metrics(self) -> dict[str, Metric]:
        """Metric name -> the SDK ``Metric`` (this process, cumulative)."""
        data = self._pipeline().reader.snapshot()
        return {metric.name: metric for metric in iter_metrics(data)}

    def _pipeline(self) -> Pipeline:
        pipeline = self.monitor.pipeline
        if pipeline is None:
            raise AttributeError("Telemetry: the monitor has no pipeline (not attached to an app, or disabled)")
        return pipeline

    def points(self, name: str) -> list[Any]:
        """The SDK data points of ``name`` (number, histogram, ... points: their fields differ by kind)."""
        metric = self.metrics().get(name)
        return list(metric.data.data_points) if metric is not None else []

    def point(self, name: str, **attributes: object) -> Any:
        """The one data point of ``name`` whose attributes include ``attributes``.

        ``attributes`` are OpenTelemetry attribute names, e.g. ``**{"http.route": "/"}``.
        """
        matches = [p for p in self.points(name) if all(p.attributes.get(k) == v for k, v in attributes.items())]
        if len(matches) != 1:
            raise AssertionError(
                f"{len(matches)} points of {name} match {attributes}: {[dict(p.attributes) for p in self.points(name)]}"
            )
        return matches[0]


def closing_client(app: Flask) -> FlaskClient:
    """A Flask test client that closes each response, as a real WSGI server does.

    Werkzeug's test client calls the body's ``close()`` only when you close the response; the
    request's span and duration end there (PEP 3333). An unclosed response is recorded when it is
    garbage-collected instead; this client makes the timing deterministic.
    """
    from flask.testing import FlaskClient
    from werkzeug.test import TestResponse

    class _ClosingClient(FlaskClient):
        def open(self, *args: Any, **kwargs: Any) -> TestResponse:
            kwargs.setdefault("buffered", True)
            return super().open(*args, **kwargs)

    return _ClosingClient(app, app.response_class, use_cookies=True)
