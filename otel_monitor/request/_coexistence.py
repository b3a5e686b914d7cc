"""One SERVER span per request, whatever else instruments the Flask app.

``FlaskInstrumentor`` (by hand, in either order, or from ``opentelemetry-instrument``) and our
middleware would each record every request: two spans from two pipelines, two
``http.server.active_requests`` families on ``/metrics`` (promtool rejects them) and latency in two
units. The ``flask_instrumentation`` setting picks the one that records; the other is taken off
(or kept off) the app, and we say so once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flask import Flask

_logger = logging.getLogger("otel_monitor")
_said: set[str] = set()
_K = TypeVar("_K")
_F = TypeVar("_F")

#: FlaskInstrumentor's own marker: it refuses to instrument an app that has it set
_FI_MARKER = "_is_instrumented_by_opentelemetry"


def contrib_instrumented(app: Flask) -> bool:
    """True when opentelemetry-instrumentation-flask already records this app's requests."""
    return bool(getattr(app, _FI_MARKER, False)) and hasattr(app, "_original_wsgi_app")


def _say_once(key: str, message: str, *args: object) -> None:
    if key not in _said:
        _said.add(key)
        _logger.warning(message, *args)


def claim_for_middleware(app: Flask) -> None:
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


def _remove_flask_instrumentor(app: Flask) -> None:
    """What ``FlaskInstrumentor.uninstrument_app`` does, also for the distro's ``_InstrumentedFlask``
    instances (their hooks are closures the upstream function cannot find)."""
    instrumented: Any = app  # FlaskInstrumentor's attributes on the app: no type declares them
    app.wsgi_app = instrumented._original_wsgi_app  # type: ignore[method-assign]
    del instrumented._original_wsgi_app
    _drop_instrumentor_hooks(app.before_request_funcs)
    _drop_instrumentor_hooks(app.teardown_request_funcs)
    setattr(app, _FI_MARKER, False)


def _drop_instrumentor_hooks(registry: dict[_K, list[_F]]) -> None:
    for key, functions in registry.items():
        registry[key] = [f for f in functions if not _from_flask_instrumentor(f)]


def _from_flask_instrumentor(function: object) -> bool:
    return (getattr(function, "__module__", "") or "").startswith("opentelemetry.instrumentation.flask")
