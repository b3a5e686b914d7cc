"""Trace and span ids the application's ``random.seed`` cannot touch.

The SDK's ``RandomIdGenerator`` draws from the ``random`` module's global generator: an app that
calls ``random.seed(1)`` (httpbin's ``/bytes?seed=1`` does) makes the next request's ids repeat
an earlier request's. :class:`PrivateIdGenerator` draws from its own ``random.Random``, seeded
from ``os.urandom`` when it is made and again in every forked child (``os.register_at_fork``), so
two workers forked from one master never share a sequence. Each pipeline (rebuilt after a fork)
has its own. It costs what the SDK's does: one ``getrandbits`` of a Mersenne Twister, no system
call per id (``int.from_bytes(os.urandom(16))`` costs several times more; see the commit message).

``OTEL_PYTHON_ID_GENERATOR`` chooses another generator by its ``opentelemetry_id_generator``
entry point (``random`` is the SDK's), as ``opentelemetry-instrument`` does.
"""

from __future__ import annotations

import os
import random
import weakref

from opentelemetry.sdk.trace.id_generator import IdGenerator

__all__ = ["PrivateIdGenerator", "id_generator", "check_id_generator_name"]

_ENTRY_POINT_GROUP = "opentelemetry_id_generator"


class PrivateIdGenerator(IdGenerator):
    """Random 128-bit trace ids and 64-bit span ids from a private, fork-reseeded generator."""

    def __init__(self) -> None:
        self._random = random.Random()  # seeded from os.urandom
        self._bits = self._random.getrandbits
        #: ``random_bits(n)``: a uniformly random int below ``2**n`` (may be 0), one C call. The
        #: request path's light span (``request._server_span.ServerSpans``) draws its ids with it.
        self.random_bits = self._bits
        _live.add(self)

    def generate_span_id(self) -> int:
        span_id = self._bits(64)
        while span_id == 0:
            span_id = self._bits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = self._bits(128)
        while trace_id == 0:
            trace_id = self._bits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True

    def reseed(self) -> None:
        self._random.seed()  # from os.urandom


_live: weakref.WeakSet[PrivateIdGenerator] = weakref.WeakSet()


def _reseed_after_fork() -> None:
    for generator in list(_live):
        generator.reseed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)


def check_id_generator_name(name: str) -> str:
    """``OTEL_PYTHON_ID_GENERATOR``: the name of an installed ``opentelemetry_id_generator`` entry point."""
    from importlib.metadata import entry_points

    name = name.strip()
    found = sorted(e.name for e in entry_points(group=_ENTRY_POINT_GROUP))
    if name not in found:
        raise ValueError(f"expected an installed id generator: {', '.join(found) or '(none installed)'}")
    return name


def id_generator(name: str | None) -> IdGenerator:
    """The configured generator (an entry point's), else a :class:`PrivateIdGenerator`."""
    if name is None:
        return PrivateIdGenerator()
    from importlib.metadata import entry_points

    entries = entry_points(group=_ENTRY_POINT_GROUP, name=name)
    if not entries:
        raise ValueError(f"no id generator named {name!r} is installed")
    cls = next(iter(entries)).load()
    if not (isinstance(cls, type) and issubclass(cls, IdGenerator)):
        raise TypeError(f"the id generator entry point {name!r} is not an IdGenerator")
    return cls()
