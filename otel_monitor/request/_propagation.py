"""The propagator of ``OTEL_PROPAGATORS``: the same names, entry points and order as the SDK.

Inbound (the middleware) and outbound (the global textmap that contrib client instrumentations
use) agree because both are the object built here. The size guards on incoming headers live in
the middleware's getter and apply to whatever propagators are chosen.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

from opentelemetry.propagators.textmap import TextMapPropagator

__all__ = ["build_propagator", "available_propagators", "check_propagator_names"]

#: the OpenTelemetry entry-point group propagator packages register in
ENTRY_POINT_GROUP = "opentelemetry_propagator"


def available_propagators() -> dict[str, EntryPoint]:
    """Installed propagator entry points: name -> entry point."""
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def check_propagator_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if each is ``none`` or an installed propagator; else ValueError naming the first unknown one."""
    installed = available_propagators()
    for name in names:
        if name != "none" and name not in installed and name not in ("tracecontext", "baggage"):
            hint = ", ".join(sorted({"none", *installed}))
            extra = " (pip install opentelemetry-propagator-b3)" if name in ("b3", "b3multi") else ""
            raise ValueError(f"unknown propagator {name!r}{extra}; installed: {hint}")
    return names


def _one(name: str) -> TextMapPropagator:
    if name == "tracecontext":
        # Ours, not the SDK's: the W3C rules the SDK gets wrong (future versions, tracestate keys,
        # duplicates), inbound and outbound (otel_monitor.request._tracecontext).
        from ._tracecontext import W3CTraceContextPropagator

        return W3CTraceContextPropagator()
    if name == "baggage":
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        return W3CBaggagePropagator()
    # an installed package's entry point: what it loads is only known at run time
    propagator: TextMapPropagator = available_propagators()[name].load()()
    return propagator


def build_propagator(names: tuple[str, ...]) -> TextMapPropagator:
    """A composite of ``names`` in order (``none`` alone: propagate nothing), like the SDK's."""
    from opentelemetry.propagators.composite import CompositePropagator

    return CompositePropagator([_one(name) for name in names if name != "none"])
