"""One SERVER span per request, whatever else instruments the Flask app.

``FlaskInstrumentor`` (by hand, in either order, or from ``opentelemetry-instrument``) and our
middleware would each record every request: two spans from two pipelines, two
``http.server.active_requests`` families on ``/metrics`` (promtool rejects them) and latency in two
units. The ``flask_instrumentation`` setting picks the one that records; the other is taken off
(or kept off) the app, and we say so once.
"""

from __future__ import annotations

import logging
from typing import Any

_logger = logging.getLogger("otel_monitor")
_said: set[str] = set()

#: FlaskInstrumentor's own marker: it refuses to instrument an app that has it set
_FI_MARKER = "_is_instrumented_by_opentelemetry"


def contrib_instrumented(app: Any) -> bool:
    """True when opentelemetry-instrumentation-flask already records this app's requests."""
    return bool(getattr(app, _FI_MARKER, False)) and hasattr(app, "_original_wsgi_app")


def _say_once(key: str, message: str, *args: Any) -> None:
    if key not in _said:
        _said.add(key)
        _logger.warning(message, *args)


def claim_for_middleware(app: Any) -> None:
    """Our middleware records the app: remove FlaskInstrumentor from it and keep it from coming back."""
    if contrib_instrumented(app):
        _remove_flask_instrumentor(app)
        _say_once(
            "removed",
            "otel_monitor: FlaskInstrumentor was instrumenting Flask app %r (by hand or opentelemetry-instrument); "
            "otel_monitor's middleware now records its requests, once. To keep FlaskInstrumentor instead, "
            "set flask_instrumentation=contrib (OTEL_MONITOR_FLASK_INSTRUMENTATION=contrib)",
            getattr(app, "name", app),
        )
    # A later FlaskInstrumentor().instrument_app(app) then logs "already instrumented" and does nothing.
    setattr(app, _FI_MARKER, True)


def _remove_flask_instrumentor(app: Any) -> None:
    """What ``FlaskInstrumentor.uninstrument_app`` does, also for the distro's ``_InstrumentedFlask``
    instances (their hooks are closures the upstream function cannot find)."""
    app.wsgi_app = app._original_wsgi_app
    del app._original_wsgi_app
    for registry in (app.before_request_funcs, app.teardown_request_funcs):
        for key, functions in registry.items():
            registry[key] = [f for f in functions if not _from_flask_instrumentor(f)]
    setattr(app, _FI_MARKER, False)


def _from_flask_instrumentor(function: Any) -> bool:
    return (getattr(function, "__module__", "") or "").startswith("opentelemetry.instrumentation.flask")
