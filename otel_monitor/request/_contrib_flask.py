"""``flask_instrumentation=contrib``: the upstream FlaskInstrumentor records requests, not our middleware.

For users who rely on its ``request_hook`` / ``response_hook`` / SQL commenter options or on exact
upstream behaviour. It is wired to this monitor's providers (fork-aware delegating ones) and to
the settings that apply (``excluded_urls``; ``/metrics`` is served before Flask and never traced).
An app the user already instrumented by hand (to pass hooks) is kept as it is.

What differs from our middleware, by design of the upstream package (see docs/opentelemetry.md):
metric names follow ``OTEL_SEMCONV_STABILITY_OPT_IN`` (by default the old ``http.server.duration``
in milliseconds; ``http`` gives ``http.server.request.duration`` in seconds, which the analytics
read), the span ends when the view returns (a streamed body is not timed), and query redaction,
header size guards and our cardinality bounds do not apply to its attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.util.types import Attributes

from ..telemetry._providers import DelegatingMeter, DelegatingTracer, RuntimeGetter
from ._coexistence import contrib_instrumented

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

    from ..settings import Settings


class _TracerProvider(otel_trace.TracerProvider):
    def __init__(self, target: RuntimeGetter) -> None:
        self._target = target

    def get_tracer(
        self, name: str, version: str | None = None, schema_url: str | None = None, attributes: Attributes = None
    ) -> otel_trace.Tracer:
        return DelegatingTracer(self._target, name, version, schema_url, attributes)


class _MeterProvider:
    def __init__(self, target: RuntimeGetter) -> None:
        self._target = target

    def get_meter(
        self, name: str, version: str | None = None, schema_url: str | None = None, attributes: Attributes = None
    ) -> otel_metrics.Meter:
        return DelegatingMeter(self._target, name, version, schema_url, attributes)


class MetricsEndpoint:
    """Serves the metrics path before the app (and FlaskInstrumentor) see the request."""

    def __init__(self, wsgi_app: WSGIApplication, metrics_path: str, metrics_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app
        self._path = metrics_path
        self._metrics_app = metrics_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self._path:
            return self._metrics_app(environ, start_response)
        return self.wsgi_app(environ, start_response)


def instrument(app: Flask, target: RuntimeGetter, settings: Settings, metrics_app: WSGIApplication | None) -> None:
    """Let FlaskInstrumentor record ``app`` into the pipeline ``target`` resolves to.

    ``metrics_app`` is None when the app already serves the metrics path: it is left to the app.
    """
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    if not contrib_instrumented(app):
        FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]  # the contrib package leaves it unannotated
            app,
            tracer_provider=_TracerProvider(target),
            meter_provider=_MeterProvider(target),
            excluded_urls=",".join(settings.excluded_urls) if settings.excluded_urls else None,
        )
    if metrics_app is not None:
        # the Flask way to add WSGI middleware (flask.Flask.wsgi_app's docstring)
        app.wsgi_app = MetricsEndpoint(app.wsgi_app, settings.metrics_path, metrics_app)  # type: ignore[method-assign]
